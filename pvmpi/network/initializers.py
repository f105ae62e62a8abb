"""Initial values of V and of shared weights, as OpenPV computes them.

Only the values: the caller allocates seeds (through
:class:`pvmpi.network.random.SeedAllocator`, in params-file order, using
:func:`init_v_seed_count` / :func:`weights_seed_count`) and passes the base
it got.  Random types follow facts 3.11(d)-(f) exactly, so a params file
starts from OpenPV's own initial state whatever the MPI layout.

``params`` is the mapping of one params group (OpenPV names).  The defaults
below are OpenPV's; they are applied here only for parameters a caller left
out.
"""
from __future__ import annotations

import warnings

import numpy as np

from pvmpi.errors import PvmpiError
from pvmpi.network.paramget import get, get_f32
from pvmpi.network.random import TausBank, bank_for_tile, prepare_logf

__all__ = [
    "INITV_TYPES",
    "RANDOM_INITV_TYPES",
    "RANDOM_WEIGHT_TYPES",
    "WEIGHT_INIT_TYPES",
    "GEOMETRIC_WEIGHT_TYPES",
    "Gauss2DGeometry",
    "gauss2d_weights",
    "init_v",
    "init_v_seed_count",
    "init_weights",
    "weights_seed_count",
]

INITV_TYPES = ("ZeroV", "ConstantV", "UniformRandomV", "GaussianRandomV",
               "DiscreteUniformRandomV", "InitVFromFile")
RANDOM_INITV_TYPES = frozenset({"UniformRandomV", "GaussianRandomV", "DiscreteUniformRandomV"})

WEIGHT_INIT_TYPES = ("UniformRandomWeight", "GaussianRandomWeight",
                     "DiscreteUniformRandomWeight", "UniformWeight", "Gauss2DWeight", "FileWeight",
                     "OneToOneWeights", "IdentWeight", "OneToOneWeightsWithDelays", "CoCircWeight",
                     "SpreadOverArborsWeight", "SmartWeight")
#: the types that need the connection's unit cells (a Gauss2DGeometry)
GEOMETRIC_WEIGHT_TYPES = ("Gauss2DWeight", "CoCircWeight", "OneToOneWeights", "IdentWeight", "OneToOneWeightsWithDelays",
                          "SpreadOverArborsWeight", "SmartWeight")
RANDOM_WEIGHT_TYPES = frozenset({"UniformRandomWeight", "GaussianRandomWeight",
                                 "DiscreteUniformRandomWeight"})

_TWO32 = 4294967296.0  # 1 + CL_RANDOM_MAX


def _required(params, name, group, what, owner):
    v = get(params, name, owner)
    if v is None:
        raise PvmpiError(f"{what} needs parameter {name}", group=group, param=name)
    return v


def _int_param(params, name, group, owner):
    v = get(params, name, owner)
    if float(v) != int(v):
        raise PvmpiError(f"{name} must be an integer, not {v!r}", group=group, param=name)
    return int(v)


def _file_param(params, name, owner):
    v = get(params, name, owner)
    if v is None or (isinstance(v, str) and v.strip() in ("", "NULL")):
        return None
    return str(v)


# --------------------------------------------------------------------------
# InitV
# --------------------------------------------------------------------------

def init_v_seed_count(init_type, nbatch_global, ny_global, nx_global) -> int:
    """Seeds an InitV object allocates: the restricted global layer with nf
    treated as 1 (every global batch element counts, even unused ones)."""
    if init_type in RANDOM_INITV_TYPES:
        return int(nbatch_global) * int(ny_global) * int(nx_global)
    return 0


