"""The backend contract: every kernel a backend provides, its arguments and their shapes, and
what a backend can do (:class:`Capabilities`).

Conventions: a layer buffer is ``[nb, ny, nx, nf]`` float32 (this rank's
batch elements and tile); an *extended* buffer carries margins ``lt``
(x) and ``up`` (y) on each side, ``[nb, ny + 2up, nx + 2lt, nf]``; shared
weights are ``[nkernels, nyp, nxp, nfp]`` per arbor (PVP type-5 order);
an axis map is ``(mul, off, div, nkernels)`` with post start
``(mul*i + off) // div`` of pre neuron ``i`` (:mod:`pvmpi.geometry`); an
active list is ``(offsets [nb+1] int64, idx int32, val float32)`` of the
nonzero entries of an extended buffer. The numpy backend
(:mod:`pvmpi.kernels.numpy_ref`) is the truth the others are tested against.
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class Kernel:
    """One entry of the contract: the name, the argument names in order, what it computes."""

    name: str
    args: tuple
    doc: str


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do beyond the kernels every backend has.

    ``device_resident``: the engine's state lives in device memory
    (``to_host``/``to_device`` copy; halos are packed there: :data:`DEVICE`).
    ``gemm_delivery``: dense deliveries whose post neurons all read the same
    pattern go through ``deliver_im2col`` (im2col + a BLAS GEMM).
    """

    device_resident: bool = False
    gemm_delivery: bool = False


def _k(name, args, doc):
    return Kernel(name, tuple(args.split()), doc)


_AXES = "xmul xoff xdiv nkx ymul yoff ydiv nky"

