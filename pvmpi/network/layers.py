"""Layers at run time: this rank's batch slice and tile of V, A, GSyn and the data store.

Buffers follow the fixed layout ``[batch, y, x, f]``: V and GSyn restricted,
A extended by the layer's margins. They live where the kernel backend keeps
state (``kernels.zeros``: host memory, or the GPU for cuda) and change only
through backend calls, so one engine serves every backend; they reach the
host only for output frames and checkpoints (``kernels.to_host``).
Publishing makes A level 0 of the data store (a ring of delay levels; the
buffers swap, nothing is copied) and fills its halo; connections deliver
from the data store, never from A, so that a layer of the same or a later
phase sees the previous step's activity (facts §3.2).
"""
import numpy as np

from ..errors import PvmpiError
from ..kernels.numpy_ref import PRODUCT, QUOTIENT, SQUARE
from ..kernels.transfer import FLT_MAX, transfer_args
from .schedule import UpdateController, WriteSchedule

F32 = np.float32


def _read_only(stats):
    """A layer's cached per-step statistics, shared by the guard and every probe: their
    readers reduce copies, never the cache itself."""
    stats.flags.writeable = False
    return stats


class Layer:
    """Base of all layers: geometry, A, the data store, publishing and output."""

    has_v = False

    def __init__(self, group, run):
        self.group = group
        self.name = group.name
        self.run = run
        nx, ny, nf = run.model.layer_size(group)
        self.tile = run.tile(nx, ny, name=group.name)
        self.nf = nf
        self.phase = group["phase"]
        self.margin_x = 0
        self.margin_y = 0
        self.num_levels = 1
        self.rotations = 0  # publishes since the run (or restart) began: the data-store ring's turns
        self.wants_active_list = False
        self.in_place = False  # the update may overwrite the published A (set by the column; see begin_update)
        self.channels = 1
        self.controller = UpdateController(run.dt, run.dt)
        self.writer = None
        self.write_schedule = WriteSchedule(group["writeStep"], group["initialWriteTime"], run.dt / 2)

    # --- sizes
    @property
    def nb(self):
        return self.tile.nb

    @property
    def restricted_shape(self):
        return (self.tile.nb, self.tile.ny, self.tile.nx, self.nf)

    @property
    def extended_shape(self):
        t = self.tile
        return (t.nb, t.ny + 2 * self.margin_y, t.nx + 2 * self.margin_x, self.nf)

    def restricted(self, buf):
        """The restricted view of an extended buffer."""
        my, mx = self.margin_y, self.margin_x
        return buf[:, my:my + self.tile.ny, mx:mx + self.tile.nx, :]

    def require_margin(self, mx, my):
        """Grow the halo to at least (mx, my): the margin is the max over outgoing connections (facts §3.5)."""
        self.margin_x = max(self.margin_x, mx)
        self.margin_y = max(self.margin_y, my)

    # --- set-up
    def allocate(self):
        """A, the data-store levels, GSyn and the halo exchange, once margins, delays and channels are final."""
        from ..parallel import halo_exchange

        k = self.run.kernels
        self.store = [k.zeros(self.extended_shape) for _ in range(self.num_levels)]
        self.A = self.store[0] if self.in_place else k.zeros(self.extended_shape)
        self.spare = None  # the buffer the next update writes (see begin_update)
        self.active = [None] * self.num_levels
        self.gsyn = k.zeros((self.channels,) + self.restricted_shape)
        self.gsyn_stale = [False] * self.channels  # a list: numpy calls between kernels run from cold caches
        self.invalidate_stats()
        self.halo = halo_exchange(self.run.comms, self.tile, self.nf, self.margin_x, self.margin_y,
                                  bool(self.group["mirrorBCflag"]), k)

    def link(self, layers):
        """Resolve references to other layers (triggers)."""

    def trigger_controller(self, layers):
        """The controller of an update on triggerLayerName's updates (at t + triggerOffset), or None
        without a trigger or when triggerBehavior is ignore (facts §3.3)."""
        g = self.group
        trig = g["triggerLayerName"]
        if trig is None or g["triggerBehavior"] == "ignore":
            return None
        return UpdateController(self.run.dt, self.run.dt, layers[trig].controller, g["triggerOffset"])

    def share_margins(self):
        """Once every connection has set its margins: agree on margins with a layer this one
        follows (InputRegionLayer); most layers have none."""

    def allocate_random(self, seeds):
        """Take the seeds of random generators made at allocation (OpenPV's AllocateDataStructures,
        before any InitializeState draws); most layers have none."""

    def initialize(self, seeds):
        """Initial state at t = 0 (facts §3.1, InitializeState)."""

    # --- time step
    def needs_update(self, t):
        """Whether the layer updates at t: every deltaUpdateTime, or on its trigger (facts §3.3)."""
        return self.controller.due(t)

    def update(self, t):
        """New V and A for time t from this step's GSyn; each layer class defines its dynamics."""
        raise NotImplementedError

    def begin_delivery(self):
        """A new step's input: every GSyn channel is stale until its first delivery."""
        self.gsyn_stale = [True] * self.channels

    def gsyn_target(self, channel, can_overwrite):
        """GSyn channel for one delivery, and whether that delivery must overwrite it.

        The first delivery into a stale channel either overwrites it (a kernel
        that can: no separate pass to clear it) or finds it cleared here.
        """
        G = self.gsyn[channel]
        if not self.gsyn_stale[channel]:
            return G, False
        self.gsyn_stale[channel] = False
        if not can_overwrite:
            self.run.kernels.fill_zero(G)
        return G, can_overwrite

    def end_delivery(self):
        """Channels nobody delivered into this step are zero."""
        for ch, stale in enumerate(self.gsyn_stale):
            if stale:
                self.run.kernels.fill_zero(self.gsyn[ch])
        self.gsyn_stale = [False] * self.channels

    def begin_update(self):
        """Before an update: A gets a buffer of its own, so level 0 of the data store keeps the
        last published activity (connections of this phase still read it) until :meth:`publish`;
        unless ``in_place``: no delays and no other layer of this phase reads A, so the update
        overwrites level 0 itself (each value after the update read it: one buffer streamed, not two).
        Read the previous activity through :meth:`previous_activity`, never through A."""
        self.invalidate_stats()
        if self.A is self.store[0] and not self.in_place:
            self.A = self.spare

    def previous_activity(self):
        """The activity published last (level 0 of the data store), extended."""
        return self.store[0]

    def publish(self, t, initial=False):
        """Level 0 of the data store becomes A (no copy), the halo is filled, the active list built.

        The oldest level becomes the buffer of the next update. A layer that did
        not update keeps its level 0; with delays, the levels still move one
        step older (level 0 repeats, as OpenPV copies it forward).
        """
        timers = self.run.timers
        if not initial:
            self.rotations += 1
        if self.A is not self.store[0]:  # updated since the last publish
            self.spare = self.store.pop()
            self.store.insert(0, self.A)
            self.active.insert(0, self.active.pop())
        elif self.num_levels > 1:
            oldest = self.store.pop()
            with timers.time("publish:" + self.name):
                self.run.kernels.copy(oldest, self.store[0])
            self.store.insert(0, oldest)
            self.A = oldest
            self.active.insert(0, self.active.pop())
        timers.call("halo:" + self.name, self.halo.exchange, self.store[0])
        if self.wants_active_list:  # the list's pass also gives A's stats (guard, probes)
            device = self.run.kernels.CAPABILITIES.device_resident
            stats = None if device else np.empty((self.nb, 6), np.float64)
            with timers.time("publish:" + self.name):
                if device and self._stats.get(0.0) is None:  # read when first asked for, with the step's
                    self._stats[0.0] = self._stats_later(self.store[0], self.margin_x, self.margin_y)  # others
                self.active[0] = self.run.kernels.active_list(self.store[0], self.margin_x, self.margin_y,
                                                              stats, reuse=self.active[0])
            if stats is not None:
                self._stats[0.0] = _read_only(stats)

    def _stats_later(self, X, lt, up, nnz_threshold=0.0):
        """A device's ``layer_stats`` of X's restricted window, started now and read when first
        asked for (``layer_stats_later``): the reads of a step share one wait for the device."""
        t = self.tile
        return self.run.kernels.layer_stats_later(X, lt, up, t.ny, t.nx, nnz_threshold)

    def invalidate_stats(self):
        """A is about to change (update, checkpoint read): forget the sums of the old state."""
        self._stats = {}
        self._v_sums = None
        self._a_sums = None

    def activity_sums(self):
        """ΣA per local batch element (float64, [nb]): the guard's check of A. From A's stats when
        they are known, else from the pass that wrote A (``_a_sums``), else one pass for the stats."""
        if self._stats.get(0.0) is None and self._a_sums is not None:
            return self._a_sums
        return self.activity_stats()[:, 0]

    def membrane_sums(self):
        """ΣV per local batch element (float64), or None for a layer without V."""
        if not self.has_v:
            return None
        if self._v_sums is None:
            t = self.tile
            self._v_sums = _read_only(self.run.kernels.layer_stats(self.V, 0, 0, t.ny, t.nx, 0.0)[:, 0])
        elif not isinstance(self._v_sums, np.ndarray):  # a device's deferred read
            self._v_sums = _read_only(self._v_sums.result()[:, 0])
        return self._v_sums

    def activity_stats(self, nnz_threshold=0.0):
        """[Σa, Σ|a|, Σa², #|a|>threshold, min, max] of this rank's restricted A per batch element.

        Computed once per published state and threshold: the numerical guard
        and every probe of the layer share one pass over A.
        """
        stats = self._stats.get(nnz_threshold)
        if stats is None:
            t = self.tile
            stats = self._stats[nnz_threshold] = _read_only(self.run.kernels.layer_stats(
                self.A, self.margin_x, self.margin_y, t.ny, t.nx, nnz_threshold))
        elif not isinstance(stats, np.ndarray):  # a device's deferred read
            stats = self._stats[nnz_threshold] = _read_only(stats.result())
        return stats

    def level(self, delay_steps):
        """The extended activity published `delay_steps` steps ago: what connections deliver from."""
        return self.store[delay_steps]

    def active_level(self, delay_steps):
        """That data-store level's active list (offsets, idx, val) for sparse delivery and learning."""
        return self.active[delay_steps]

    # --- output
    def open_output(self, resume=None):
        """Open <outputPath>/<name>.pvp: new, or cut back to the checkpointed frame count and appended."""
        from ..io import pvp
        from ..io.outputs import continue_output

        if self.group["writeStep"] < 0:
            return
        if self.run.comms.is_root:
            t = self.tile
            cls = pvp.SparseWriter if self.group["sparseLayer"] else pvp.DenseWriter
            path = self.run.output_file(self.name + ".pvp")
            frames = None if resume is None else resume.attr(self.key, "output_frames")
            self.writer = cls(path, t.nx_global, t.ny_global, self.nf, append=frames is not None)
            if frames is not None:
                continue_output(self.writer, frames)

    # --- checkpoints (facts §6.3): global arrays, any layout can read them
    @property
    def key(self):
        return "layers/" + self.name

    def write_checkpoint(self, ck):
        """Save A and every data-store level as global extended arrays, with the update and write times.

        Global arrays let a run with any MPI layout read the checkpoint (facts §6.3).
        """
        t, host = self.tile, self.run.kernels.to_host
        ck.extended(self.key + "/A", host(self.A), t, self.margin_x, self.margin_y,
                    "activity A, global extended [batch, y, x, f] (halo included)")
        for level, buf in enumerate(self.store):
            ck.extended(f"{self.key}/Delays{level}", host(buf), t, self.margin_x, self.margin_y,
                        f"published activity {level} steps ago, global extended")
        ck.attrs(self.key, last_update=self.controller.last_update, next_write=self.write_schedule.next,
                 output_frames=self.writer.num_frames if self.writer is not None else -1)
        ck.entry(self.name, "lastUpdateTime", self.controller.last_update, "<f8")
        ck.entry(self.name, "nextWrite", self.write_schedule.next, "<f8")
        if self.writer is not None:
            frames = "numframes_sparse" if self.group["sparseLayer"] else "numframes"
            ck.entry(self.name, frames, self.writer.num_frames, "<i4")
            ck.file_position(self.name, self.writer.position)

    def read_checkpoint(self, rd, fresh_outputs=False):
        """Restore A and the data store (rebuilding their active lists).

        The last update time and the write schedule are restored too, unless fresh_outputs
        (initializeFromCheckpointDir: the run starts at t = 0).
        """
        t, k = self.tile, self.run.kernels
        self.invalidate_stats()
        self.rotations = 0  # a restart is a new run: OpenPV's ring starts over
        k.upload(self.A, rd.extended(self.key + "/A", t, self.nf, self.margin_x, self.margin_y))
        for level, buf in enumerate(self.store):
            k.upload(buf, rd.extended(f"{self.key}/Delays{level}", t, self.nf, self.margin_x, self.margin_y))
            if self.wants_active_list:
                self.active[level] = k.active_list(buf, self.margin_x, self.margin_y)
        if not fresh_outputs:
            self.controller.last_update = rd.attr(self.key, "last_update")
            self.write_schedule.next = rd.attr(self.key, "next_write")

    def write_output(self, t):
        """Collective: gather the restricted A and, when a frame is due, the root appends it to the .pvp."""
        if self.writer is None and self.group["writeStep"] < 0:
            return
        if not self.write_schedule.due(t):
            return
        A = self.run.kernels.to_host(self.A)
        frames = self.run.comms.gather_layer(self.restricted(A), self.tile)
        if self.writer is None:
            return
        if self.group["sparseLayer"]:  # the backend's lister, 10x numpy's nonzero
            from ..kernels import get_backend

            offsets, idx, val = get_backend("numba").active_list(np.ascontiguousarray(frames), 0, 0)
            self.writer.write_sorted(t, [(idx[a:b], val[a:b]) for a, b in zip(offsets[:-1], offsets[1:])])
        else:
            self.writer.write(t, frames)

    def close(self):
        """Close the output file."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class HyPerLayer(Layer):
    """V = Σ_ch c_ch GSyn_ch, A = V (facts §3.4, §3.5)."""

    has_v = True
    a_is_v = True  # the transfer is the identity: A's sums check V as well (the guard)

    def allocate(self):
        """Also V and the channel coefficients: [1, -1] unless channelIndices/channelCoefficients say otherwise."""
        super().allocate()
        k = self.run.kernels
        self.V = k.zeros(self.restricted_shape)
        coeffs = np.zeros(self.channels, F32)
        coeffs[0] = 1.0
        if self.channels > 1:
            coeffs[1] = -1.0
        g = self.group
        idx, val = g["channelIndices"], g["channelCoefficients"]
        if len(idx) != len(val):
            raise PvmpiError("channelIndices and channelCoefficients differ in length",
                             group=self.name, param="channelCoefficients")
        for i, c in zip(idx, val):
            if 0 <= int(i) < self.channels:
                coeffs[int(i)] = c
        self.coefficients = coeffs
        # the sum of the channels is channel 0 itself, or a buffer of its own made at the first
        # accumulate() (a plain HyPerLayer sums straight into V and never needs one)
        self.g_is_gsyn = self.channels == 1 and coeffs[0] == 1
        self.G = None

    def link(self, layers):
        g = self.group
        self.reset_layer = None
        trigger = self.trigger_controller(layers)
        if trigger is not None and g["triggerBehavior"] == "updateOnlyOnTrigger":
            self.controller = trigger
        elif trigger is not None:  # resetStateOnTrigger: update every step, reset V when the trigger fires
            self.reset_controller = trigger
            self.reset_layer = layers[g["triggerResetLayerName"] or g["triggerLayerName"]]

    def initialize(self, seeds):
        self.run.kernels.upload(self.V, self.run.initial_v(self, seeds))
        self.transfer()

    def write_checkpoint(self, ck):
        """Also V, as a global restricted array."""
        super().write_checkpoint(ck)
        ck.restricted(self.key + "/V", self.run.kernels.to_host(self.V), self.tile,
                      "membrane potential V, global [batch, y, x, f]")

    def read_checkpoint(self, rd, fresh_outputs=False):
        """Also V."""
        super().read_checkpoint(rd, fresh_outputs)
        self.run.kernels.upload(self.V, rd.restricted(self.key + "/V", self.tile, self.nf))

    def accumulate(self):
        """G = Σ_ch c_ch GSyn_ch; with one channel of coefficient 1, GSyn itself (no copy)."""
        if self.g_is_gsyn:
            return self.gsyn[0]
        if self.G is None:
            self.G = self.run.kernels.zeros(self.restricted_shape)
        self.run.kernels.accumulate_input(self.gsyn, self.coefficients, self.G)
        return self.G

    def accumulate_into(self, out):
        """out = Σ_ch c_ch GSyn_ch in one pass (V = G without G in between)."""
        if self.g_is_gsyn:
            self.run.kernels.scale_into(out, self.gsyn[0], 1.0, False)
        else:
            self.run.kernels.accumulate_input(self.gsyn, self.coefficients, out)

    def reset_state(self, t):
        """resetStateOnTrigger: when the trigger fires at t, copy triggerResetLayerName's V into V.

        A reset layer without V gives its restricted A instead (facts §3.3).
        """
        if self.reset_layer is not None and self.reset_controller.due(t):
            src = self.reset_layer
            if src.has_v:
                self.run.kernels.scale_into(self.V, src.V, 1.0, False)
            else:
                self.run.kernels.scale_into(self.V, src.A, 1.0, False, src_lt=src.margin_x, src_up=src.margin_y)

    def update(self, t):
        """After any trigger reset, V = G (the coefficient-weighted channels); then transfer() sets A:
        one kernel pass for both (``update_ann``) where the transfer is the plain one."""
        self.reset_state(t)
        params = self.plain_transfer()
        if params is None:
            self.accumulate_into(self.V)
            self.transfer()
            return
        self.write_activity(lambda sums: self.run.kernels.update_ann(
            self.gsyn, self.coefficients, self.V, self.A, self.margin_x, self.margin_y, *params, sums))

    IDENTITY = (F32(-FLT_MAX), F32(0), F32(FLT_MAX), F32(0), F32(0))  # no threshold, no cap: A = V

    def plain_transfer(self):
        """The transfer parameters when A = transfer(V) is all transfer() does (A = V here), else None."""
        return self.IDENTITY if type(self).transfer is HyPerLayer.transfer else None

    def transfer(self):
        """A = V on the restricted region (the halo of A is never written); ΣA from the same pass
        (on a device, from A's stats, which the layer's probes share).

        A subclass that changes A after this must call :meth:`invalidate_stats`."""
        self.write_activity(lambda sums: self.run.kernels.scale_into(
            self.A, self.V, 1.0, False, dst_lt=self.margin_x, dst_up=self.margin_y, sums=sums))

    def write_activity(self, write):
        """Run ``write(sums)``, which writes A (and ΣA into ``sums`` unless None), and keep ΣA for the guard.

        On the host ΣA comes from the pass that writes A. On a device a sum costs a stats pass and a
        copy to the host anyway, so A's six stats are started instead (read with the step's others,
        when first asked for): the layer's probes share them.
        """
        if self.run.kernels.CAPABILITIES.device_resident:
            write(None)
            self._stats[0.0] = self._stats_later(self.A, self.margin_x, self.margin_y)
            return
        sums = np.empty(self.nb, np.float64)
        write(sums)
        self._a_sums = _read_only(sums)


class ConstantLayer(HyPerLayer):
    """Keeps its initial state."""

    def needs_update(self, t):
        """Never: the layer keeps its initial state."""
        return False


class ANNLayer(HyPerLayer):
    """V = G, A = transfer(V) with OpenPV's piecewise-linear transfer function (facts §3.6)."""

    a_is_v = False

    def allocate(self):
        """Also the transfer function's parameters (facts §3.6), or its verticesV/verticesA form if given.

        A negative VWidth is turned into a positive one as OpenPV does.
        """
        super().allocate()
        g = self.group
        vthresh, vwidth = g["VThresh"], g["VWidth"]
        if vwidth < 0:  # OpenPV moves the ramp to the left and makes its width positive
            vthresh, vwidth = vthresh + vwidth, -vwidth
        self.transfer_params = tuple(F32(v) for v in (vthresh, g["AMin"], g["AMax"], g["AShift"], vwidth))
        self.vertices = None
        if g["verticesV"] is not None:
            self.vertices = (np.asarray(g["verticesV"], F32), np.asarray(g["verticesA"], F32),
                             F32(g["slopeNegInf"]), F32(g["slopePosInf"]))
        thresholded, _, _, clipped, *_ = transfer_args(*self.transfer_params)
        # no threshold, no cap (VThresh = -infinity, AMax = infinity): A is V, so the guard checks V through A
        self.a_is_v = self.vertices is None and not thresholded and not clipped

    @property
    def VThresh(self):
        return self.group["VThresh"]

    def plain_transfer(self):
        """The threshold form's parameters, unless vertices or a subclass's transfer() replace it."""
        if self.vertices is None and type(self).transfer is ANNLayer.transfer:
            return self.transfer_params
        return None

    def transfer(self):
        """A = the transfer function of V; ΣA from the same pass (the threshold form)."""
        if self.vertices is None:
            self.write_activity(lambda sums: self.run.kernels.apply_transfer(
                self.V, self.A, self.margin_x, self.margin_y, *self.transfer_params, sums=sums))
        else:
            self.vertex_transfer()

    def vertex_transfer(self):
        """A = the verticesV/verticesA transfer of V on the restricted region."""
        self.run.kernels.apply_vertex_transfer(self.V, self.A, self.margin_x, self.margin_y, *self.vertices)