def init_v(init_type, params, *, seed_base=None, nbatch_global, kb0, nb,
           ny_global, nx_global, ky0, kx0, ny, nx, nf,
           read_pvp_frame=None, pvp_frame_count=None, group=None) -> np.ndarray:
    """Initial membrane potential of one rank's tile, float32 ``[nb, ny, nx, nf]``.

    Random types draw from one RNG per restricted (x, y) of global batch
    element 0 (seed ``seed_base + yG*nxG + xG``); global batch element g,
    feature f takes draw ``g*nf + f + 1``: OpenPV's values in one process.
    So no layout changes V (OpenPV's batch processes would seed from their
    own first element instead; facts §3.11(d)); a rank skips ``kb0*nf`` draws.

    InitVFromFile: ``read_pvp_frame(path, frame)`` returns the global frame
    ``[ny_global, nx_global, nf]`` of a dense pvp file.  Global batch element
    g reads frame ``frameNumber + g`` (OpenPV's InitVFromFile), taken modulo
    the frame count when ``pvp_frame_count(path)`` is given -- so a file
    written by an nbatch run (one frame per batch element) restores each
    element's own V.
    """
    params = params or {}
    if init_type is None:
        init_type = "ConstantV"
    if not (0 <= kb0 and kb0 + nb <= nbatch_global):
        raise ValueError(f"local batch {kb0}..{kb0 + nb} outside nbatch {nbatch_global}")
    shape = (nb, ny, nx, nf)

    if init_type == "ZeroV":
        return np.zeros(shape, np.float32)
    if init_type == "ConstantV":
        return np.full(shape, get_f32(params, "valueV", "HyPerLayer"), np.float32)
    if init_type == "InitVFromFile":
        return _init_v_from_file(params, shape, kb0, ny_global, nx_global, ky0, kx0,
                                 read_pvp_frame, pvp_frame_count, group)
    if init_type not in RANDOM_INITV_TYPES:
        raise PvmpiError(f"unknown InitVType {init_type!r}", group=group, param="InitVType",
                         hint="one of " + ", ".join(INITV_TYPES))
    if seed_base is None:
        raise ValueError(f"{init_type} needs seed_base")

    bank = bank_for_tile(seed_base, ny_global=ny_global, nx_global=nx_global,
                         kb0=0, ky0=ky0, kx0=kx0, nb=1, ny=ny, nx=nx)
    if init_type == "UniformRandomV":
        lo = get_f32(params, "minV", "HyPerLayer")
        hi = get_f32(params, "maxV", "HyPerLayer")
        draw = lambda: bank.uniform_range(lo, hi)  # noqa: E731
    elif init_type == "GaussianRandomV":
        mean = get_f32(params, "meanV", "HyPerLayer")
        sigma = get_f32(params, "maxV", "HyPerLayer")  # OpenPV reads sigma from "maxV"
        prepare_logf(nb * nf * ny * nx)
        draw = lambda: bank.gaussian_range(mean, sigma)  # noqa: E731
    else:  # DiscreteUniformRandomV, computed in double
        lo = get_f32(params, "minV", "HyPerLayer")
        hi = get_f32(params, "maxV", "HyPerLayer")
        nvals = _int_param(params, "numValues", group, "HyPerLayer")
        if nvals < 2:
            raise PvmpiError(f"numValues is {nvals}, but it must be at least 2",
                             group=group, param="numValues")
        if hi < lo:
            raise PvmpiError(f"maxV={hi} is less than minV={lo}", group=group, param="maxV")
        lo_d, dv = float(lo), (float(hi) - float(lo)) / (nvals - 1.0)
        p = nvals / _TWO32

        def draw():
            j = np.floor(p * bank.uint().astype(np.float64))
            return (lo_d + dv * j).astype(np.float32)

    for _ in range(kb0 * nf):  # the draws of the global batch elements before this rank's
        draw()
    v = np.empty(shape, np.float32)
    for b in range(nb):
        for f in range(nf):
            v[b, :, :, f] = draw().reshape(ny, nx)
    return v


def _init_v_from_file(params, shape, kb0, ny_global, nx_global, ky0, kx0,
                      read_pvp_frame, pvp_frame_count, group):
    path = _file_param(params, "Vfilename", "HyPerLayer")
    if path is None:
        raise PvmpiError("InitVFromFile needs parameter Vfilename", group=group,
                         param="Vfilename")
    if not path.endswith(".pvp"):
        raise PvmpiError("InitVFromFile reads only .pvp files", file=path, group=group,
                         param="Vfilename")
    if read_pvp_frame is None:
        raise ValueError("InitVFromFile needs read_pvp_frame")
    frame0 = _int_param(params, "frameNumber", group, "HyPerLayer")
    count = int(pvp_frame_count(path)) if pvp_frame_count is not None else None
    nb, ny, nx, nf = shape
    v = np.empty(shape, np.float32)
    for b in range(nb):
        frame = frame0 + kb0 + b
        if count is not None:
            frame %= count
        data = np.asarray(read_pvp_frame(path, frame))
        if data.shape != (ny_global, nx_global, nf):
            raise PvmpiError(
                f"frame {frame} is {'x'.join(map(str, data.shape))} (ny x nx x nf), "
                f"but the layer is {ny_global}x{nx_global}x{nf}",
                file=path, group=group, param="Vfilename")
        v[b] = data[ky0:ky0 + ny, kx0:kx0 + nx, :]
    return v


# --------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------

def weights_seed_count(init_type, nk, *, init_weights_file=None) -> int:
    """Seeds a shared-weight initializer allocates: one per kernel (data
    patch) for the random types, none when the weights come from a file."""
    if init_type in RANDOM_WEIGHT_TYPES and not init_weights_file:
        return int(nk)
    return 0


