"""The column: builds this rank's layers, connections and probes and runs OpenPV's time loop.

Start-up follows facts §3.1 (build, margins, allocate, InitializeState in
params-file order so random seeds match OpenPV, normalise, finalise, publish
at t = 0, initial output); each step follows §3.2 (adapt time scales, phases
with deliver → update → publish → output, then learning, finalising and the
column probes).
"""
import gc
import os
import time
from contextlib import contextmanager

import numpy as np

from ..errors import PvmpiError
from ..probes.column_probes import COLUMN_PROBE_CLASSES, AdaptiveTimeScaleProbe, ColumnEnergyProbe, QuotientProbe
from ..probes.lagged import LaggedProbes
from ..probes.layer_probes import LAYER_PROBE_CLASSES, LayerProbe, RequireAllZeroActivityProbe
from .clone_layers import CLONE_CLASSES
from .connections import CONNECTION_CLASSES, link_order
from .guard import NumericGuard
from .inputs import INPUT_CLASSES
from .layers import LAYER_CLASSES
from .lif import LIF_CLASSES
from .retina import Retina
from .timers import Timers

LAYERS = {**LAYER_CLASSES, **INPUT_CLASSES, **CLONE_CLASSES, **LIF_CLASSES, "Retina": Retina}
PROBES = {**LAYER_PROBE_CLASSES, **COLUMN_PROBE_CLASSES}
SEED_MIN = 10_000_000


def _make(table, group, run, what):
    cls = table.get(group.cls)
    if cls is None:
        raise PvmpiError(f"{what} class {group.cls} is not implemented in pvmpi yet", group=group.name)
    return cls(group, run)