class ANNErrorLayer(ANNLayer):
    """V = errScale * (exc - inh), then the transfer function (facts §3.8)."""

    def update(self, t):
        """V = errScale · G after any trigger reset, then the transfer function."""
        self.reset_state(t)
        self.run.kernels.scale_into(self.V, self.accumulate(), F32(self.group["errScale"]), False)
        self.transfer()


class HyPerLCALayer(ANNLayer):
    """LCA: V ← e·V + (1−e)(G + selfInteract·A), e = exp(−Δ_b·dt/τ) per batch element (facts §3.7)."""

    def link(self, layers):
        """Start without an adaptive time scale; the column sets `time_scale_probe` after linking probes."""
        super().link(layers)
        self.time_scale_probe = None

    def exp_tau(self):
        """e_b = exp(−Δ_b / (τ/dt)) per batch element, in double then rounded (facts §3.7)."""
        dt = self.run.dt
        if self.time_scale_probe is not None:
            deltas = self.time_scale_probe.time_scales()
        elif self._fixed_exp_tau is not None:  # Δ_b = dt: the same every step, made once
            return self._fixed_exp_tau
        else:
            deltas = np.full(self.nb, dt)
        e = np.exp(-np.asarray(deltas, np.float64) / (self.group["timeConstantTau"] / dt)).astype(F32)
        if self.time_scale_probe is None:  # writeable: Numba compiles read-only arrays apart
            self._fixed_exp_tau = e
        return e

    _fixed_exp_tau = None

    def update(self, t):
        """One LCA step: a single kernel updates V and A from the last published A and sums V.

        ΣV is kept for the numerical guard; a vertices transfer is applied afterwards.
        """
        self.reset_state(t)
        g = self.group
        exp_tau = self.exp_tau()
        device = self.run.kernels.CAPABILITIES.device_resident
        # ΣV comes with the update on the host (the guard's check of V), is read later on a device
        v_sums = None if device else np.empty(self.nb, np.float64)
        self.run.kernels.update_lca(self.V, self.A, self.accumulate(), exp_tau,
                                    F32(1.0 if g["selfInteract"] else 0.0), self.margin_x, self.margin_y,
                                    *self.transfer_params, v_sums=v_sums, A_prev=self.previous_activity())
        self._v_sums = self._stats_later(self.V, 0, 0) if device else v_sums
        if self.vertices is not None:
            self.vertex_transfer()


