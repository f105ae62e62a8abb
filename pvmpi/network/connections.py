"""Connections at run time: weights, delivery into GSyn, learning, weight output.

A connection never loops over neurons: it picks a delivery kernel of the
backend (dense pre-perspective scatter, sparse scatter from the pre layer's
active list, or post-perspective gather) and calls it once per arbor on the
whole local batch (facts §4).
"""
import numpy as np

from ..errors import PvmpiError
from ..geometry import axis_map, post_table, transpose_weights
from .im2col import Im2colPlan, worth_gemm
from .schedule import WriteSchedule

F32 = np.float32


class Connection:
    """Base: pre and post layers, channel, delays."""

    has_weights = False
    plastic = False
    updater = None  # the weight updater of a plastic connection or a CopyConn

    def __init__(self, group, run):
        self.group = group
        self.name = group.name
        self.run = run
        self.channel = group["channelCode"]
        self.pre = None
        self.post = None

    def link(self, layers, connections):
        """Resolve preLayerName and postLayerName to this rank's layers (clones find originals in `connections`)."""
        self.pre = layers[self.group["preLayerName"]]
        self.post = layers[self.group["postLayerName"]]

    @property
    def num_arbors(self):
        return 1

    def stored_delays(self):
        """The delays the pre layer's data store must hold (the delay parameter, in steps): OpenPV keeps
        them even for connections that deliver from level 0 only."""
        return Connection.delays(self)

    def delays(self):
        """Delay of each arbor in steps (facts §0: round(delay/dt))."""
        d = self.group["delay"]
        n = self.num_arbors
        if len(d) not in (1, n):
            raise PvmpiError(f"has {len(d)} values for {n} arbors", group=self.name, param="delay",
                             hint="give one value, or one per arbor")
        steps = [int(round(v / self.run.dt)) for v in d]
        return steps * n if len(steps) == 1 else steps

    def margins(self):
        """Margins this connection requires on its pre layer (x, y)."""
        return 0, 0

    def uses_active_list(self):
        """Whether the pre layer must build its active list at publish (sparse delivery, learning)."""
        return False

    def allocate(self):
        """Buffers that depend on final margins, after every layer has allocated; none here."""

    def initialize(self, seeds):
        """InitializeState (facts §3.1): draw initial weights from `seeds` in params-file order; none here."""

    def normalize_on_initialize(self):
        """Start-up normalisation of the initial (or checkpoint-read) weights; none here."""

    def deliver(self):
        """Add this connection's input into the post layer's GSyn channel: per arbor, at that arbor's delay."""
        raise NotImplementedError

    def finalize(self):
        """After weight updates: follow the original's weights (transposes)."""

    def unit_input(self, G):
        """Add to host G [nb, ny, nx, nf] what this connection delivers from activity 1 everywhere (a
        LIFGap's gap strength, OpenPV's deliverUnitInput)."""
        raise PvmpiError(f"a {self.group.cls} cannot deliver into a gap channel (channelCode 3)", group=self.name,
                         param="channelCode")

    def open_output(self, resume=None):
        """Open the weights file, continuing it when `resume` is a checkpoint being continued; none here."""

    @property
    def key(self):
        return "connections/" + self.name

    def write_checkpoint(self, ck):
        """Connections without weights of their own hold no state."""

    def read_checkpoint(self, rd, fresh_outputs=False):
        """Restore state from checkpoint `rd` (fresh_outputs: keep the new output schedule); none here."""

    def write_output(self, t):
        """Write the weights at time t if writeStep says a frame is due; none here."""

    def close(self):
        """Close output files; none here."""


class IdentConn(Connection):
    """GSyn_ch += scale * A_pre, neuron by neuron (facts §4.3)."""

    scale = 1.0

    def unit_input(self, G):
        """G += scale: what it delivers from activity 1."""
        G += F32(self.scale)

    def deliver(self):
        """GSyn_ch += scale * A_pre, neuron by neuron, for each delay; channelCode -1 delivers nothing.

        A stale channel is overwritten rather than cleared and then added to.
        """
        if self.channel < 0:
            return
        pre = self.pre
        for d in self.delays():
            g, overwrite = self.post.gsyn_target(self.channel, True)
            self.run.kernels.scale_into(g, pre.level(d), F32(self.scale), not overwrite,
                                        src_lt=pre.margin_x, src_up=pre.margin_y)


class RescaleConn(IdentConn):
    """IdentConn with the factor `scale` from its params: GSyn_ch += scale * A_pre (facts §4.3)."""

    @property
    def scale(self):
        return self.group["scale"]


class WTAConn(Connection):
    """GSyn_ch of the one-feature post layer += the largest feature of the pre layer at each
    position (pre and post of the same nx, ny). As OpenPV's, it reads the current activity whatever
    the delay."""

    def delays(self):
        """OpenPV's WTA delivery reads delay level 0 only (its delay parameter is never applied)."""
        return [0]

    def deliver(self):
        """For each delay; channelCode -1 delivers nothing. A stale channel is overwritten."""
        if self.channel < 0:
            return
        pre = self.pre
        for d in self.delays():
            g, overwrite = self.post.gsyn_target(self.channel, True)
            self.run.kernels.deliver_feature_max(pre.level(d), g, pre.margin_x, pre.margin_y, not overwrite)