@contextmanager
def set_up_frozen():
    """While stepping, the collector leaves alone the objects that exist at set-up.

    A full collection of everything numba made stalls a step, and every rank
    then waits (docs/performance.md); frozen, the scan covers only what the
    steps make; unfrozen afterwards, so tests and notebooks still free networks.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


class Column:
    """One rank's share of the network and the time loop that advances it."""

    def __init__(self, model, comms, kernels, *, output_path=None, seed=None, progress=None):
        self.model = model
        self.comms = comms
        self.kernels = kernels
        col = model.column
        self.dt = col["dt"]
        self.stop_time = col["stopTime"]
        self.output_path = output_path or col["outputPath"]
        self.initial_seed = self._initial_seed(seed)
        self.progress = progress
        self.t = 0.0
        self.step = 0
        self.timers = Timers()
        self.resumed_from = None
        self.schedule = None  # the checkpoint schedule, from start()
        self.start_step = 0
        self.checkpoints_written = []
        self.stopped_by_signal = False
        self.batch_slice = self.tile(col["nx"], col["ny"], name=col.name).kb0, \
            model.column["nbatch"] // comms.layout.batch_width
        self._build()

    # ------------------------------------------------------------ services for the objects
    def tile(self, nx, ny, name=None):
        """This rank's tile of an nx × ny layer over the column's nbatch (batch slice, rows and columns)."""
        return self.comms.tile(self.model.column["nbatch"], ny, nx, name=name)

    def output_file(self, relpath):
        """Path under outputPath; creates the directory (only ranks that write call this)."""
        path = os.path.join(self.output_path, relpath)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        return path

    def _initial_seed(self, seed):
        s = seed if seed else self.model.column["randomSeed"]
        if not s:
            s = self.comms.bcast(int(time.time()) + SEED_MIN)
        if s < SEED_MIN:
            raise PvmpiError(f"randomSeed {s} is below {SEED_MIN}", group=self.model.column.name,
                             param="randomSeed", hint="OpenPV requires seeds >= 10000000")
        return s

    def initial_v(self, layer, seeds):
        """V at t = 0 of a layer from its InitVType (facts §3.5), this rank's tile only.

        Random types draw their seeds from `seeds` for the global layer, so V does not depend on the MPI layout.
        """
        from ..io.pvp import ActivityFile
        from .initializers import init_v, init_v_seed_count

        g, t = layer.group, layer.tile
        itype = g["InitVType"]
        n = init_v_seed_count(itype, t.nbatch_global, t.ny_global, t.nx_global)
        base = seeds.allocate(n) if n else None

        def read_frame(path, frame):
            with ActivityFile(path) as f:
                return f.read_frame(frame)

        def frame_count(path):
            with ActivityFile(path) as f:
                return f.num_frames

        return init_v(itype, g, seed_base=base, nbatch_global=t.nbatch_global, kb0=t.kb0, nb=t.nb,
                      ny_global=t.ny_global, nx_global=t.nx_global, ky0=t.ky0, kx0=t.kx0, ny=t.ny, nx=t.nx,
                      nf=layer.nf, read_pvp_frame=read_frame, pvp_frame_count=frame_count, group=g.name)

    def initial_weights(self, conn, seeds):
        """W at t = 0 of a connection from its weightInitType (facts §4.7).

        Shared weights are seeded per kernel; non-shared per global extended pre neuron,
        so the weights do not depend on the MPI layout (facts §3.11(c)).
        """
        from .initializers import GEOMETRIC_WEIGHT_TYPES, init_weights, weights_seed_count

        g = conn.group
        pre = conn.pre
        patch_seeds = None
        if conn.shared:
            n = weights_seed_count(g["weightInitType"], conn.num_kernels, init_weights_file=g["initWeightsFile"])
        else:  # one seed per global extended pre neuron and batch element (facts §3.11(c))
            t = pre.tile
            nxe, nye = t.nx_global + 2 * pre.margin_x, t.ny_global + 2 * pre.margin_y
            n = weights_seed_count(g["weightInitType"], t.nbatch_global * nye * nxe * pre.nf,
                                   init_weights_file=g["initWeightsFile"])
        base = seeds.allocate(n) if n else None
        if base is not None and not conn.shared:
            patch_seeds = (base + conn.global_patch_numbers()) & 0xFFFFFFFF
            base = None
        geometry = self.unit_cells(conn) if g["weightInitType"] in GEOMETRIC_WEIGHT_TYPES else None
        return init_weights(g["weightInitType"], g, shape=conn.shape, seed_base=base, patch_seeds=patch_seeds,
                            read_weights=lambda path, frame: self.read_weights(path, frame, conn,
                                                                               "initWeightsFile"),
                            group=g.name, geometry=geometry)

    @staticmethod
    def unit_cells(conn):
        """Each kernel's OpenPV data-patch index and unit-cell position (InitWeights' conventions), for
        Gauss2DWeight and the one-to-one types."""
        from .initializers import Gauss2DGeometry

        pre, xm, ym = conn.pre, conn.xmap, conn.ymap
        sx = xm.n_pre // xm.n_post if xm.n_pre > xm.n_post else 1
        sy = ym.n_pre // ym.n_post if ym.n_pre > ym.n_post else 1
        k = np.arange(conn.num_kernels, dtype=np.int64)
        if conn.shared:  # kernel k = f + nf*(kx + nkx*ky) is OpenPV's data patch index
            index, kx, ky = k, (k // pre.nf) % conn.kernels_x, k // (pre.nf * conn.kernels_x)
        else:  # one patch per local extended pre neuron, indexed [y][x][f] over the extended tile
            ye, xe, f = conn.pre_of_kernel()
            index = (ye * pre.extended_shape[2] + xe) * pre.nf + f
            kx, ky = xe - pre.margin_x, ye - pre.margin_y
        return Gauss2DGeometry(patch_index=index, unit_x=kx % sx, unit_y=ky % sy,
                               log2_diff_x=int(round(np.log2(xm.n_pre / xm.n_post))),
                               log2_diff_y=int(round(np.log2(ym.n_pre / ym.n_post))),
                               nf_pre=pre.nf, nf_post=conn.post.nf, self_connection=pre is conn.post)

    def read_weights(self, path, frame, conn, param):
        """One frame's weights from a PVP weights file (initWeightsFile) for this rank's kernels,
        ``[arbor, kernel, nyp, nxp, nfp]``; a missing file is an error on `param`.

        A non-shared file holds one patch per neuron of the global extended pre layer, in
        OpenPV's order; this tile's patches are picked by their global numbers."""
        from ..io.pvp import read_weights

        if not os.path.exists(path):
            raise PvmpiError("weights file not found", file=path, group=conn.name, param=param)
        W = read_weights(path, frame)[1]
        if conn.shared:
            return W
        t, pre = conn.pre.tile, conn.pre
        patches = (t.ny_global + 2 * pre.margin_y) * (t.nx_global + 2 * pre.margin_x) * pre.nf
        if W.shape[1] != patches:
            raise PvmpiError(f"the file holds {W.shape[1]} patches; the non-shared weights of "
                             f"{conn.name} need {patches}, one per neuron of the extended "
                             f"{t.ny_global + 2 * pre.margin_y}x{t.nx_global + 2 * pre.margin_x}x"
                             f"{pre.nf} pre layer", file=path, group=conn.name, param=param)
        return W[:, conn.global_patch_numbers()]

    # ------------------------------------------------------------ building
    def _build(self):
        m = self.model
        self.layers = {g.name: _make(LAYERS, g, self, "layer") for g in m.layers}
        self.connections = {g.name: _make(CONNECTION_CLASSES, g, self, "connection") for g in m.connections}
        self.probes = {g.name: _make(PROBES, g, self, "probe") for g in m.probes}
        for layer in self.layers.values():
            layer.link(self.layers)
        # originals first, so clones and transposes (of transposes) find their geometry and weights
        self.conn_order = link_order(self.connections)
        for conn in self.conn_order:
            conn.link(self.layers, self.connections)
        for conn in self.conn_order:
            if hasattr(conn, "join_normalize_group"):
                conn.join_normalize_group(self.connections)
        self.incoming = {name: [] for name in self.layers}
        for conn in self.connections.values():
            pre, post = conn.pre, conn.post
            mx, my = conn.margins()
            pre.require_margin(mx, my)
            pre.num_levels = max(pre.num_levels, max(conn.stored_delays()) + 1)
            pre.wants_active_list |= conn.uses_active_list()
            if conn.channel >= 0:
                post.channels = max(post.channels, conn.channel + 1)
                self.incoming[post.name].append(conn)
        for layer in self.layers.values():
            layer.share_margins()
        for layer in self.layers.values():
            # A layer without delays whose activity no other layer of its phase reads (deliveries
            # into a layer run just before that layer's update) can update its A in place
            layer.in_place = layer.num_levels == 1 and not any(
                c.pre is layer and c.post is not layer and c.post.phase == layer.phase
                for c in self.connections.values())
            layer.allocate()
        for conn in self.connections.values():
            conn.allocate()
        self._warn_unread_channels()
        for probe in self.probes.values():
            probe.link(self.layers, self.probes)
        for layer in self.layers.values():
            g = layer.group
            if g.is_a("HyPerLCALayer") and g["adaptiveTimeScaleProbe"]:
                layer.time_scale_probe = self.probes[g["adaptiveTimeScaleProbe"]]
        self.phases = sorted({layer.phase for layer in self.layers.values()})
        self.by_phase = {p: [la for la in self.layers.values() if la.phase == p] for p in self.phases}
        self.layer_probes = {p: [pr for pr in self.probes.values() if isinstance(pr, LayerProbe)
                                 and pr.target.phase == p] for p in self.phases}
        self.time_scale_probes = [p for p in self.probes.values() if isinstance(p, AdaptiveTimeScaleProbe)]
        self.energy_probes = [p for p in self.probes.values() if isinstance(p, ColumnEnergyProbe)]
        # sampled at the end of each step, in file order (OpenPV's ColProbeOutputState)
        self.column_probes = [p for p in self.probes.values() if isinstance(p, (ColumnEnergyProbe, QuotientProbe))]
        self.plastic = [c for c in self.connections.values() if c.plastic]
        self.updating = [c for c in self.connections.values() if c.updater is not None]
        # renormalised after learning: those that learn, and the heads of normalizeGroups (their members may)
        self.normalizing = [c for c in self.connections.values()
                            if c.updater is not None or getattr(c, "group_members", None)]
        self.guard = NumericGuard(self)
        self.lagged = LaggedProbes(self)
        self.local_flags = None  # run() sets it: this rank's signal/clock flags for the step's collective

    def _warn_unread_channels(self):
        """A connection delivering into a channel its post layer's update multiplies by 0 (channels
        beyond 0 and 1 unless channelCoefficients says otherwise) changes nothing: say so."""
        import warnings

        for name, conns in self.incoming.items():
            coeffs = getattr(self.layers[name], "coefficients", None)
            if coeffs is None:
                continue
            for conn in conns:
                if coeffs[conn.channel] == 0:
                    warnings.warn(f"{conn.name}: channelCode {conn.channel} delivers into a channel that "
                                  f"{name}'s update multiplies by 0 (its channels are summed with "
                                  f"{[float(c) for c in coeffs]}; channelIndices/channelCoefficients change "
                                  f"that): it changes nothing, as in OpenPV")

    # ------------------------------------------------------------ start-up
    def initialize(self, resume=None):
        """Facts §3.1: InitializeState in params-file order, checkpoint state, normalise, publish, output.

        resume: a CheckpointReader to continue from (-r/-c): the run takes its
        time, step and every object's state, and appends to the outputs.
        """
        from ..io.openpv_checkpoint import open_checkpoint
        from .random import SeedAllocator

        seeds = SeedAllocator(self.initial_seed)
        for g in self.model.groups:  # generators made at allocation take their seeds first (facts §3.11(c))
            if g.name in self.layers:
                self.layers[g.name].allocate_random(seeds)
        for g in self.model.groups:  # params-file order decides the seeds (facts §3.11(c))
            obj = self.layers.get(g.name) or self.connections.get(g.name)
            if obj is not None and "originalConnName" not in g.params and not g.is_a("CloneVLayer"):
                obj.initialize(seeds)
        for layer in self.layers.values():  # clones once their originals have their state (OpenPV postpones them)
            if layer.group.is_a("CloneVLayer"):
                layer.initialize(seeds)
        for conn in self.conn_order:  # those with an original after it (OpenPV postpones them); no seeds
            if "originalConnName" in conn.group.params:
                conn.initialize(seeds)
        init_dir = self.model.column["initializeFromCheckpointDir"]
        if resume is None and init_dir:
            flagged = [o for o in self.stateful() if o.group.params.get("initializeFromCheckpointFlag")]
            if flagged:
                rd = open_checkpoint(init_dir, self.model.column["nbatch"])
                for obj in flagged:
                    obj.read_checkpoint(rd, fresh_outputs=True)
                rd.close()
        for conn in self.conn_order:
            conn.normalize_on_initialize()
            conn.finalize()
        for p in self.phases:
            for layer in self.by_phase[p]:
                layer.publish(0.0, initial=True)
        if resume is not None:
            self.restore(resume)
        continuing = resume
        if resume is not None and resume.saved_nbatch != self.model.column["nbatch"]:
            continuing = None  # frames per write change: the outputs start anew
        for obj in self.stateful():
            obj.open_output(continuing)
        if resume is not None:
            self.start_step = self.step
            return  # outputs continue; no t = 0 frames (facts §11.2)
        for p in self.phases:
            for layer in self.by_phase[p]:
                layer.write_output(0.0)
            for probe in self.layer_probes[p]:
                probe.output(0.0)
        for conn in self.connections.values():
            conn.write_output(0.0)

    def restore(self, rd):
        """Take the time, the step and every object's state from checkpoint reader ``rd``.

        The output files are left as they are: ``initialize`` decides how they
        continue; the bench uses this alone to time every repeat from one state.
        """
        self.guard.settle()  # the verdict on the state being replaced
        self.lagged.settle()
        self.t = float(rd.attr("column", "time"))
        self.step = int(rd.attr("column", "step"))
        for obj in self.stateful():
            obj.read_checkpoint(rd)
        for conn in self.conn_order:
            conn.finalize()

    def stateful(self):
        """Every layer, connection and probe: the objects with checkpoint state and output files."""
        return list(self.layers.values()) + list(self.connections.values()) + list(self.probes.values())

    # ------------------------------------------------------------ checkpoints
    def write_checkpoint(self, path):
        """Collective: every rank calls it at the same step, once the guard has passed it."""
        self.guard.settle()
        self.lagged.settle()

        if self.schedule is not None and self.schedule.skips(path, self.resumed_from):
            return  # the checkpoint this run was read from, as OpenPV tells it (facts §6.1)
        self.timers.call("checkpoint", self._write_checkpoint, path)
        self.checkpoints_written.append(path)

    def _write_checkpoint(self, path):
        import json

        from .. import __version__
        from ..io.openpv_checkpoint import checkpoint_writer

        for probe in self.probes.values():
            probe.flush()
        lay = self.comms.layout
        config = {g.name: {"class": g.cls, **{k: v for k, v in g.params.items() if k in g.given}}
                  for g in (self.model.column,) + self.model.groups}
        ck = checkpoint_writer(self.model.column["checkpointFormat"])(self.comms, path, {
            "pvmpi_version": __version__, "time": self.t, "step": self.step,
            "nbatch": self.model.column["nbatch"],
            "layout": f"BatchWidth={lay.batch_width} NumRows={lay.rows} NumColumns={lay.columns}",
            "config_path": str(self.model.path), "config": json.dumps(config)})
        ck.attrs("column", time=self.t, step=self.step)
        self._column_entries(ck)
        if self.model.column["printParamsFilename"]:
            ck.copy_file(os.path.join(self.output_path, self.model.column["printParamsFilename"]))
        for obj in self.stateful():
            obj.write_checkpoint(ck)
        from ..io.timers_report import write_timers

        write_timers(os.path.join(ck.tmp, "timers.txt"), self)  # collective; rank 0 writes (facts §6.3)
        ck.close()

    def _column_entries(self, ck):
        """HyPerCol's own entries in OpenPV's form: the next progress message, the idle counts of
        each phase (pvmpi never waits on a phase: 0) and the checkpoint schedule (facts §6.3)."""
        name, interval = self.model.column.name, self.model.column["progressInterval"]
        next_progress, steps_done = 0.0, self.step
        if interval > 0:  # OpenPV adds the interval at each step that starts at or after it
            for k in range(steps_done):
                if k * self.dt >= next_progress:
                    next_progress += interval
                    if next_progress > self.t:
                        break
        ck.entry(name, "nextProgressTime", next_progress, "<f8")
        ck.entry(name, "IdleCounts", np.zeros(max(self.phases, default=0) + 1, np.int32), "<i4")
        schedule = self.schedule
        if schedule is not None and schedule.enabled and schedule.mode == "step":
            done = self.step if self.step < self.final_step else self.step - 1  # the loop's last check
            ck.entry(name, "nextCheckpointStep",
                     (max(done, 0) // schedule.step_interval + 1) * schedule.step_interval, "<i8")
        elif schedule is not None and schedule.enabled and schedule.mode == "time":
            ck.entry(name, "nextCheckpointTime", schedule.next_time, "<f8")

    def _signal_checkpoint(self, schedule):
        """A checkpoint asked for by a signal; never deleted by deleteOlderCheckpoints."""
        path = schedule.final_path(self.step)
        if path is None:
            if self.comms.is_root:
                import sys
                print("pvmpi: warning: a signal asked for a checkpoint, but neither checkpointWriteDir "
                      "nor lastCheckpointDir is set", file=sys.stderr, flush=True)
            return
        self.write_checkpoint(path)

    # ------------------------------------------------------------ the time loop
    @property
    def final_step(self):
        return int(round(self.stop_time / self.dt))

    def run(self, resume=None):
        """Start (fresh, or continuing checkpoint directory ``resume``), step to stopTime, finish.

        Returns the failures of test probes; ``self.stopped_by_signal`` tells
        whether SIGUSR2/SIGTERM ended the run early (after a checkpoint).
        """
        self.start(resume)
        try:
            self.advance_to(self.stop_time)
        except BaseException:
            self.abandon()
            raise
        return self.finish()

    def start(self, resume=None):
        """Initialise the state at t = 0, or take it from checkpoint directory ``resume``; from
        here signals ask for checkpoints (collective)."""
        from ..io.openpv_checkpoint import open_checkpoint
        from .checkpointing import SIGNALS, CheckpointSchedule

        self.schedule = CheckpointSchedule(self)
        SIGNALS.install()
        self.local_flags = lambda: SIGNALS.take(self.schedule.clock_due())
        reader = None
        try:
            if resume is not None:
                reader = open_checkpoint(resume, self.model.column["nbatch"])
                self.resumed_from = resume
            self.initialize(reader)
        except BaseException:
            self.abandon()
            raise
        finally:
            if reader is not None:
                reader.close()

    def advance_to(self, t_stop):
        """Step until ``t_stop`` (at most stopTime), writing the checkpoints the schedule or a signal
        asks for; a stopping signal ends it early (``stopped_by_signal``)."""
        schedule = self.schedule
        t_stop = min(t_stop, self.stop_time)
        with set_up_frozen():
            while self.t < t_stop - self.dt / 2 and not self.stopped_by_signal:
                if schedule.due(self.step, self.t, self.dt):
                    self.write_checkpoint(schedule.path(self.step))
                    schedule.record(schedule.path(self.step), self.comms.is_root)
                self.advance()
                self._act_on(self.guard.take_flags())
            self.guard.settle()  # the last step's verdict, and the flags it carries
            self.lagged.settle()
            self._act_on(self.guard.take_flags())

    def _act_on(self, flags):
        """Checkpoint (clock, SIGUSR1) or stop (SIGUSR2, SIGTERM) as the verdicts' flags say: alike on
        every rank, a step after a rank raised them when there is more than one rank."""
        from .checkpointing import CHECKPOINT_NOW, CLOCK_DUE, STOP

        if not flags:
            return
        schedule = self.schedule
        if flags & CLOCK_DUE:
            self.write_checkpoint(schedule.path(self.step))
            schedule.record(schedule.path(self.step), self.comms.is_root)
        elif flags & CHECKPOINT_NOW and not flags & STOP:
            self._signal_checkpoint(schedule)
        if flags & STOP:
            self.stopped_by_signal = True

    def finish(self):
        """The final checkpoint (lastCheckpointDir, or the last Checkpoint<step>), every output file
        closed on every rank; the failures of test probes (collective)."""
        try:
            self.lagged.settle()
            final = self.schedule.final_path(self.step)
            if final is None and self.stopped_by_signal:
                self._signal_checkpoint(self.schedule)
            elif final and final not in self.checkpoints_written[-1:]:
                self.write_checkpoint(final)
        finally:
            self.abandon()
        from ..failure import print_held, take_held

        held = self.comms.allgather(take_held())  # also: every rank's output files are closed
        if self.comms.is_root:
            print_held([text for texts in held for text in texts])
        return self.failures()

    def abandon(self):
        """Stop listening for signals and close every output file (after an error too)."""
        from .checkpointing import SIGNALS

        SIGNALS.uninstall()
        self.local_flags = None
        self.lagged.drop()
        self.close()

    def advance(self):
        """One time step (facts §3.2).

        numpy's floating-point warnings are off: an overflow or NaN ends in the
        guard's one clear error for the step instead of stray warnings.
        """
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            self._advance()

    def _advance(self):
        self.t += self.dt
        self.step += 1
        t = self.t
        timers = self.timers
        if self.time_scale_probes:  # the time scales adapt to the energy the last step left
            self.lagged.settle()
        for probe in self.time_scale_probes:
            probe.adapt(t)
            probe.output(t)
        updated = []
        for p in self.phases:
            updating = [la for la in self.by_phase[p] if la.needs_update(t)]
            for layer in updating:
                if self.incoming[layer.name]:
                    layer.begin_delivery()
                    for conn in self.incoming[layer.name]:
                        timers.call("deliver:" + conn.name, conn.deliver)
                    layer.end_delivery()
                layer.begin_update()
                timers.call("update:" + layer.name, layer.update, t)
                layer.controller.mark(t)
            for layer in self.by_phase[p]:
                layer.publish(t)  # times its own halo exchange
            updated += updating
        # A layer's output and probes see the state of its own phase, which later
        # phases do not change: they wait until the guard has passed the whole step.
        if self.lagged.waiting:  # the lines of the step before, their sums waited for
            with timers.time("probes"):
                self.lagged.settle()
        with timers.time("guard"):  # NaN verdict, signals, checkpoint clock: a reduction per block of steps
            self.guard.check(updated, self.local_flags() if self.local_flags is not None else 0)
        for p in self.phases:
            for layer in self.by_phase[p]:
                timers.call("io:" + layer.name, layer.write_output, t)
            with timers.time("probes"):
                for probe in self.layer_probes[p]:
                    self.lagged.output(probe, t)
        for conn in self.updating:
            timers.call("learn:" + conn.name, conn.update_weights, t)  # the all-reduce times itself
        for conn in self.normalizing:
            timers.call("learn:" + conn.name, conn.normalize_updated)
        for conn in self.conn_order:
            conn.finalize()
        for conn in self.connections.values():
            timers.call("io:" + conn.name, conn.write_output, t)
        with timers.time("probes"):
            for probe in self.column_probes:
                self.lagged.output(probe, t)
        if self.progress is not None:
            self.progress(self)

    def energy(self):
        """Mean over this rank's batch elements of the first energy probe's latest values, or None."""
        if not self.energy_probes:
            return None
        return float(np.mean(self.energy_probes[0].values()))

    def failures(self):
        """The messages of RequireAllZeroActivityProbes that fail the run, alike on every rank:
        a probe fails when any batch element had activity, from the earliest time (collective)."""
        probes = [p for p in self.probes.values() if isinstance(p, RequireAllZeroActivityProbe)]
        if not probes:
            return []
        for p, firsts in zip(probes, zip(*self.comms.allgather([p.first_nonzero for p in probes]))):
            seen = [t for t in firsts if t is not None]
            p.first_nonzero = min(seen) if seen else None
        return [f for p in probes for f in [p.failure()] if f]

    def close(self):
        """Close the output files of every layer, connection and probe."""
        for obj in list(self.layers.values()) + list(self.connections.values()) + list(self.probes.values()):
            obj.close()