class MomentumLCALayer(HyPerLCALayer):
    """drive = (1−e)(G + selfInteract·A); V ← e·V + drive + LCAMomentumRate·previous drive."""

    def allocate(self):
        """Also the previous drive, zero at the start."""
        super().allocate()
        self.prev_drive = self.run.kernels.zeros(self.restricted_shape)

    def update(self, t):
        """The momentum LCA step (class docstring); this drive is kept for the next update."""
        self.reset_state(t)
        g = self.group
        self.run.kernels.update_momentum_lca(self.V, self.accumulate(), self.previous_activity(), self.prev_drive,
                                             self.exp_tau(), F32(1.0 if g["selfInteract"] else 0.0),
                                             F32(g["LCAMomentumRate"]), self.margin_x, self.margin_y)
        self.transfer()

    def write_checkpoint(self, ck):
        """Also the previous drive (prevDrive), so a continued run keeps its momentum."""
        super().write_checkpoint(ck)
        ck.restricted(self.key + "/prevDrive", self.run.kernels.to_host(self.prev_drive), self.tile,
                      "previous LCA drive (momentum)")

    def read_checkpoint(self, rd, fresh_outputs=False):
        """Also the previous drive."""
        super().read_checkpoint(rd, fresh_outputs)
        self.run.kernels.upload(self.prev_drive, rd.restricted(self.key + "/prevDrive", self.tile, self.nf))