class WeightedConnection(Connection):
    """Shared weights W[arbor, kernel, nyp, nxp, nfp] with the geometry of facts §4.1, written to
    ``<outputPath>/<name>.pvp`` (PVP type 5) every writeStep."""

    has_weights = True
    writes_weights = True  # OpenPV's CloneConn never writes its (borrowed) weights
    writer = None

    def __init__(self, group, run):
        super().__init__(group, run)
        self.write_schedule = WriteSchedule(group["writeStep"], group["initialWriteTime"], run.dt / 2)

    def writes(self):
        """Whether a weights file is written (writeStep >= 0, and the class writes at all)."""
        return self.writes_weights and self.group["writeStep"] >= 0

    def open_output(self, resume=None):
        """The root opens <outputPath>/<name>.pvp; nothing if writeStep < 0.

        When continuing a checkpoint the file is cut back to its checkpointed frame count and appended.
        """
        from ..io import pvp
        from ..io.outputs import continue_output

        if not self.writes() or not self.run.comms.is_root:
            return
        frames = None if resume is None else resume.attr(self.key, "output_frames", -1)
        frames = None if frames is None or frames < 0 else frames
        self.writer = pvp.WeightsWriter(self.run.output_file(self.name + ".pvp"), append=frames is not None,
                                        compressed=self.group["writeCompressedWeights"])
        if frames is not None:
            continue_output(self.writer, frames)

    def write_output(self, t):
        """Append a weights frame (PVP type 5, or type 3 for non-shared weights) when due; whether one was due."""
        if not self.writes() or not self.write_schedule.due(t):
            return False
        self.write_weights(self.writer, t, self.run.kernels.to_host(self.weights))
        return True

    def write_checkpoint(self, ck):
        """The output schedule and the frames written (the weights are the subclass's)."""
        ck.attrs(self.key, next_write=self.write_schedule.next,
                 output_frames=self.writer.num_frames if self.writer is not None else -1)
        if self.writes():
            ck.entry(self.name, "nextWrite", self.write_schedule.next, "<f8")
        if self.writer is not None:
            ck.file_position(self.name, self.writer.position)

    def read_checkpoint(self, rd, fresh_outputs=False):
        """Restore the output schedule unless fresh_outputs (initializeFromCheckpointDir)."""
        if not fresh_outputs:
            self.write_schedule.next = rd.attr(self.key, "next_write", self.write_schedule.next)

    def close(self):
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def link(self, layers, connections):
        """Resolve pre and post, then build the x and y axis maps of the patch geometry."""
        super().link(layers, connections)
        self.maps = self.axis_maps()

    def axis_maps(self):
        """The (x, y) axis maps from pre to post (facts §4.1); each subclass derives its patch size."""
        raise NotImplementedError

    @property
    def xmap(self):
        return self.maps[0]

    @property
    def ymap(self):
        return self.maps[1]

    @property
    def shared(self):
        return True

    @property
    def kernels_x(self):
        """Kernels along x: numKernelsX for shared weights; one per extended pre column otherwise.

        Non-shared weights reuse every shared-weight kernel: the kernel index
        formula (xe − lt) mod kernels_x is a bijection on the extended
        columns, so one patch per pre neuron is just a kernel per neuron.
        """
        return self.xmap.n_kernels if self.shared else self.pre.extended_shape[2]

    @property
    def kernels_y(self):
        return self.ymap.n_kernels if self.shared else self.pre.extended_shape[1]

    @property
    def num_kernels(self):
        return self.kernels_x * self.kernels_y * self.pre.nf

    def pre_of_kernel(self):
        """Non-shared weights: the local extended pre neuron (ye, xe, f) of each kernel index."""
        import numpy as np

        k = np.arange(self.num_kernels, dtype=np.int64)
        f, kx, ky = k % self.pre.nf, (k // self.pre.nf) % self.kernels_x, k // (self.pre.nf * self.kernels_x)
        return (ky + self.pre.margin_y) % self.kernels_y, (kx + self.pre.margin_x) % self.kernels_x, f

    def global_patch_numbers(self):
        """Non-shared weights: each kernel's global extended pre neuron index, OpenPV's patch order."""
        t, nf = self.pre.tile, self.pre.nf
        ye, xe, f = self.pre_of_kernel()
        nxe = t.nx_global + 2 * self.pre.margin_x
        return ((ye + t.ky0) * nxe + xe + t.kx0) * nf + f

    def global_nonshared(self, W):
        """This tile's part of global non-shared weights [arbor, yExt, xExt, f, nyp, nxp, nfp].

        A patch element belongs to the rank owning its post neuron: only that
        rank's copy is up to date (the others never deliver through it). An
        element past the post layer's edge (never updated) belongs to the tile at that edge.
        """
        pre, t, pt = self.pre, self.pre.tile, self.post.tile
        ye, xe, f = self.pre_of_kernel()
        xm, ym = self.xmap, self.ymap
        px = (xm.mul * (xe - pre.margin_x) + xm.off) // xm.div
        py = (ym.mul * (ye - pre.margin_y) + ym.off) // ym.div
        px = px[:, None] + np.arange(W.shape[3])
        py = py[:, None] + np.arange(W.shape[2])
        in_x = ((px >= 0) | (pt.kx0 == 0)) & ((px < pt.nx) | (pt.kx0 + pt.nx == pt.nx_global))
        in_y = ((py >= 0) | (pt.ky0 == 0)) & ((py < pt.ny) | (pt.ky0 + pt.ny == pt.ny_global))
        owned = in_y[:, :, None] & in_x[:, None, :]
        out = np.zeros((W.shape[0], t.ny_global + 2 * pre.margin_y, t.nx_global + 2 * pre.margin_x, pre.nf)
                       + W.shape[2:], W.dtype)
        out[:, ye + t.ky0, xe + t.kx0, f] = W * owned[None, :, :, :, None]
        return out

    def nonshared_geometry(self):
        """nx, ny, nf of the pre layer (global) and this connection's own margins: a type-3 header."""
        t = self.pre.tile
        return t.nx_global, t.ny_global, self.pre.nf, self.xmap.margin, self.ymap.margin

    def write_nonshared_frame(self, writer, t, glob):
        """Append global non-shared weights (see :meth:`global_nonshared`) to ``writer`` as OpenPV
        writes them (type 3)."""
        patches, inside = self.openpv_nonshared(glob)
        writer.write_nonshared(t, patches, *self.nonshared_geometry(), inside=inside)

    def openpv_nonshared(self, glob):
        """Global non-shared weights [arbor, yExt, xExt, f, nyp, nxp, nfp] (the pre layer's margins)
        as OpenPV writes them: [arbor, patch, nyp, nxp, nfp], one patch per neuron of the pre layer
        extended by this connection's margins, elements past the post layer 0 (facts §1.5); and the
        mask of the elements inside the post layer, shaped to broadcast to them."""
        pre, post, xm, ym = self.pre, self.post.tile, self.xmap, self.ymap
        cy, cx = pre.margin_y - ym.margin, pre.margin_x - xm.margin
        g = glob[:, cy:glob.shape[1] - cy, cx:glob.shape[2] - cx]
        ye, xe = np.arange(g.shape[1]), np.arange(g.shape[2])
        py = ((ym.mul * (ye - ym.margin) + ym.off) // ym.div)[:, None] + np.arange(g.shape[4])
        px = ((xm.mul * (xe - xm.margin) + xm.off) // xm.div)[:, None] + np.arange(g.shape[5])
        inside_y, inside_x = (py >= 0) & (py < post.ny_global), (px >= 0) & (px < post.nx_global)
        mask = np.broadcast_to(inside_y[:, None, None, :, None, None] & inside_x[None, :, None, None, :, None],
                               g.shape[1:])
        shape = (g.shape[0], -1) + g.shape[4:]
        return (g * mask[None]).reshape(shape), mask.reshape(shape[1:])[None]

    def checkpoint_openpv_weights(self, ck, name, W):
        """Weights-shaped data only OpenPV's form keeps (its ``<conn>_dW.pvp``): shared as they are,
        non-shared gathered from the tiles (collective)."""
        if self.shared:
            ck.openpv_weights(name, W, (self.xmap.n_kernels, self.ymap.n_kernels, self.pre.nf))
            return
        total = self.run.comms.spatial_sum_at_root(self.global_nonshared(W))
        if total is not None and self.run.comms.batch_index == 0:
            ck.nonshared_weights(name, self, total)

    def write_weights(self, writer, t, W):
        """Append this rank's ``W`` at ``t`` to ``writer`` (the root's; None elsewhere): shared weights
        as they are (type 5), non-shared ones gathered from the tiles (type 3; collective)."""
        if self.shared:
            if writer is not None:
                writer.write(t, W, self.xmap.n_kernels, self.ymap.n_kernels, self.pre.nf)
            return
        total = self.run.comms.spatial_sum_at_root(self.global_nonshared(W))
        if writer is not None:
            self.write_nonshared_frame(writer, t, total)

    def margins(self):
        return self.xmap.margin, self.ymap.margin

    @property
    def weights(self):
        raise NotImplementedError

    def delivery_mode(self):
        """Which kernel delivers: OpenPV's flag chooses gather; a sparse pre layer scatters its active list."""
        if self.group["updateGSynFromPostPerspective"]:
            return "post"
        if self.pre.group["sparseLayer"]:
            return "sparse"
        return "pre"

    def uses_active_list(self):
        """Sparse delivery scatters from the pre layer's active list; channelCode -1 delivers nothing."""
        return self.channel >= 0 and self.delivery_mode() == "sparse"

    def allocate(self):
        """Choose the delivery path once margins are final.

        Gather (post-perspective) and GEMM delivery need post tables; the im2col
        plan is kept only when the backend has GEMM delivery and it pays off.
        """
        self.im2col = None
        self._delivery = None
        mode = self.delivery_mode() if self.channel >= 0 else None
        gemm = mode in ("pre", "post") and self.run.kernels.CAPABILITIES.gemm_delivery
        if mode == "post" or gemm:
            self.xtab = post_table(self.xmap, self.pre.margin_x)
            self.ytab = post_table(self.ymap, self.pre.margin_y)
            if not self.shared:  # the kernel column becomes the pre neuron's own index
                self.xtab[..., 2] = (self.xtab[..., 0] - self.pre.margin_x) % self.kernels_x
                self.ytab[..., 2] = (self.ytab[..., 0] - self.pre.margin_y) % self.kernels_y
        if gemm:
            plan = Im2colPlan.from_tables(self.xtab, self.ytab)
            if worth_gemm(plan, self.pre.nf, self.post.nf):
                self.im2col = plan

    def unit_input(self, G):
        """G += each post neuron's total weight from the extended pre layer (every arbor), on the host."""
        from ..kernels import numpy_ref

        W = np.asarray(self.run.kernels.to_host(self.weights), F32)
        ones = np.ones(self.pre.extended_shape, F32)
        for arbor in range(W.shape[0]):
            numpy_ref.deliver_pre(ones, W[arbor], G, *self.map_args(), self.pre.margin_x, self.pre.margin_y)

    def map_args(self):
        """The x then y (mul, off, div, kernels) arguments of the pre and sparse delivery kernels."""
        xm, ym = self.xmap, self.ymap
        return (xm.mul, xm.off, xm.div, self.kernels_x, ym.mul, ym.off, ym.div, self.kernels_y)

    def deliver(self):
        """One kernel call per arbor on the whole local batch, reading the data store at the arbor's delay.

        im2col GEMM where planned, else post gather, sparse scatter from the active
        list, or dense pre-perspective scatter (facts §4.2).
        """
        if self.channel < 0:
            return
        k = self.run.kernels
        W = self.weights
        pre = self.pre
        mode, delays, args = self._delivery or self._plan_delivery()
        for arbor, d in enumerate(delays):
            G, overwrite = self.post.gsyn_target(self.channel, True)  # every form can write instead of add
            if self.im2col is not None:
                plan = self.im2col
                k.deliver_im2col(pre.level(d), plan.matrix(W[arbor], pre.nf, self.kernels_x), G,
                                 plan.x0, plan.y0, plan.sy, plan.sx, overwrite)
            elif mode == "post":
                k.deliver_post(pre.level(d), W[arbor], G, self.xtab, self.ytab, self.kernels_x, overwrite)
            elif mode == "sparse":
                offsets, idx, val = pre.active_level(d)
                k.deliver_sparse(offsets, idx, val, pre.nf, pre.extended_shape[2], W[arbor], G, *args, overwrite)
            else:
                k.deliver_pre(pre.level(d), W[arbor], G, *args, overwrite)

    _delivery = None  # (mode, delays, map_args + pre margins): worked out once, at the first delivery

    def _plan_delivery(self):
        """The delivery's mode, delays and geometry arguments, fixed once margins are (see allocate)."""
        self._delivery = (self.delivery_mode(), tuple(self.delays()),
                          self.map_args() + (self.pre.margin_x, self.pre.margin_y))
        return self._delivery


class HyPerConn(WeightedConnection):
    """Owns its weights: initialisation, normalisation, Hebbian learning, output."""

    def __init__(self, group, run):
        super().__init__(group, run)
        self.plastic = bool(group.params.get("plasticityFlag"))  # a CopyConn's: its original's (see link)
        self.version = 0  # bumped whenever W changes, so transposes know when to follow
        self.timestamp = -np.inf  # OpenPV's weights timestamp: when W last changed (learning, normalising)
        self.renormalize = False  # W learned this step: normalize_updated renormalises it
        self.group_members = []  # connections with normalizeGroup naming this one: normalised with it

    @property
    def num_arbors(self):
        return self.group["numAxonalArbors"]

    @property
    def shared(self):
        return self.group["sharedWeights"]

    def axis_maps(self):
        """Axis maps from nxp/nyp and the local pre/post sizes; an invalid ratio names nxp or nyp."""
        maps = []
        for axis, n_pre, n_post in (("x", self.pre.tile.nx, self.post.tile.nx),
                                    ("y", self.pre.tile.ny, self.post.tile.ny)):
            try:
                maps.append(axis_map(n_pre, n_post, self.group[f"n{axis}p"]))
            except PvmpiError as e:
                raise PvmpiError(e.what, group=self.name, param=f"n{axis}p", hint=e.hint) from None
        return tuple(maps)

    @property
    def weights(self):
        return self.W

    @property
    def shape(self):
        g = self.group
        return (self.num_arbors, self.num_kernels, g["nyp"], g["nxp"], g["nfp"])

    def link(self, layers, connections):
        """Also build the weight updater; compressed non-shared weights are refused."""
        super().link(layers, connections)
        g = self.group
        if not self.shared and g["writeStep"] >= 0 and g["writeCompressedWeights"]:
            raise PvmpiError("compressed non-shared weights are not written", group=self.name,
                             param="writeCompressedWeights", hint="set writeCompressedWeights = false")
        if not self.shared and g["writeCompressedCheckpoints"]:
            raise PvmpiError("compressed non-shared weights are not written", group=self.name,
                             param="writeCompressedCheckpoints", hint="set writeCompressedCheckpoints = false")
        self.updater = self.weight_updater(layers)

    def weight_updater(self, layers):
        """Hebbian (momentum for a MomentumConn) when plasticityFlag is set, else None."""
        from .plasticity import make_updater

        return make_updater(self, layers) if self.plastic else None

    def uses_active_list(self):
        """Learning from a sparse pre layer also walks its active list."""
        return super().uses_active_list() or (self.plastic and self.pre.group["sparseLayer"])

    def initialize(self, seeds):
        """W at t = 0 from weightInitType (seeds in params-file order); a plastic connection allocates dW."""
        self.W = self.run.kernels.to_device(np.ascontiguousarray(self.run.initial_weights(self, seeds), dtype=F32))
        self.timestamp = 0.0  # OpenPV's weight initialisation stamps W with t = 0
        if self.updater is not None:
            self.updater.allocate()

    def normalize_on_initialize(self):
        """Normalise the start-up weights when normalizeOnInitialize is set (facts §3.1 step 5); a
        normalizeGroup member is normalised by its group's head."""
        if self.group["normalizeOnInitialize"] and self.group["normalizeMethod"] != "normalizeGroup":
            self.normalize()

    def join_normalize_group(self, connections):
        """normalizeGroup: join the head named by normalizeGroupName (shared weights, one patch count)."""
        if self.group["normalizeMethod"] != "normalizeGroup":
            return
        head = connections[self.group["normalizeGroupName"]]
        if not (self.shared and head.shared) or self.num_kernels != head.num_kernels or \
                self.num_arbors != head.num_arbors:
            raise PvmpiError(f"normalizeGroup needs shared weights with the arbors and patch count of "
                             f"'{head.name}'", group=self.name, param="normalizeGroupName")
        head.group_members.append(self)

    def normalize(self):
        """Apply normalizeMethod to W (facts §4.8), bump `version` for transposes and set the
        timestamp; 'none' does nothing."""
        from .normalizers import normalize

        g = self.group
        if g["normalizeMethod"] == "none":
            return
        npre = self.pre.tile.nx_global * self.pre.tile.ny_global * self.pre.nf
        npost = self.post.tile.nx_global * self.post.tile.ny_global * self.post.nf
        if g["normalizeMethod"] == "normalizeGroup":
            return  # its group's head normalises it
        k = self.run.kernels
        W = k.to_host(self.W)  # OpenPV's sequential float32 sums: on the host (weights only, when they change)
        members = [self] + self.group_members
        if len(members) > 1:  # a group: each patch's elements of every member, in OpenPV's order
            parts = [np.asarray(k.to_host(m.W), F32).reshape(m.W.shape[:2] + (-1,)) for m in members]
            W = np.ascontiguousarray(np.concatenate(parts, axis=2))[:, :, None, None, :]
        order = first_of_all = None
        if not self.shared:  # whole patches, in OpenPV's global order; the first failing one of all tiles
            lay = self.run.comms.layout
            if lay.rows * lay.columns > 1:
                W = self.whole_patches(W)
            order = self.global_patch_numbers()
            first_of_all = lambda n: int(self.run.comms.spatial_min(np.array([n]))[0])  # noqa: E731
        normalize(W, g["normalizeMethod"], g, num_pre=npre, num_post=npost, order=order,
                  first_of_all=first_of_all)
        start = 0
        for m in members:
            size = int(np.prod(m.W.shape[2:]))
            k.upload(m.W, np.ascontiguousarray(W.reshape(W.shape[:2] + (-1,))[:, :, start:start + size]).reshape(m.W.shape)
                     if len(members) > 1 else W)
            start += size
            m.version += 1
            m.timestamp = self.run.t

    def update_weights(self, t):
        """The updater's step at t (Hebbian learning if due; a CopyConn's copy); renormalising
        waits for :meth:`normalize_updated` (OpenPV normalises after every connection's update)."""
        self.renormalize = self.updater is not None and self.updater.update(t)
        if self.renormalize:
            self.version += 1
            self.timestamp = t

    def normalize_updated(self):
        """Renormalise W changed by this step's update if normalizeOnWeightUpdate (facts §4.5); a group's
        head when any of its members learned."""
        if self.group["normalizeMethod"] == "normalizeGroup":
            return  # the head looks at (and resets) this connection's flag
        learned = self.renormalize or any(m.renormalize for m in self.group_members)
        if learned and self.group["normalizeOnWeightUpdate"]:
            self.normalize()
        for m in [self] + self.group_members:
            m.renormalize = False

    def open_output(self, resume=None):
        """The weights file (see the base class) and the updater's files, on the root."""
        super().open_output(resume)
        if self.writer is not None and self.updater is not None:
            self.updater.open_output(resume)

    def checkpoint_weights(self, ck, name, W, doc, compressed=False):
        """Write weights-shaped data ``[..., kernel, nyp, nxp, nfp]`` (W, dW, prev_dW) as a global
        array: as it is for shared weights, as [..., pre y, pre x, pre f (global extended),
        nyp, nxp, nfp] for non-shared ones, so that no layout shows in a checkpoint."""
        if self.shared:
            ck.shared(name, W, doc, weights_geometry=(self.xmap.n_kernels, self.ymap.n_kernels, self.pre.nf),
                      compressed=compressed)
            return
        lead = W.shape[:-4]
        glob = self.global_nonshared(W.reshape((-1,) + W.shape[-4:]))
        total = ck.tile_sum(name, glob.reshape(lead + glob.shape[1:]), doc)
        if total is not None and len(lead) == 1:  # W, prev_dW (not the [dW, counts] pair)
            ck.nonshared_weights(name, self, total)

    def restore_weights(self, rd, name, like):
        """The data :meth:`checkpoint_weights` wrote under ``name``, shaped like ``like`` (this
        tile's patches of non-shared weights)."""
        if self.shared:
            return rd.shared(name, like.shape)
        t = self.pre.tile
        ye, xe, f = self.pre_of_kernel()
        lead = like.shape[:-4]
        glob = rd.shared(name, lead + (t.ny_global + 2 * self.pre.margin_y,
                                       t.nx_global + 2 * self.pre.margin_x, self.pre.nf) + like.shape[-3:])
        return np.ascontiguousarray(glob[..., ye + t.ky0, xe + t.kx0, f, :, :, :])

    def whole_patches(self, W):
        """Non-shared W with every patch complete: a patch that straddles tiles takes each element
        from the rank owning its post neuron (the others' copies are stale). Collective (spatial)."""
        t = self.pre.tile
        ye, xe, f = self.pre_of_kernel()
        glob = self.run.comms.spatial_sum(self.global_nonshared(W))
        return np.ascontiguousarray(glob[:, ye + t.ky0, xe + t.kx0, f])

    def write_checkpoint(self, ck):
        """W (8-bit in OpenPV's form with writeCompressedCheckpoints), the write schedule, the updater's state."""
        self.checkpoint_weights(ck, self.key + "/W", self.run.kernels.to_host(self.W),
                                "weights [arbor, kernel, y, x, f] (PVP type-5 order); non-shared: "
                                "[arbor, pre y, pre x, pre f (global extended), y, x, f]",
                                compressed=self.group["writeCompressedCheckpoints"])
        super().write_checkpoint(ck)
        if self.updater is not None:
            self.updater.write_checkpoint(ck, self.key)

    def read_checkpoint(self, rd, fresh_outputs=False):
        """Restore W, the write schedule (unless fresh_outputs) and the updater's state.

        Non-shared weights are read from the global array, this tile's patches picked out.
        """
        k = self.run.kernels
        k.upload(self.W, self.restore_weights(rd, self.key + "/W", k.to_host(self.W)))
        self.version += 1
        self.timestamp = self.run.t
        super().read_checkpoint(rd, fresh_outputs)
        if self.updater is not None:
            self.updater.read_checkpoint(rd, self.key, fresh_outputs)

    def write_output(self, t):
        """The weights frame when due (collective for non-shared weights); a MomentumConn's updater
        also writes prev_dW."""
        if not self.writes() or not self.write_schedule.due(t):
            return False
        self.write_weights(self.writer, t, self.run.kernels.to_host(self.weights))
        if self.updater is not None:
            self.updater.write_output(t)
        return True

    def close(self):
        """Close the weights file and the updater (its outputs, any dW all-reduce in flight)."""
        super().close()
        if self.updater is not None:
            self.updater.close()


class MomentumConn(HyPerConn):
    """HyPerConn with momentum (facts §4.6); the updater holds prev_dW."""


def same_geometry(conn, layers, connections):
    """Link a CloneConn or CopyConn: its original, pre and post (which must have the original's
    sizes) and the original's axis maps."""
    o = conn.original = connections[conn.group["originalConnName"]]
    Connection.link(conn, layers, connections)
    if (conn.pre.tile.nx, conn.pre.tile.ny, conn.pre.nf) != (o.pre.tile.nx, o.pre.tile.ny, o.pre.nf) \
            or (conn.post.tile.nx, conn.post.tile.ny, conn.post.nf) != \
            (o.post.tile.nx, o.post.tile.ny, o.post.nf):
        raise PvmpiError(f"pre/post sizes differ from those of '{o.name}'", group=conn.name,
                         param="originalConnName")
    conn.maps = o.maps


def same_pre_margins(conn, verb):
    """Non-shared weights are indexed by extended pre neuron: the pre margins must be the original's."""
    o = conn.original
    if not o.shared and (conn.pre.margin_x, conn.pre.margin_y) != (o.pre.margin_x, o.pre.margin_y):
        raise PvmpiError(f"{verb} the non-shared weights of '{o.name}' needs the same pre-layer margins",
                         group=conn.name, param="originalConnName")


class FollowsOriginal:
    """What a CloneConn and a CopyConn take from their original: geometry, arbors, sharedWeights
    (and for non-shared weights its pre margins)."""

    verb = "following"  # in the message when the pre margins differ

    def link(self, layers, connections):
        """Take the original's axis maps; pre and post must have the original's sizes."""
        same_geometry(self, layers, connections)

    @property
    def num_arbors(self):
        return self.original.num_arbors

    @property
    def shared(self):
        return self.original.shared

    def allocate(self):
        """Non-shared weights are indexed by extended pre neuron, so the pre margins must match the original's."""
        same_pre_margins(self, self.verb)
        super().allocate()


class CloneConn(FollowsOriginal, WeightedConnection):
    """Delivers with the original connection's weights (same geometry); never writes them."""

    writes_weights = False
    verb = "cloning"

    @property
    def weights(self):
        return self.original.W


class PoolingConn(WeightedConnection):
    """Pools each feature of the pre layer over HyPerConn's patch geometry (nxp, nyp): maxpooling takes
    the largest value, overwriting its channel as OpenPV does; sumpooling and avgpooling deliver through
    implied weights (1, or 1/(nxp·nyp·pre/post scale)) of the same feature. As in OpenPV the pooled
    activity is always the current one, whatever the delay."""

    writes_weights = False
    axis_maps = HyPerConn.axis_maps

    def __init__(self, group, run):
        super().__init__(group, run)
        self.method = group["pvpatchAccumulateType"]
        self.index_layer = None  # the PoolingIndexLayer that records max pooling's winners (needPostIndexLayer)

    def delays(self):
        """OpenPV's pooling reads delay level 0 only."""
        return [0]

    def link(self, layers, connections):
        """Pre and post have the same nf; the implied weights of sum and avg pooling; the index layer."""
        super().link(layers, connections)
        if self.group["needPostIndexLayer"]:
            self.index_layer = layers[self.group["postIndexLayerName"]]
        if self.pre.nf != self.post.nf:
            raise PvmpiError(f"pre layer '{self.pre.name}' and post layer '{self.post.name}' must have the same "
                             f"nf ({self.pre.nf} vs {self.post.nf})", group=self.name, param="postLayerName")
        w = F32(1)
        if self.method == "avgpooling":
            sx = F32(self.pre.tile.nx) / F32(self.post.tile.nx)
            sy = F32(self.pre.tile.ny) / F32(self.post.tile.ny)
            w = F32(1) / (F32(self.group["nxp"]) * sx * F32(self.group["nyp"]) * sy)
        nk, nf = self.num_kernels, self.pre.nf
        same = np.arange(nf)[None, :] == (np.arange(nk) % nf)[:, None]  # [kernel, post f]: the same feature
        W = np.where(same[:, None, None, :], w, F32(0)).astype(F32)
        self.implied = np.ascontiguousarray(np.broadcast_to(W[None], (1, nk, self.group["nyp"], self.group["nxp"], nf)))

    def allocate(self):
        """The implied weights where the kernels read them; max pooling gathers through the post tables."""
        super().allocate()
        self.W = self.run.kernels.to_device(self.implied)
        if self.method == "maxpooling" and self.channel >= 0 and not hasattr(self, "xtab"):
            self.xtab = post_table(self.xmap, self.pre.margin_x)
            self.ytab = post_table(self.ymap, self.pre.margin_y)

    @property
    def weights(self):
        return self.W

    def deliver(self):
        """Max pooling overwrites its channel with the largest values (a sparse pre layer walked from its
        active list, unless updateGSynFromPostPerspective, counts nonzero values only); sum and avg
        pooling deliver as a HyPerConn."""
        if self.channel < 0:
            return
        if self.method != "maxpooling":
            return super().deliver()
        G, _ = self.post.gsyn_target(self.channel, True)
        active_only = self.delivery_mode() == "sparse"
        pre, index = self.pre, self.index_layer
        t = pre.tile
        self.run.kernels.deliver_max_pool(pre.level(0), G, self.xtab, self.ytab, True, active_only,
                                          None if index is None else index.gsyn[0], t.kx0, t.ky0,
                                          t.nx_global + 2 * pre.margin_x)


def _link_transpose(conn, layers, connections):
    """Link a transpose to its original (returned): its pre and post must have the size of the original's
    post and pre; its axis maps use the original's post-perspective patch size (facts §4.1)."""
    conn.original = o = connections[conn.group["originalConnName"]]
    Connection.link(conn, layers, connections)
    for mine, theirs, what in ((conn.pre, o.post, "pre"), (conn.post, o.pre, "post")):
        if (mine.tile.nx, mine.tile.ny, mine.nf) != (theirs.tile.nx, theirs.tile.ny, theirs.nf):
            raise PvmpiError(f"the {what} layer '{mine.name}' must have the size of '{theirs.name}' "
                             f"(the original's {'post' if what == 'pre' else 'pre'} layer)",
                             group=conn.name, param=f"{what}LayerName")
    conn.maps = (axis_map(conn.pre.tile.nx, conn.post.tile.nx, o.xmap.patch_post),
                 axis_map(conn.pre.tile.ny, conn.post.tile.ny, o.ymap.patch_post))
    return o


class TransposePoolingConn(WeightedConnection):
    """Sends a pooled layer's activity back through its PoolingConn (originalConnName): after max
    pooling each value goes to the neuron that won its pool (the original's PoolingIndexLayer), replacing
    a smaller magnitude; after sum or avg pooling each neuron takes the largest value whose transposed patch
    reaches it, as OpenPV's unpooling does. Delay 0, as OpenPV's."""

    writes_weights = False

    def link(self, layers, connections):
        """The original PoolingConn (pre and post are its post and pre) and the transposed patch geometry."""
        o = _link_transpose(self, layers, connections)
        if o.method == "maxpooling":
            if o.index_layer is None:
                raise PvmpiError(f"'{o.name}' must record its winners (needPostIndexLayer = true) for a "
                                 f"transpose of max pooling", group=self.name, param="originalConnName")
            o.index_layer.require_margin(*self.margins())  # the winners of this connection's halo too

    def delays(self):
        """OpenPV's unpooling reads delay level 0 only."""
        return [0]

    def allocate(self):
        """The post tables of the transposed geometry."""
        self.im2col = None
        if self.channel >= 0:
            self.xtab = post_table(self.xmap, self.pre.margin_x)
            self.ytab = post_table(self.ymap, self.pre.margin_y)

    @property
    def weights(self):
        return None

    def uses_active_list(self):
        return False

    def deliver(self):
        """Unpool into the channel (cleared first when this is its first delivery)."""
        if self.channel < 0:
            return
        G, _ = self.post.gsyn_target(self.channel, False)
        k, pre, o = self.run.kernels, self.pre, self.original
        if o.method == "maxpooling":
            index, t, pt = o.index_layer, pre.tile, self.post.tile
            k.unpool_max(pre.level(0), G, index.level(0), pre.margin_x, pre.margin_y, index.margin_x,
                         index.margin_y, (t.kx0, t.ky0, t.nx_global, t.ny_global), pt.kx0, pt.ky0,
                         pt.nx_global + 2 * o.pre.margin_x, o.pre.margin_x, o.pre.margin_y)
        else:
            k.deliver_max_pool(pre.level(0), G, self.xtab, self.ytab, False, True)


class PlasticCloneConn(CloneConn):
    """A CloneConn that joins its original's learning: the original's updater adds this
    connection's Hebbian term (its own pre and post) to its dW."""

    def link(self, layers, connections):
        """Also join the original's updater (a non-plastic original learns nothing from it either)."""
        super().link(layers, connections)
        updater = self.original.updater
        if hasattr(updater, "clones"):
            updater.clones.append(self)

    def uses_active_list(self):
        """Learning from a sparse pre layer walks its active list."""
        return super().uses_active_list() or (self.original.plastic and self.pre.group["sparseLayer"])


class CopyConn(FollowsOriginal, HyPerConn):
    """Its own copy of the original's weights (geometry, arbors and sharedWeights too), taken at
    InitializeState and whenever the original's change, normalised by its own normalizer; delivers,
    writes and checkpoints like a HyPerConn (OpenPV's CopyConn)."""

    uses_active_list = WeightedConnection.uses_active_list  # it never learns
    verb = "copying"

    def link(self, layers, connections):
        """The original's geometry (see :class:`FollowsOriginal`); plastic when the original is; its
        updater is a :class:`~.plasticity.CopyUpdater`."""
        super().link(layers, connections)
        self.plastic = self.original.plastic
        self.updater = self.weight_updater(layers)

    def weight_updater(self, layers):
        """A CopyUpdater, plastic or not (OpenPV checkpoints its lastUpdateTime either way)."""
        from .plasticity import CopyUpdater

        return CopyUpdater(self)

    @property
    def shape(self):
        return self.original.shape

    def initialize(self, seeds):
        """A copy of the original's initial weights (the column initialises it after its original); its
        timestamp stays -inf unless normalised, so the first update copies again (as in OpenPV)."""
        self.W = self.run.kernels.zeros(self.original.W.shape)
        self.copy_original()

    def copy_original(self):
        """W = the original's W, where the weights live."""
        self.run.kernels.copy(self.W, self.original.W)


class TransposeConn(WeightedConnection):
    """The adjoint of the original's weights, recomputed whenever they change.

    The original may itself be a TransposeConn or FeedbackConn (it must be
    linked and finalised first: the column orders connections by the depth
    of their chain of originals). ``version`` counts the recomputations, so a
    transpose of this one knows when to follow.
    """

    version = 0

    def link(self, layers, connections):
        """Resolve the original (shared weights only) and check that pre and post match its post and pre.

        The axis maps use the original's post-perspective patch size (facts §4.1).
        """
        _link_transpose(self, layers, connections)
        self.seen_version = -1
        self.source_index = None

    @property
    def num_arbors(self):
        return self.original.num_arbors

    @property
    def shared(self):
        """Shared when the original's weights are; non-shared transposes are non-shared too (OpenPV)."""
        return self.original.shared

    @property
    def weights(self):
        return self.W

    def write_checkpoint(self, ck):
        """Also the transposed W, in OpenPV's form only, when it writes its weights (OpenPV keeps a
        writing TransposeConn's weights; pvmpi recomputes them from the original's)."""
        super().write_checkpoint(ck)
        if self.writes():
            self.checkpoint_openpv_weights(ck, self.key + "/W", self.run.kernels.to_host(self.weights))

    def finalize(self):
        """Follow the original's weights when they have changed: a fixed gather of its W.

        The transpose only moves weights, so it is computed once on an index
        array; every later change is one gather where the weights live. Non-shared
        weights are gathered from the original's global array, each element from the
        rank owning its post neuron (collective over the tiles).
        """
        o = self.original
        if o.version != self.seen_version:
            k = self.run.kernels
            if o.shared:
                source = o.W
            else:  # OpenPV's transpose of a transpose has the weights of the original's original
                root, odd = self.root()
                source = k.to_device(self.run.comms.spatial_sum(root.global_nonshared(np.asarray(k.to_host(root.W)))))
            if self.source_index is None:
                index = self.shared_source() if o.shared else self.nonshared_source(source.shape, root, odd)
                self.W = k.zeros(index.shape)
                self.source_index = k.to_device(np.ascontiguousarray(index.reshape(-1)))
            k.gather_flat(self.W, source, self.source_index)
            self.seen_version = o.version
            self.version += 1

    def shared_source(self):
        """Where each transposed weight is in the original's shared W (flat indices, W_T's shape)."""
        o = self.original
        return transpose_weights(np.arange(o.W.size, dtype=np.int64).reshape(o.W.shape), o.xmap, o.ymap, o.pre.nf)

    def root(self):
        """The first original that is not a transpose, and whether this connection transposes it (an odd
        number of transposes) or has its very weights (even: OpenPV shares the Weights object)."""
        o, odd = self.original, True
        while isinstance(o, TransposeConn):
            o, odd = o.original, not odd
        return o, odd

    def nonshared_source(self, glob_shape, root, odd):
        """Where each weight of this non-shared transpose is in ``root``'s global non-shared array
        ``glob_shape`` = [arbor, pre y, pre x (global extended), pre f, nyp, nxp, nfp] (flat indices,
        W_T's shape): w_T[q → p] = w[p → q], -1 (a zero) where no such weight exists or q is past the
        layer's edge; with ``odd`` False the root's own patches."""
        o, t = root, self.pre.tile
        arbors, YE, XE, nf_o, nyp_o, nxp_o, nfp_o = glob_shape
        ye, xe, fq = self.pre_of_kernel()  # this transpose's pre neurons (the original's post)
        if not odd:  # the root's own patches of this tile's pre neurons
            a = np.arange(arbors)[:, None]
            base = ((a * YE + ye + t.ky0) * XE + xe + t.kx0) * nf_o + fq
            return (base[:, :, None] * (nyp_o * nxp_o * nfp_o) + np.arange(nyp_o * nxp_o * nfp_o)).reshape(
                (arbors, len(fq), nyp_o, nxp_o, nfp_o))
        iq_y, iq_x = ye - self.pre.margin_y + t.ky0, xe - self.pre.margin_x + t.kx0  # global restricted

        def axis(iq, n_q, mine, theirs, margin, n_ext, patch_o):
            j = ((mine.mul * iq + mine.off) // mine.div)[:, None] + np.arange(mine.patch)  # p, global restricted
            offset = iq[:, None] - (theirs.mul * j + theirs.off) // theirs.div  # q in p's patch
            ok = (j + margin >= 0) & (j + margin < n_ext) & (offset >= 0) & (offset < patch_o)
            # OpenPV transposes only the patch parts inside the post layer: q beyond its edge gets 0
            return j + margin, offset, ok & ((iq >= 0) & (iq < n_q))[:, None]

        jy, oy, ok_y = axis(iq_y, t.ny_global, self.ymap, o.ymap, o.pre.margin_y, YE, nyp_o)
        jx, ox, ok_x = axis(iq_x, t.nx_global, self.xmap, o.xmap, o.pre.margin_x, XE, nxp_o)
        a = np.arange(arbors)[:, None, None, None, None]
        fo = np.arange(nf_o)[None, None, None, None, :]
        jy, oy = jy[None, :, :, None, None], oy[None, :, :, None, None]
        jx, ox = jx[None, :, None, :, None], ox[None, :, None, :, None]
        index = (((((a * YE + jy) * XE + jx) * nf_o + fo) * nyp_o + oy) * nxp_o + ox) * nfp_o + fq[None, :, None,
                                                                                                    None, None]
        ok = (ok_y[:, :, None] & ok_x[:, None, :])[None, :, :, :, None]
        return np.where(ok, index, -1).astype(np.int64)


class FeedbackConn(TransposeConn):
    """A TransposeConn from the original's post layer to its pre layer (the model fills them in)."""


def link_order(connections):
    """Connections ordered so that every original comes before the clones and transposes that use it."""
    def depth(conn):
        d, name = 0, conn.group.params.get("originalConnName")
        while name is not None:
            d += 1
            name = connections[name].group.params.get("originalConnName")
        return d

    return sorted(connections.values(), key=depth)  # stable: file order within a depth


CONNECTION_CLASSES = {
    "HyPerConn": HyPerConn,
    "MomentumConn": MomentumConn,
    "CloneConn": CloneConn,
    "PlasticCloneConn": PlasticCloneConn,
    "CopyConn": CopyConn,
    "TransposeConn": TransposeConn,
    "FeedbackConn": FeedbackConn,
    "IdentConn": IdentConn,
    "RescaleConn": RescaleConn,
    "WTAConn": WTAConn,
    "PoolingConn": PoolingConn,
    "TransposePoolingConn": TransposePoolingConn,
}