def init_weights(init_type, params, *, shape, seed_base=None, patch_seeds=None,
                 read_weights=None, group=None, warn=None, geometry=None) -> np.ndarray:
    """Initial weights, float32 ``[arbors, nk, nyp, nxp, nfp]``.

    Random types use one RNG per data patch (seed ``seed_base + k`` for
    shared weights, or ``patch_seeds[k]`` when the caller computed them, e.g.
    for non-shared weights); arbors share that RNG, arbor 1 continuing where
    arbor 0 stopped.  Any type with ``initWeightsFile`` reads frame
    ``frameNumber`` through ``read_weights(path, frame)``, which returns
    ``[arbors, patches, nyp, nxp, nfp]``. Gauss2DWeight needs ``geometry``
    (a :class:`Gauss2DGeometry`).
    """
    params = params or {}
    warn = warn or (lambda msg: warnings.warn(msg, stacklevel=3))
    arbors, nk, nyp, nxp, nfp = (int(s) for s in shape)
    shape = (arbors, nk, nyp, nxp, nfp)

    path = _file_param(params, "initWeightsFile", "HyPerConn")
    if path is not None:
        return _read_weights_file(path, params, shape, read_weights, group)
    if init_type == "FileWeight":
        raise PvmpiError("FileWeight needs parameter initWeightsFile", group=group,
                         param="initWeightsFile")
    if init_type == "UniformWeight":
        w = np.full(shape, get_f32(params, "weightInit", "HyPerConn"), np.float32)
        if get(params, "connectOnlySameFeatures", "HyPerConn"):
            kf = np.arange(nk) % nfp  # OpenPV: patch index mod nfp
            same = (np.arange(nfp)[None, :] == kf[:, None])  # [nk, nfp]
            w = np.where(same[None, :, None, None, :], w, np.float32(0)).astype(np.float32)
        return w
    if init_type in GEOMETRIC_WEIGHT_TYPES and geometry is None:
        raise ValueError(f"{init_type} needs the connection geometry")
    if init_type == "SmartWeight":  # every weight of a patch is its pre neuron's unit-cell index
        return np.array(np.broadcast_to(_unit_cell(geometry)[None, :, None, None, None].astype(np.float32), shape))
    if init_type == "SpreadOverArborsWeight":
        return spread_over_arbors_weights(params, shape=shape, geometry=geometry, group=group)
    if init_type in ("OneToOneWeights", "IdentWeight", "OneToOneWeightsWithDelays"):
        # IdentWeight is 1; OpenPV's OneToOneWeightsWithDelays never reads weightInit: 1 as well
        value = np.float32(1) if init_type != "OneToOneWeights" else get_f32(params, "weightInit", "HyPerConn")
        return one_to_one_weights(shape, geometry, value, init_type == "OneToOneWeightsWithDelays")
    if init_type in ("Gauss2DWeight", "CoCircWeight"):
        make = gauss2d_weights if init_type == "Gauss2DWeight" else cocirc_weights
        w = make(params, shape=shape, geometry=geometry, group=group)
        return np.array(np.broadcast_to(w, shape))
    if init_type not in RANDOM_WEIGHT_TYPES:
        raise PvmpiError(f"unsupported weightInitType {init_type!r}", group=group,
                         param="weightInitType",
                         hint="one of " + ", ".join(WEIGHT_INIT_TYPES))

    if patch_seeds is not None:
        bank = TausBank(patch_seeds)
        if len(bank) != nk:
            raise ValueError(f"{len(bank)} patch seeds for {nk} patches")
    elif seed_base is None:
        raise ValueError(f"{init_type} needs seed_base")
    else:
        bank = TausBank.from_base(seed_base, nk)

    npatch = nyp * nxp * nfp
    out = np.empty((arbors, nk, npatch), np.float32)
    if init_type == "UniformRandomWeight":
        fill = _uniform_random_filler(params, npatch, bank, group, warn)
    elif init_type == "GaussianRandomWeight":
        mean = get_f32(params, "wGaussMean", "HyPerConn")
        std = get_f32(params, "wGaussStdev", "HyPerConn")
        prepare_logf(arbors * nk * npatch)

        def fill():
            vals = np.empty((nk, npatch), np.float32)
            for n in range(npatch):
                vals[:, n] = bank.gaussian_range(mean, std)
            return vals
    else:  # DiscreteUniformRandomWeight, in double
        wmin = np.float32(_required(params, "wMin", group, init_type, "HyPerConn"))
        wmax = np.float32(_required(params, "wMax", group, init_type, "HyPerConn"))
        nvals = int(_required(params, "numValues", group, init_type, "HyPerConn"))
        if wmax < wmin:
            raise PvmpiError(f"wMax={wmax} is less than wMin={wmin}", group=group, param="wMax")
        if nvals < 2:
            raise PvmpiError(f"numValues is {nvals}, but it must be at least 2",
                             group=group, param="numValues")
        dw = (float(wmax) - float(wmin)) / (nvals - 1.0)
        p = nvals / _TWO32

        def fill():
            vals = np.empty((nk, npatch), np.float32)
            for n in range(npatch):
                j = np.floor(p * bank.uint().astype(np.float64))
                vals[:, n] = (float(wmin) + dw * j).astype(np.float32)
            return vals

    for a in range(arbors):
        out[a] = fill()
    return out.reshape(shape)