class LeakyIntegrator(ANNLayer):
    """V ← V·exp(−dt/integrationTime) + G, then the transfer function."""

    def update(self, t):
        """V ← V·exp(−dt/integrationTime) + G after any trigger reset, then the transfer function."""
        self.reset_state(t)
        decay = F32(np.exp(-np.float32(self.run.dt) / np.float32(self.group["integrationTime"])))
        k = self.run.kernels
        k.scale_into(self.V, self.V, decay, False)
        k.scale_into(self.V, self.accumulate(), 1.0, True)
        self.transfer()




class DropoutLayer(ANNLayer):
    """An ANNLayer whose A is set to 0 at each update, neuron by neuron, with probability
    ``probability`` percent, drawn from OpenPV's per-neuron taus88 streams (bit for bit)."""

    a_is_v = False

    def allocate(self):
        """Also the probability, clipped to 0..99 as OpenPV does (values above 99 act as 99)."""
        super().allocate()
        self.a_is_v = False
        p = int(self.group["probability"])
        self.probability = 99 if p < 0 or p > 99 else p  # OpenPV turns a negative one into 99 too
        self.rng = None

    def share_margins(self):
        """Once every connection has set its margins: agree on margins with a layer this one
        follows (InputRegionLayer); most layers have none."""

    def allocate_random(self, seeds):
        """One generator per extended neuron of the global layer, as OpenPV's Random(loc, extended);
        this rank keeps those of its restricted tile, uint32 [4, nb, ny, nx, nf] (s0 s1 s2 s3)."""
        from .random import TausBank, tile_seeds

        t, mx, my = self.tile, self.margin_x, self.margin_y
        base = seeds.allocate(t.nbatch_global * (t.ny_global + 2 * my) * (t.nx_global + 2 * mx) * self.nf)
        ext = tile_seeds(base, ny_global=t.ny_global, nx_global=t.nx_global, kb0=t.kb0, ky0=t.ky0, kx0=t.kx0,
                         nb=t.nb, ny=t.ny, nx=t.nx, nf=self.nf, halo=(mx, mx, my, my))
        ext = ext.reshape(t.nb, t.ny + 2 * my, t.nx + 2 * mx, self.nf)[:, my:my + t.ny, mx:mx + t.nx]
        bank = TausBank(ext)
        state = np.stack([bank.s0, bank.s1, bank.s2, bank.s3]).reshape((4,) + self.restricted_shape)
        self.rng = self.run.kernels.to_device(state)

    def transfer(self):
        """The transfer function, then the drop (OpenPV draws at InitializeState too)."""
        super().transfer()
        self.run.kernels.dropout(self.A, self.rng, self.probability, self.margin_x, self.margin_y)
        self.invalidate_stats()

    def write_checkpoint(self, ck):
        """Also the generators' state (pvmpi_state.h5: OpenPV keeps none and reseeds on a restart)."""
        super().write_checkpoint(ck)
        state = np.asarray(self.run.kernels.to_host(self.rng))
        ck.restricted(self.key + "/DropoutRNG", np.ascontiguousarray(np.moveaxis(state, 0, -1)).reshape(
            self.restricted_shape[:3] + (4 * self.nf,)), self.tile, "taus88 state [s0 s1 s2 s3] per neuron")

    def read_checkpoint(self, rd, fresh_outputs=False):
        """Also the generators' state, where the checkpoint has it (one of OpenPV's keeps the
        generators as a restarted OpenPV has them: seeded and drawn once)."""
        super().read_checkpoint(rd, fresh_outputs)
        name = self.key + "/DropoutRNG"
        if rd.has(name):
            saved = rd.restricted(name, self.tile, 4 * self.nf).reshape(self.restricted_shape + (4,))
            self.rng = self.run.kernels.to_device(np.ascontiguousarray(np.moveaxis(saved, -1, 0), np.uint32))