#: Compute kernels: every backend has them.
COMPUTE = (
    _k("deliver_pre", f"A W G {_AXES} lt up overwrite",
       "G[nb, ny, nx, nfp] += A (extended pre [nb, ny', nx', nf]) through W [nk, nyp, nxp, nfp]: the "
       "pre-perspective convolution over every extended pre neuron; overwrite: G = the sums (as 0 + sums)"),
    _k("active_list", "A lt up stats reuse",
       "the active list of extended A (what a sparse layer publishes); stats: optional per-element sums; "
       "reuse: optional earlier list of the same layer, no longer read, whose buffers may be overwritten"),
    _k("deliver_sparse", f"offsets idx val nf_pre nx_ext W G {_AXES} lt up overwrite",
       "deliver_pre visiting only the active list of the pre layer"),
    _k("deliver_post", "A W G xtab ytab nkx overwrite",
       "the post-perspective gather: each post neuron sums its inputs through the tables of "
       "geometry.post_table ([n, patch, 3] per axis)"),
    _k("accumulate_input", "GSyn coefficients G",
       "G[nb, ny, nx, nf] = sum over channels of c[ch] * GSyn[ch] (GSyn [nch, nb, ny, nx, nf])"),
    _k("apply_transfer", "V A lt up VThresh AMin AMax AShift VWidth sums",
       "A's restricted window = the threshold transfer of V (facts 3.6); sums: optional [nb] float64, "
       "the window's sum per batch element (the guard's check) from the same pass"),
    _k("update_ann", "GSyn coefficients V A lt up VThresh AMin AMax AShift VWidth sums",
       "an ANN layer's step: V = accumulate_input(GSyn), then A's restricted window = transfer(V) as "
       "apply_transfer (sums likewise); with no threshold and no cap, a HyPerLayer's V = G, A = V"),
    _k("update_lca", "V A G exp_tau self_interact lt up VThresh AMin AMax AShift VWidth v_sums A_prev",
       "HyPerLCALayer's step: V = e V + (1 - e)(G + s A), then A = transfer(V); exp_tau per batch element"),
    _k("hebbian_shared", f"A_pre A_post dW counts dw_max {_AXES} lt_pre up_pre lt_post up_post",
       "dW[nk, nyp, nxp, nfp] += the Hebbian term of shared weights, counts[nk] += contributions (facts 4.5)"),
    _k("hebbian_shared_sparse",
       f"offsets idx val nf_pre nx_ext A_post dW counts dw_max {_AXES} lt_pre up_pre lt_post up_post",
       "hebbian_shared from the active list of the pre layer"),
    _k("layer_stats", "X lt up ny nx nnz_threshold",
       "[nb, 6] float64 per batch element of X's restricted window: sum, sum |a|, sum a^2, "
       "count |a| > threshold, min, max"),
    _k("firm_threshold_cost", "X lt up ny nx w",
       "[nb] float64: sum of the firm-threshold cost of X's restricted window (facts 5.2)"),
    _k("scale_into", "dst src scale add dst_lt dst_up src_lt src_up sums",
       "dst (+)= scale * src on the restricted windows of two [nb, y, x, f] buffers; sums: optional [nb] "
       "float64, dst's window's sum per batch element (the guard's check) from the same pass"),
    _k("update_momentum_lca", "V G A_prev prev_drive exp_tau self_interact rate lt up",
       "MomentumLCALayer's V step (drive kept in prev_drive)"),
    _k("apply_vertex_transfer", "V A lt up vv va slope_neg slope_pos",
       "A's restricted window = the piecewise-linear transfer of V through (verticesV, verticesA)"),
    _k("momentum_weights", "W dw prev a f c",
       "MomentumConn's step: new = a dw + f prev - c W; prev = new; W += new (facts 4.6)"),
    _k("deliver_max_pool", "A G xtab ytab overwrite active_only gate x0 y0 nx_ext",
       "max pooling: G[b, y, x, f] (= or max=) the largest A of feature f over the pre neurons of the post "
       "tables (geometry.post_table); active_only: zeros do not count (-inf where none is nonzero); gate "
       "(or None): the winner's global extended pre index (the last of equal values; -1: none), the tile at "
       "(x0, y0) of a pre layer nx_ext wide"),
    _k("unpool_max", "A G gate lt up g_lt g_up q0 x0 y0 nx_ext margin_x margin_y",
       "TransposePoolingConn of max pooling: each nonzero A (extended, inside its global layer: q0 = (x0, y0, "
       "nx, ny) of its tile and layer) goes to the neuron that won its pool (gate, extended by g_lt, g_up: "
       "global extended indices of a layer nx_ext wide with margins), if on G's tile at (x0, y0) and larger "
       "in magnitude than what is there"),
    _k("deliver_feature_max", "A G lt up add",
       "G[nb, ny, nx, 0] (+)= the largest feature of extended A at each restricted position (WTAConn)"),
    _k("sigmoid_transfer", "V A lt up Vth scale sigmoid inverse",
       "A's restricted window = 1/(1 + exp(2(V - Vth) scale)), or with sigmoid False the clipped ramp "
       "0.5 - (V - Vth) scale/2; with inverse 1 - that (SigmoidLayer)"),
    _k("retina_rate", "GSyn A lt up gain base",
       "A's restricted window = gain (GSyn[0] - GSyn[1]) + base (the non-spiking Retina)"),
    _k("retina_spikes", "GSyn A since rng lt up dt prob_base prob_stim burst abs_refractory refractory",
       "the spiking Retina: each neuron past its absolute refractory period draws from its taus88 generator "
       "(rng uint32 [4, nb, ny, nx, nf]) and spikes (A = 1, since = 0) with OpenPV's probability; since "
       "[nb, ny, nx, nf] counts the time since the last spike"),
    _k("lif_arma", "GSyn A V Vth G_E G_I G_IB gap rng lt up consts with_gap",
       "LIF's (LIFGap's with_gap) 'arma' step per neuron: noise drawn from its taus88 generator (rng uint32 "
       "[4, nb, ny, nx, nf]), conductances G_E G_I G_IB, V and the threshold Vth (all [nb, ny, nx, nf]), A = "
       "spikes; consts float32 (see numpy_ref.LIF_CONSTS)"),
    _k("spikelet", "A lt up V src s_lt s_up amp",
       "GapLayer: A's restricted window = V, plus amp where src (extended, margins s_lt, s_up) is positive"),
    _k("background", "A lt up src s_lt s_up rep",
       "BackgroundLayer: each of src's nf features repeated rep times after rep copies of a background feature "
       "(1 where every src feature is 0), on the restricted windows"),
    _k("mask_activity", "A lt up M m_lt m_up invert",
       "MaskLayer: A's restricted window = 0 where mask M is 0 (invert: where it is not); M extended with margins "
       "m_lt, m_up and nf 1 or A's nf, or [1, 1, 1, nf] to mask features"),
    _k("combine_channels", "GSyn G op",
       "G[nb, ny, nx, nf] = GSyn[0] / GSyn[1] (op QUOTIENT: PtwiseQuotientLayer), GSyn[0] * GSyn[1] (PRODUCT: "
       "PtwiseProductLayer) or GSyn[0]² (SQUARE: ANNSquaredLayer)"),
    _k("firm_threshold_transfer", "V A lt up VThresh VWidth",
       "A's restricted window = the firm-threshold cost of V: |v|(1 - |v|/(2w)) for |v| <= w, else w/2, "
       "w = VThresh + VWidth (FirmThresholdCostLayer)"),
    _k("rescale_batch", "dst src coeffs dst_lt dst_up src_lt src_up",
       "RescaleLayer over the whole layer: dst = ((src - shift) / div) * scale + offset, coeffs [nb, 4] per "
       "batch element"),
    _k("rescale_features", "dst src method target_mean target_std dst_lt dst_up src_lt src_up",
       "RescaleLayer over the features at each position (pointmeanstd, pointResponseNormalization, "
       "softmax) or per neuron (logreg, zerotonegative)"),
    _k("dropout", "A rng probability lt up",
       "DropoutLayer: step each neuron's taus88 generator (rng uint32 [4, nb, ny, nx, nf]), A = 0 where "
       "s0 % 100 < probability"),
)