def _uniform_random_filler(params, npatch, bank, group, warn):
    """UniformRandomWeight per facts 3.11(e): two draws per weight while the
    patch may still take zeros, an optional random start for minNNZ."""
    wmin = get_f32(params, "wMinInit", "HyPerConn")
    wmax = get_f32(params, "wMaxInit", "HyPerConn")
    if wmax < wmin:
        warn(f"{group or 'UniformRandomWeight'}: wMaxInit {wmax} is less than wMinInit "
             f"{wmin}; using wMaxInit = wMinInit")
        wmax = wmin
    p = 0.0 if wmax <= wmin else float(np.float32(wmax - wmin)) / _TWO32
    thresh = float(get_f32(params, "sparseFraction", "HyPerConn") * np.float32(_TWO32))
    min_nnz = _int_param(params, "minNNZ", group, "HyPerConn")
    nk = len(bank)
    rows = np.arange(nk)

    def fill():
        vals = np.empty((nk, npatch), np.float32)
        zeroes_left = np.full(nk, npatch - min_nnz, np.int64)
        start = (bank.uint() % np.uint32(npatch)).astype(np.int64) if min_nnz != 0 \
            else np.zeros(nk, np.int64)
        for n in range(npatch):
            v = wmin + (p * bank.uint().astype(np.float64)).astype(np.float32)
            live = np.flatnonzero(zeroes_left > 0)
            if live.size:
                hit = live[bank.uint(live).astype(np.float64) < thresh]
                v[hit] = 0
                zeroes_left[hit] -= 1
            vals[rows, (n + start) % npatch] = v
        return vals

    return fill


def _read_weights_file(path, params, shape, read_weights, group):
    if read_weights is None:
        raise ValueError("initWeightsFile needs read_weights")
    frame = _int_param(params, "frameNumber", group, "HyPerConn")
    data = np.asarray(read_weights(path, frame))
    if data.shape != shape:
        want = "x".join(map(str, shape))
        got = "x".join(map(str, data.shape))
        raise PvmpiError(
            f"weights in frame {frame} are {got} (arbors x patches x nyp x nxp x nfp), "
            f"but the connection needs {want}",
            file=path, group=group, param="initWeightsFile")
    return np.array(data, dtype=np.float32)


# --------------------------------------------------------------------------
# Gauss2DWeight
# --------------------------------------------------------------------------
#
# OpenPV's InitGauss2DWeights, operation by operation in float32 (every C++
# float operation rounded on its own).  The patch geometry comes from
# InitWeights::kernelIndexCalculations and the dist2NearestCell,
# nearby_neighbor and zPatchHead conversions, including one quirk: the y
# distance to the nearest post cell is computed from the *x* unit-cell index.
# Another: the bowtie test receives its two coordinates swapped.

_PI = 3.1415926535897932  # OpenPV's PI, a double
F32 = np.float32


def _unit_cell(g):
    """Each kernel's unit-cell index f + nf*(unit_x + sx*unit_y) (OpenPV's dataIndexToUnitCellIndex), [nk]."""
    sx = 2 ** g.log2_diff_x if g.log2_diff_x > 0 else 1
    return g.patch_index % g.nf_pre + g.nf_pre * (g.unit_x + sx * g.unit_y)