class PoolingIndexLayer(HyPerLayer):
    """V = A = the global extended index of the pre neuron that won each max pool of the PoolingConn that
    names it (postIndexLayerName); -1 where none did. Its input is written by that connection only."""


class MaskLayer(ANNLayer):
    """An ANNLayer whose A is zeroed where maskLayerName's current A is 0 (maskMethod layer; invertLayer:
    where it is not), or on the features featureIdxs (maskFeatures; noMaskFeatures: on the others)."""

    def link(self, layers):
        """Also the mask layer (layer methods)."""
        super().link(layers)
        g = self.group
        self.mask = layers[g["maskLayerName"]] if g["maskMethod"] in ("layer", "invertLayer") else None

    def allocate(self):
        """Also the per-feature mask (feature methods), where the kernels read it."""
        super().allocate()
        self.a_is_v = False
        g = self.group
        if self.mask is None:
            listed = np.isin(np.arange(self.nf), [int(f) for f in g["featureIdxs"]])
            keep = (listed if g["maskMethod"] == "noMaskFeatures" else ~listed).astype(F32)
            self.feature_mask = self.run.kernels.to_device(keep.reshape(1, 1, 1, self.nf))

    def transfer(self):
        """The transfer function, then the mask."""
        super().transfer()
        k, g = self.run.kernels, self.group
        if self.mask is not None:
            k.mask_activity(self.A, self.margin_x, self.margin_y, self.mask.A, self.mask.margin_x,
                            self.mask.margin_y, g["maskMethod"] == "invertLayer")
        else:
            k.mask_activity(self.A, self.margin_x, self.margin_y, self.feature_mask, 0, 0, False)
        self.invalidate_stats()