#: The engine's state, made and moved where the backend keeps it: every backend has them.
STATE = (
    _k("zeros", "shape", "a float32 buffer of zeros where the backend keeps state"),
    _k("to_device", "a", "an array where the kernels want it (the array itself on the host)"),
    _k("to_host", "a", "state as a numpy array, for output and checkpoints"),
    _k("host_buffer", "a", "where to compose a new value of buffer a on the host before upload"),
    _k("upload", "dst host", "dst[...] = host (broadcast)"),
    _k("fill_zero", "X", "X[...] = 0"),
    _k("copy", "dst src", "dst[...] = src for buffers of one shape"),
    _k("gather_flat", "dst src index", "dst.flat[i] = src.flat[index[i]], 0 where index[i] < 0 (a "
       "TransposeConn's weights)"),
)

#: Only with ``gemm_delivery``.
GEMM = (
    _k("deliver_im2col", "A M G x0 y0 sy sx overwrite",
       "a dense delivery whose post neurons all read the same pattern, as im2col and one GEMM with M "
       "(the patch matrix of Im2colPlan)"),
)

#: Only with ``device_resident``: halo strips packed where the state lives, the device's clock.
DEVICE = (
    _k("pack_halo", "A buf y0 x0", "buf = the window of extended A at (y0, x0) with buf's shape"),
    _k("unpack_halo", "A buf y0 x0", "the window of extended A at (y0, x0) = buf"),
    _k("mirror_halo", "A mx my nx ny edges", "fill A's margins at the layer's edges by mirroring (mirrorBCflag)"),
    _k("synchronize", "", "wait until the device has finished every kernel launched"),
    _k("layer_stats_later", "X lt up ny nx nnz_threshold",
       "layer_stats started now, its result() read later: the reads of a step share one wait for the device"),
)


def required(capabilities):
    """The kernels a backend with ``capabilities`` must define."""
    return COMPUTE + STATE + (GEMM if capabilities.gemm_delivery else ()) + \
        (DEVICE if capabilities.device_resident else ())