def one_to_one_weights(shape, geometry, value, with_delays):
    """OpenPV's one-to-one patches [arbors, nk, nyp, nxp, nfp]: ``value`` at the patch centre for the
    post feature equal to the pre neuron's unit-cell index u = f + nf*(unit_x + sx*unit_y) (with
    delays: numArbors*u + arbor), 0 elsewhere."""
    arbors, nk, nyp, nxp, nfp = shape
    unit = _unit_cell(geometry)
    w = np.zeros(shape, np.float32)
    for arbor in range(arbors):
        target = arbors * unit + arbor if with_delays else unit
        w[arbor, :, nyp // 2, nxp // 2, :] = np.where(np.arange(nfp)[None, :] == target[:, None], value, 0)
    return w


class Gauss2DGeometry:
    """What Gauss2DWeight needs to know about a connection, per data patch.

    ``patch_index``: OpenPV's data-patch index of each kernel (the kernel
    index for shared weights; the local extended pre index for non-shared);
    ``unit_x``/``unit_y``: the pre neuron's position in the unit cell
    (restricted x modulo nxPre/nxPost when the pre layer is denser, else 0);
    ``log2_diff_x``/``log2_diff_y``: log2(nPre/nPost) per axis;
    ``self_connection``: pre and post are the same layer.
    """

    def __init__(self, *, patch_index, unit_x, unit_y, log2_diff_x, log2_diff_y, nf_pre, nf_post,
                 self_connection=False):
        self.patch_index = np.asarray(patch_index, np.int64)
        self.unit_x = np.asarray(unit_x, np.int64)
        self.unit_y = np.asarray(unit_y, np.int64)
        self.log2_diff_x = int(log2_diff_x)
        self.log2_diff_y = int(log2_diff_y)
        self.nf_pre = int(nf_pre)
        self.nf_post = int(nf_post)
        self.self_connection = bool(self_connection)


def _c_round(x):
    """C round(): halves away from zero (exact on float32 inputs, done in double)."""
    x = np.asarray(x, np.float64)
    return np.where(x >= 0, np.floor(x + 0.5), np.ceil(x - 0.5))


def _dist_to_nearest_cell(kz, diff):
    """(distance in pre units, distance in post units) from pre cell kz to its nearest post cell."""
    kz = np.asarray(kz, np.int64)
    if diff == 0:
        zero = np.zeros(kz.shape, F32)
        return zero, zero
    if diff > 0:  # many-to-one
        s = F32(2.0 ** diff)
        coords = (kz.astype(F32) - F32(F32(0.5) * (s - F32(1)))) / s
        dist_post = (_c_round(coords).astype(F32) - coords).astype(F32)
        return (dist_post * s).astype(F32), dist_post
    s = F32(2.0 ** -diff)  # one-to-many
    return np.full(kz.shape, F32(-0.5) / s, F32), np.full(kz.shape, F32(-0.5), F32)


def _nearby_neighbor(kz, diff):
    kz = np.asarray(kz, np.int64)
    a = F32(2.0 ** -diff)
    ia = int(a)
    k0 = 0 if ia < 2 else ia // 2 - 1
    k = np.where((a < 1) & (kz < 0), kz - int(F32(1) / a) + 1, kz)
    return k0 + np.trunc(a * k.astype(F32)).astype(np.int64)


def _patch_head(kz, n, diff):
    kz = np.asarray(kz, np.int64)
    if diff == 0:
        return kz - (n - 1) // 2
    if diff > 0:
        stride = F32(2.0 ** diff)
        half = F32(F32(0.5) * F32(n - 1))
        z = (kz.astype(F32) + F32(0.5)) / stride
        return np.floor((z - half).astype(F32)).astype(np.int64)
    stride = int(2 ** -diff)
    return kz * stride - int(np.trunc((n - stride) / 2))


def _deltas(unit, n_patch, diff, dist):
    """Pre-unit offsets of the patch's post cells from the pre cell: [kernels, n_patch].

    ``dist`` is the (pre, post)-unit distance to the nearest post cell.
    """
    dist_pre, dist_post = dist
    nn = _nearby_neighbor(unit, diff)
    head = _patch_head(unit, n_patch, diff)
    head_post = (dist_post + (head - nn).astype(F32)).astype(F32)
    rel = np.where(dist_pre == dist_post, F32(1), dist_pre / np.where(dist_post == 0, F32(1), dist_post))
    rel = rel.astype(F32)
    head_pre = (head_post * rel).astype(F32)
    i = np.arange(n_patch, dtype=F32)
    return (head_pre[:, None] + (i[None, :] * rel[:, None]).astype(F32)).astype(F32)


def _f32_unary(fn, x):
    """A float32 libm call (cosf, sinf, expf, atan2f), correctly rounded from double."""
    return fn(np.asarray(x, np.float64)).astype(F32)


class _Frame:
    """What Gauss2DWeight and CoCircWeight compute alike for every kernel and post feature: parameters,
    orientations and the patch's post-cell offsets from the pre cell (see :func:`_oriented_frame`)."""


def _oriented_frame(params, shape, geometry, group):
    """OpenPV's InitGauss2DWeights set-up in float32: ``th_pre`` [nk], ``th_post`` [nk, nfp], ``keep_theta``
    (|th_pre - th_post| <= deltaThetaMax), the pre-unit offsets ``xd`` [nk,1,1,nxp] and ``yd`` [nk,1,nyp,1]."""
    fr = _Frame()
    _, nk, nyp, nxp, nfp = shape
    geo = geometry
    fr.nk, fr.nfp = nk, nfp
    if len(geo.patch_index) != nk:
        raise ValueError(f"{len(geo.patch_index)} patch indices for {nk} kernels")

    def f(name):
        return get_f32(params, name, "HyPerConn")

    fr.f = f
    fr.aspect, fr.sigma, fr.shift = f("aspect"), f("sigma"), f("flankShift")
    if fr.sigma == 0:
        raise PvmpiError("sigma must not be 0", group=group, param="sigma")
    with np.errstate(over="ignore"):  # rMax = infinity (FLT_MAX): its square is inf in float
        fr.r2max = F32(np.float64(f("rMax")) ** 2)
        fr.r2min = F32(np.float64(f("rMin")) ** 2)
    n_post = _int_param(params, "numOrientationsPost", group, "HyPerConn")
    n_pre = _int_param(params, "numOrientationsPre", group, "HyPerConn")
    fr.n_post = n_post = n_post if n_post > 0 else geo.nf_post
    fr.n_pre = n_pre = n_pre if n_pre > 0 else geo.nf_pre
    theta_max, rotate = f("thetaMax"), f("rotate")
    dtheta_max = f("deltaThetaMax")
    fr.num_flanks = _int_param(params, "numFlanks", group, "HyPerConn")

    # orientations (calculateThetas, calcThPost)
    dth_post = F32(_PI * float(theta_max) / float(F32(n_post)))
    th0_post = F32(F32(rotate * dth_post) / F32(2))
    dth_pre = F32(_PI * float(theta_max) / float(F32(n_pre)))
    th0_pre = F32(F32(rotate * dth_pre) / F32(2))
    fr.f_pre = geo.patch_index % geo.nf_pre
    fr.th_pre = th_pre = (th0_pre + ((geo.patch_index % n_pre).astype(F32) * dth_pre).astype(F32)).astype(F32)  # [nk]
    fr.fp = fp = np.arange(nfp)
    if n_post == 1 and n_pre > 1:
        th_post = np.broadcast_to(th_pre[:, None], (nk, nfp)).astype(F32)
    else:
        th_post = np.broadcast_to((th0_post + ((fp % n_post).astype(F32) * dth_post).astype(F32)).astype(F32),
                                  (nk, nfp))
    fr.th_post = th_post
    fr.dtheta = np.abs((th_pre[:, None] - th_post).astype(F32))
    fr.keep_theta = fr.dtheta <= dtheta_max  # checkThetaDiff

    # positions of the patch's post cells relative to the pre cell, in pre units
    xdist = _dist_to_nearest_cell(geo.unit_x, geo.log2_diff_x)
    ydist = _dist_to_nearest_cell(geo.unit_x, geo.log2_diff_y)  # OpenPV passes the x index here too
    fr.xd = _deltas(geo.unit_x, nxp, geo.log2_diff_x, xdist)[:, None, None, :]  # [nk,1,1,nxp]
    fr.yd = _deltas(geo.unit_y, nyp, geo.log2_diff_y, ydist)[:, None, :, None]  # [nk,1,nyp,1]
    return fr


def gauss2d_weights(params, *, shape, geometry, group=None):
    """Gauss2DWeight values ``[1, kernels, nyp, nxp, nfp]`` (every arbor gets the same).

    Parameters (OpenPV names, defaults from the schema): aspect, sigma, rMax,
    rMin, strength, numOrientationsPost/Pre (<= 0: the post/pre nf),
    deltaThetaMax, thetaMax, numFlanks, flankShift, rotate, bowtieFlag,
    bowtieAngle. Post feature f has orientation
    ``rotate*dθ/2 + (f mod numOrientationsPost)*dθ`` with
    ``dθ = π*thetaMax/numOrientationsPost``; a weight is
    ``strength*exp(-d²/(2σ²))`` with ``d² = x'² + aspect²(y' ∓ flankShift)²``
    in the frame rotated by that orientation, kept where ``rMin² <= d² <= rMax²``.
    Weights to other "colours" (f div numOrientations) or to orientations
    farther than deltaThetaMax from the pre one stay 0.
    """
    fr = _oriented_frame(params, shape, geometry, group)
    geo, f = geometry, fr.f
    aspect, sigma, strength, shift = fr.aspect, fr.sigma, f("strength"), fr.shift
    r2max, r2min, num_flanks, th_post, xd, yd, fp, f_pre = (fr.r2max, fr.r2min, fr.num_flanks, fr.th_post, fr.xd,
                                                            fr.yd, fr.fp, fr.f_pre)
    bowtie = bool(get(params, "bowtieFlag", "HyPerConn"))
    bowtie_angle = f("bowtieAngle")
    keep = fr.keep_theta & ((fp[None, :] // fr.n_post) == (f_pre[:, None] // fr.n_pre))  # checkColorDiff

    th = th_post[:, :, None, None]  # [nk, nfp, 1, 1]
    c, s = _f32_unary(np.cos, th), _f32_unary(np.sin, th)
    xp = ((xd * c).astype(F32) + (yd * s).astype(F32)).astype(F32)
    yp = (((-xd) * s).astype(F32) + (yd * c).astype(F32)).astype(F32)
    keep = np.broadcast_to(keep[:, :, None, None], xp.shape).copy()
    if geo.self_connection:  # isSameLocAndSelf
        keep &= ~((f_pre[:, None, None, None] == fp[None, :, None, None]) & (xd == 0) & (yd == 0))
    if bowtie:  # checkBowtieAngle(yp, xp) with its parameters named (xp, yp): atan2(xp, yp)
        ang = _f32_unary(lambda v: np.arctan2(v, np.asarray(yp, np.float64)), xp).astype(np.float64)
        b = np.float64(bowtie_angle)
        keep &= ~(((ang > b) & (ang < _PI - b)) | ((ang < -b) & (ang > -_PI + b)))

    normalizer = F32(F32(1) / F32(F32(F32(2) * sigma) * sigma))

    def flank(sign):
        dy = (yp - shift).astype(F32) if sign < 0 else (yp + shift).astype(F32)
        d2 = ((xp * xp).astype(F32) + (((aspect * dy).astype(F32) * aspect).astype(F32) * dy).astype(F32)).astype(F32)
        g = (strength * _f32_unary(np.exp, ((-d2) * normalizer).astype(F32))).astype(F32)
        return np.where((d2 <= r2max) & (d2 >= r2min), g, F32(0)).astype(F32)

    w = flank(-1)
    if num_flanks > 1:
        w = (w + flank(+1)).astype(F32)
    w = np.where(keep, w, F32(0)).astype(F32)  # [nk, nfp, nyp, nxp]
    return np.ascontiguousarray(w.transpose(0, 2, 3, 1))[None]


def cocirc_weights(params, *, shape, geometry, group=None):
    """CoCircWeight values ``[1, kernels, nyp, nxp, nfp]``: OpenPV's co-circularity weights in float32.

    In the frame of the pre neuron's orientation, a weight is the Gaussian of distance (flanks as
    Gauss2DWeight, divided by 2σ², rMax only) times exp(-χ²/(2 sigmaCocirc²)), χ the difference between
    the post orientation and the tangent of the circle through both cells (at the pre cell itself: the
    orientation difference; zero to its own feature unless cocircSelf). One curvature per orientation
    only: with nf > numOrientations OpenPV reads curvatures it never sets.
    """
    fr = _oriented_frame(params, shape, geometry, group)
    f, geo = fr.f, geometry
    if geo.nf_pre // fr.n_pre > 1 or fr.nfp // fr.n_post > 1:
        raise PvmpiError(f"CoCircWeight with more than one curvature per orientation (nf {geo.nf_pre} pre, "
                         f"{fr.nfp} post, numOrientations {fr.n_pre}, {fr.n_post}) is not reproducible: OpenPV "
                         f"reads the pre curvatures without ever setting them", group=group, param="weightInitType",
                         hint="give numOrientationsPre/Post equal to the layers' nf")
    sigma_c2 = F32(F32(2) * f("sigmaCocirc")) * f("sigmaCocirc")
    one_flank = fr.num_flanks <= 1
    c = _f32_unary(np.cos, fr.th_pre)[:, None, None, None]
    s = _f32_unary(np.sin, fr.th_pre)[:, None, None, None]
    xd, yd = fr.xd, fr.yd
    dx = ((xd * c).astype(F32) + (yd * s).astype(F32)).astype(F32)  # [nk, 1, nyp, nxp]
    dy = (((-xd) * s).astype(F32) + (yd * c).astype(F32)).astype(F32)
    sigma2 = F32(F32(2) * fr.sigma) * fr.sigma

    def d2(v):
        return ((dx * dx).astype(F32) + (((fr.aspect * v).astype(F32) * fr.aspect).astype(F32) * v).astype(F32)
                ).astype(F32)

    def gauss(v):
        q = d2(v)
        return np.where(q <= fr.r2max, _f32_unary(np.exp, ((-q) / sigma2).astype(F32)), F32(0)).astype(F32)

    dy1, dy2 = (dy - fr.shift).astype(F32), (dy + fr.shift).astype(F32)
    g_dist = gauss(dy1) if one_flank else (gauss(dy1) + gauss(dy2)).astype(F32)

    def g_of(chi):
        g = _f32_unary(np.exp, (((-chi) * chi).astype(F32) / sigma_c2).astype(F32))
        return g if sigma_c2 > 0 else (g - F32(1)).astype(F32)

    def chord(v):  # updateCocircNChord: the tangent's orientation against the post one
        atan = np.arctan2(v.astype(np.float64), dx.astype(np.float64)).astype(F32)  # atan2f
        a = (fr.th_pre[:, None, None, None] + (F32(2) * atan).astype(F32)).astype(F32)
        a = (a.astype(np.float64) + 2.0 * _PI).astype(F32)
        a = np.fmod(a, F32(_PI))
        a = np.abs((a - fr.th_post[:, :, None, None]).astype(F32))  # [nk, nfp, nyp, nxp]
        return np.where(a.astype(np.float64) >= _PI / 2.0, (_PI - a.astype(np.float64)).astype(F32), a)

    oriented = fr.n_pre > 1 and fr.n_post > 1
    g_chord = g_of(chord(dy1 if one_flank else dy2)) if oriented else F32(1)
    dth = np.where(fr.dtheta.astype(np.float64) <= _PI / 2.0, fr.dtheta,
                   (_PI - fr.dtheta.astype(np.float64)).astype(F32))[:, :, None, None]  # checkThetaDiff's fold
    same_loc = (fr.f_pre[:, None] == fr.fp[None, :])[:, :, None, None]
    at_pre = d2(dy) == 0
    g_self = np.where(same_loc & ~bool(f("cocircSelf")), F32(0), g_of(dth))
    w = (g_dist * np.where(at_pre, g_self, g_chord)).astype(F32)
    keep = fr.keep_theta[:, :, None, None] & (g_dist > 0) & (w >= F32(0))
    w = np.where(keep, w, F32(0)).astype(F32)  # [nk, nfp, nyp, nxp]
    return np.ascontiguousarray(w.transpose(0, 2, 3, 1))[None]


def spread_over_arbors_weights(params, *, shape, geometry, group=None):
    """SpreadOverArborsWeight values ``[arbors, kernels, nyp, nxp, nfp]``: in the frame of each post
    orientation, the direction of a post cell from the pre cell picks two neighbouring arbors, which share
    weightInit linearly (weightInit/arbors at the pre cell itself), as OpenPV's float32 arithmetic does."""
    fr = _oriented_frame(params, shape, geometry, group)
    arbors = shape[0]
    init = fr.f("weightInit")
    th = fr.th_post[:, :, None, None]  # [nk, nfp, 1, 1]
    c, s = _f32_unary(np.cos, th), _f32_unary(np.sin, th)
    xp = ((fr.xd * c).astype(F32) + (fr.yd * s).astype(F32)).astype(F32)
    yp = (((-fr.xd) * s).astype(F32) + (fr.yd * c).astype(F32)).astype(F32)
    near = ((xp * xp).astype(F32) + (yp * yp).astype(F32)).astype(F32) < F32(1e-4)
    turn = (np.arctan2(yp.astype(np.float64), xp.astype(np.float64)).astype(F32).astype(np.float64)
            / (2 * _PI)).astype(F32)  # atan2f(yp, xp) / (2 PI), in double then float
    turn = np.where(turn < 0, (turn + F32(1)).astype(F32), turn)
    turn = np.where(turn >= 1, (turn - F32(1)).astype(F32), turn)
    zone = (turn * F32(arbors)).astype(F32)
    whole = np.floor(zone)
    frac = (zone - whole).astype(F32)  # modff
    w = np.zeros(shape, F32)
    for a in range(arbors):
        lead = np.fmod((whole - a + 1).astype(np.int64), arbors) == 0  # C's %: the sign of the dividend
        v = np.where(whole == a, (init * (F32(1) - frac)).astype(F32), np.where(lead, (init * frac).astype(F32), F32(0)))
        v = np.where(near, F32(init / F32(arbors)), v)
        v = np.where(fr.keep_theta[:, :, None, None], v, F32(0)).astype(F32)  # [nk, nfp, nyp, nxp]
        w[a] = v.transpose(0, 2, 3, 1)
    return w