class PtwiseQuotientLayer(HyPerLayer):
    """V = GSyn exc / GSyn inh neuron by neuron, A = V (a missing inh channel is 0: the guard stops the run)."""

    def __init__(self, group, run):
        super().__init__(group, run)
        self.channels = 2

    def update(self, t):
        """After any trigger reset, V = exc / inh, then A = V."""
        self.reset_state(t)
        self.run.kernels.combine_channels(self.gsyn, self.V, QUOTIENT)
        self.transfer()


class ANNSquaredLayer(ANNLayer):
    """An ANNLayer whose V is the square of its excitatory input (other channels are not used)."""

    def allocate(self):
        """As an ANNLayer; say so when other channels receive input (OpenPV warns too)."""
        super().allocate()
        if self.channels > 1:
            import warnings

            warnings.warn(f"{self.name}: an ANNSquaredLayer uses only its excitatory channel; the input into "
                          f"channels 1..{self.channels - 1} is not used, as in OpenPV")

    def update(self, t):
        """After any trigger reset, V = exc², then the transfer function."""
        self.reset_state(t)
        self.run.kernels.combine_channels(self.gsyn, self.V, SQUARE)
        self.transfer()


class PtwiseProductLayer(PtwiseQuotientLayer):
    """V = GSyn exc × GSyn inh neuron by neuron, A = V."""

    def update(self, t):
        """After any trigger reset, V = exc × inh, then A = V."""
        self.reset_state(t)
        self.run.kernels.combine_channels(self.gsyn, self.V, PRODUCT)
        self.transfer()


class FirmThresholdCostLayer(HyPerLayer):
    """V = the channels' sum, A = the firm-threshold cost of V (OpenPV's formula and rounding)."""

    a_is_v = False

    def thresholds(self):
        """(VThresh, VWidth) of the cost."""
        return self.group["VThresh"], self.group["VWidth"]

    def transfer(self):
        self.run.kernels.firm_threshold_transfer(self.V, self.A, self.margin_x, self.margin_y, *self.thresholds())


class DependentFirmThresholdCostLayer(FirmThresholdCostLayer):
    """A FirmThresholdCostLayer with the threshold of originalLayerName (an ANNLayer)."""

    def link(self, layers):
        """Also the original ANNLayer."""
        super().link(layers)
        self.original = layers[self.group["originalLayerName"]]

    def thresholds(self):
        """The original's VThresh and VWidth (after OpenPV's turn of a negative VWidth)."""
        p = self.original.transfer_params
        return p[0], p[4]


LAYER_CLASSES = {
    "HyPerLayer": HyPerLayer,
    "ANNLayer": ANNLayer,
    "ANNErrorLayer": ANNErrorLayer,
    "HyPerLCALayer": HyPerLCALayer,
    "ConstantLayer": ConstantLayer,
    "MomentumLCALayer": MomentumLCALayer,
    "LeakyIntegrator": LeakyIntegrator,
    "DropoutLayer": DropoutLayer,
    "PtwiseQuotientLayer": PtwiseQuotientLayer,
    "MaskLayer": MaskLayer,
    "PoolingIndexLayer": PoolingIndexLayer,
    "PtwiseProductLayer": PtwiseProductLayer,
    "ANNSquaredLayer": ANNSquaredLayer,
    "FirmThresholdCostLayer": FirmThresholdCostLayer,
    "DependentFirmThresholdCostLayer": DependentFirmThresholdCostLayer,
}
