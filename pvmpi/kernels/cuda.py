"""Numba-CUDA kernels of the backend contract (:mod:`pvmpi.kernels.contract`), one GPU per rank.

Importing this module needs numba-cuda and either an NVIDIA GPU or Numba's
CUDA simulator (``NUMBA_ENABLE_CUDASIM=1`` set before numba is imported);
otherwise it raises :class:`~pvmpi.errors.PvmpiError` naming what is
missing; it never falls back to the CPU. The engine's state lives on the
device (``CAPABILITIES.device_resident``); every kernel owns its outputs (no
float atomics), so results are bitwise reproducible from run to run. How
each kernel works, what crosses to the host, and the measurements:
docs/performance.md, "Inside the backends".
"""
import math

import numpy as np

from pvmpi.errors import PvmpiError
from pvmpi.kernels.contract import Capabilities
from pvmpi.kernels.transfer import transfer1, transfer_args

_F32 = np.float32


def _import_cuda():
    """numba.cuda if a GPU (or the simulator) can run kernels; else a PvmpiError naming what is missing."""
    try:
        from numba import cuda
    except ImportError as e:  # numba-cuda (or numba) missing
        raise PvmpiError(f"--backend cuda needs numba-cuda: {e}",
                         hint="pip install 'pvmpi[cuda]' (numba-cuda[cu12] or [cu13] on a GPU node)") from None
    try:
        from numba.cuda.core import config as cuda_config
        sim = bool(cuda_config.ENABLE_CUDASIM)
    except ImportError:  # older numba-cuda / numba's own cuda target
        from numba import config as cuda_config
        sim = bool(getattr(cuda_config, "ENABLE_CUDASIM", 0))
    if sim:
        return cuda, True
    if hasattr(cuda_config, "CUDA_LOW_OCCUPANCY_WARNINGS"):
        # small grids are deliberate here (scans, per-batch reductions); the
        # warning is raised on every launch and costs more than the launch
        cuda_config.CUDA_LOW_OCCUPANCY_WARNINGS = 0
    reason = None
    try:
        if not cuda.is_available():
            err = cuda.cuda_error() if hasattr(cuda, "cuda_error") else None
            reason = " ".join(str(err).split()) if err else "the CUDA driver reports no device"
        else:
            cuda.get_current_device()
    except Exception as e:  # noqa: BLE001 -- CudaSupportError, driver errors: report them, never fall back
        reason = " ".join(str(e).split()) or type(e).__name__
    if reason is not None:
        raise PvmpiError(f"--backend cuda needs an NVIDIA GPU: none found ({reason})",
                         hint="run on a GPU node, or choose --backend numba")
    return cuda, False


cuda, SIMULATOR = _import_cuda()

from numba import float32, float64, int32, int64  # noqa: E402 (after the device check)

# --------------------------------------------------------------------- launches

LAUNCHES = [0]  # kernel launches by this process so far: the bench reports them per step


class _Counted:
    """A kernel whose launches (``kernel[grid, block, ...](args)``) add to :data:`LAUNCHES`."""

    def __init__(self, kernel):
        self.kernel = kernel

    def __getitem__(self, config):
        LAUNCHES[0] += 1
        return self.kernel[config]


def _kernel(fn):
    """``cuda.jit`` for a kernel (not a device function), its launches counted."""
    return _Counted(cuda.jit(fn))


def launches():
    """Kernel launches made by this process so far (every backend call's kernels, counted at launch)."""
    return LAUNCHES[0]


ALLOCATIONS = [0]  # device allocations by this process so far: a step in steady state makes none


def _device_array(shape, dtype):
    """``cuda.device_array``, counted: an allocation costs a driver call, and its later free
    synchronises the device, so buffers are allocated once and reused."""
    ALLOCATIONS[0] += 1
    return cuda.device_array(shape, dtype=dtype)


def _to_device(host):
    """``cuda.to_device`` (a new device buffer holding ``host``), counted as an allocation."""
    ALLOCATIONS[0] += 1
    return cuda.to_device(host)


def allocations():
    """Device buffers allocated by this process so far (staging, scratch, tables, active lists)."""
    return ALLOCATIONS[0]


WAITS = [0]  # times this process waited for the device: the bench reports them per step
_LATER = []  # deferred reads (layer_stats_later) whose copies may still be in flight, oldest first


def _waited(drained=True):
    """Count one wait for the device. After a read of device memory (``drained``), whatever was
    queued before it on the one (default) stream is done, the deferred reads' copies too."""
    WAITS[0] += 1
    if drained:
        for later in _LATER:
            later.complete = True
        _LATER.clear()


def host_waits():
    """Times this process waited for the device so far: reads of results (a few numbers each) and
    copies from pageable host memory, which wait for every launch before them."""
    return WAITS[0]


# --------------------------------------------------------------------- launch constants

THREADS = 32 if SIMULATOR else 256  # gather and elementwise blocks (simulated threads are Python threads)
ACTIVE_K = 8         # elements per thread in one active-list chunk (a chunk is SCAN*ACTIVE_K elements)
SCAN = 32 if SIMULATOR else 128  # block size of the prefix-sum / reduction kernels (shared arrays of this size)
# Every shared array is dynamic (``cuda.shared.array(0, ...)``, its bytes given at launch): Numba's CUDA
# simulator makes a static one at each thread's first call without a lock, so under load two threads of
# a block can get different arrays and a block scan goes wrong (seen once in ~250 launches on 2 busy
# cores, and as an unsorted active list in a CI run); the dynamic buffer is made once per launch.
TILE_FLOATS = 6144   # shared-memory weight tile of the gathers: 24 KiB, several blocks per SM
_BUSY_PER_SM = 2048  # threads per SM the learning kernels aim for


def _device_limits():
    if SIMULATOR:  # every simulated thread is a Python thread: cap grids hard
        return 4, 256
    dev = cuda.get_current_device()
    sms = int(getattr(dev, "MULTIPROCESSOR_COUNT", 1))
    return 65535, sms * _BUSY_PER_SM


MAX_BLOCKS, BUSY_THREADS = _device_limits()


def _blocks(n, per_block, cap=None):
    return max(1, min(-(-n // per_block), MAX_BLOCKS if cap is None else min(cap, MAX_BLOCKS)))


# --------------------------------------------------------------------- staging

def _is_device(a):
    return not isinstance(a, np.ndarray) and (hasattr(a, "__cuda_array_interface__")
                                              or hasattr(a, "copy_to_host"))


def _as_dev(a):
    if hasattr(a, "copy_to_host"):
        return a
    return cuda.as_cuda_array(a)


_staging = {}


def _stage(role, host):
    """Copy a numpy array into this role's cached device buffer (allocated once per shape)."""
    host = np.ascontiguousarray(host)
    key = (role, host.shape, host.dtype.str)
    dev = _staging.get(key)
    if dev is None:
        if len(_staging) > 256:
            _staging.clear()
        dev = _staging[key] = _device_array(host.shape, host.dtype)
    if host.size:
        dev.copy_to_device(host)
        _waited(drained=False)
    return dev


_staged_values = {}  # role: the host values its staging buffer holds (see _stage_unchanged)


def _stage_unchanged(role, host):
    """:func:`_stage` for a small input no kernel writes (e.g. per-batch-element constants): copied
    only when its values change, since a copy from pageable host memory waits for the device."""
    host = np.ascontiguousarray(host)
    key = (role, host.shape, host.dtype.str)
    last = _staged_values.get(key)
    if last is not None and key in _staging and np.array_equal(last, host):
        return _staging[key]
    dev = _stage(role, host)
    _staged_values[key] = host.copy()
    return dev


def _scratch(role, shape, dtype):
    key = (role, tuple(shape), np.dtype(dtype).str)
    dev = _staging.get(key)
    if dev is None:
        dev = _staging[key] = _device_array(shape, dtype)
    return dev


def _check_out(name, arr):
    if isinstance(arr, np.ndarray):
        if arr.dtype != np.float32 or not arr.flags.c_contiguous or not arr.flags.writeable:
            raise ValueError(f"{name} must be a writeable C-contiguous float32 array")
    elif np.dtype(arr.dtype) != np.float32:
        raise ValueError(f"{name} must be a float32 array")


class _Arg:
    """One kernel argument: device view of shape ``shape`` (staged if numpy), copied back by done();
    ``constant``: an input no kernel writes, staged only when its values change."""

    def __init__(self, role, arr, shape=None, dtype=None, copy_in=True, constant=False):
        self.host = None
        if _is_device(arr):
            dev = _as_dev(arr)
            self.dev = dev if shape is None else dev.reshape(shape)
            return
        a = np.asarray(arr) if dtype is None else np.asarray(arr, dtype=dtype)
        if shape is not None:
            a = a.reshape(shape)
        if constant:
            self.dev = _stage_unchanged(role, a)
            return
        if copy_in:
            self.dev = _stage(role, a)
        else:
            self.dev = _scratch(role, a.shape, a.dtype)
        self.host = a

    def done(self):
        if self.host is not None and self.host.size:
            self.dev.copy_to_host(self.host)
            _waited()


def to_device(a):
    """A device copy of a numpy array (for device-resident callers and benchmarks)."""
    return _to_device(np.ascontiguousarray(a))


def to_host(a):
    """A numpy copy of a device array (numpy arrays pass through)."""
    if isinstance(a, np.ndarray):
        return a
    host = _as_dev(a).copy_to_host()
    _waited()
    return host


def synchronize():
    """Wait until the device has finished every kernel launched so far (launches are asynchronous)."""
    cuda.synchronize()


def _ints(*values):
    return tuple(map(int, values))


# --------------------------------------------------------------------- device helpers

@cuda.jit(device=True)
def _lower_bound(arr, lo, hi, key):
    """First index in [lo, hi) of sorted ``arr`` whose value is >= key."""
    while lo < hi:
        mid = (lo + hi) // 2
        if arr[mid] < key:
            lo = mid + 1
        else:
            hi = mid
    return lo


@cuda.jit(device=True)
def _block_scan(flag, buf, tid):
    """Exclusive prefix sum of ``flag`` over a SCAN-thread block; returns (prefix, block total)."""
    buf[tid] = flag
    cuda.syncthreads()
    off = 1
    while off < SCAN:
        v = 0
        if tid >= off:
            v = buf[tid - off]
        cuda.syncthreads()
        buf[tid] += v
        cuda.syncthreads()
        off *= 2
    incl = buf[tid]
    total = buf[SCAN - 1]
    cuda.syncthreads()
    return incl - flag, total


@_kernel
def _k_scan(counts, ptr, step, offsets):
    """ptr = [0, cumsum(counts)] with one block: a serial run per thread, one block scan of the runs;
    then offsets[i] = ptr[i * step] (each batch element's start: no launch of its own)."""
    buf = cuda.shared.array(0, int64)  # SCAN values
    tid = cuda.threadIdx.x
    n = counts.shape[0]
    seg = (n + SCAN - 1) // SCAN
    lo = min(tid * seg, n)
    hi = min(lo + seg, n)
    s = 0
    for i in range(lo, hi):
        s += counts[i]
    excl, _ = _block_scan(s, buf, tid)
    if tid == 0:
        ptr[0] = 0
    for i in range(lo, hi):
        excl += counts[i]
        ptr[i + 1] = excl
    cuda.syncthreads()  # every ptr written by this block is visible to its threads
    for i in range(tid, offsets.shape[0], SCAN):
        offsets[i] = ptr[i * step]


# --------------------------------------------------------------------- post tables

_tables = {}


def _remember(key, make):
    hit = _tables.get(key)
    if hit is None:
        if len(_tables) > 128:
            _tables.clear()
        hit = _tables[key] = make()
    return hit


def _check_table(tab, what):
    ie = tab[:, :, 0].astype(np.int64)
    if tab.shape[1] > 1 and not np.all(np.diff(ie, axis=1) == 1):
        raise ValueError(f"{what}: post-table rows must list consecutive pre indices")


def _axis_table(n_ext, margin, mul, off, div, nk, patch, n_post):
    """Post table of one axis from the (mul, off, div) map, as geometry.post_table builds it."""
    from pvmpi.geometry import AxisMap, post_table

    amap = AxisMap(n_ext - 2 * margin, n_post, patch, mul, off, div, nk, 0, patch * div // mul)
    try:
        tab = post_table(amap, margin)
    except AssertionError:
        raise ValueError("pre margin too small for the connection's patch (post table rows incomplete)") from None
    return tab


def _geo_tables(A_shape, W_shape, G_shape, xmul, xoff, xdiv, nkx, ymul, yoff, ydiv, nky, lt, up):
    """Device post tables (x, y) of a connection given by its maps; cached per geometry."""
    key = ("geo", A_shape[1], A_shape[2], W_shape[1], W_shape[2], G_shape[1], G_shape[2],
           xmul, xoff, xdiv, nkx, ymul, yoff, ydiv, nky, lt, up)

    def make():
        xt = _axis_table(A_shape[2], lt, xmul, xoff, xdiv, nkx, W_shape[2], G_shape[2])
        yt = _axis_table(A_shape[1], up, ymul, yoff, ydiv, nky, W_shape[1], G_shape[1])
        _check_table(xt, "x")
        return _to_device(xt), _to_device(yt)

    return _remember(key, make)


def _user_table(tab, what):
    """Device copy of a caller's post table, cached by content (tables are small and constant)."""
    if _is_device(tab):
        return _as_dev(tab)
    t = np.ascontiguousarray(tab, dtype=np.int32)

    def make():
        _check_table(t, what)
        return _to_device(t)

    return _remember(("tab", t.shape, t.tobytes()), make)


def _axis_starts(n_ext, margin, mul, off, div):
    key = ("starts", n_ext, margin, mul, off, div)
    i = np.arange(n_ext, dtype=np.int64) - margin
    return _remember(key, lambda: _to_device(((mul * i + off) // div).astype(np.int32)))


# --------------------------------------------------------------------- delivery

def _gather_plan(sy, nf, nkx, nxp, nfp, nx):
    """Block shape (OC, TX), tile chunks (JC, FC) and shared bytes of a gather launch.

    OC (post features per block, a power of two up to 32) is the fastest
    thread index; TX post x positions fill the block up to THREADS threads.
    The tile holds JC pre rows x FC pre features x nkx x nxp x OC weights,
    at most TILE_FLOATS.
    """
    oc = min(1 << max(0, (nfp - 1).bit_length()), 32)
    while oc > 1 and nkx * nxp * oc > TILE_FLOATS:
        oc //= 2
    if nkx * nxp * oc > TILE_FLOATS:
        raise ValueError(f"weight patch row {nkx}x{nxp} too large for the shared tile ({TILE_FLOATS} floats)")
    tx = max(1, min(THREADS // oc, 1 << max(0, (nx - 1).bit_length())))
    row = nkx * nxp * oc
    if sy * nf * row <= TILE_FLOATS:
        jc, fc = sy, nf
    elif nf * row <= TILE_FLOATS:
        jc, fc = TILE_FLOATS // (nf * row), nf
    else:
        jc, fc = 1, TILE_FLOATS // row
    return oc, tx, jc, fc, jc * fc * row * 4


def _tile_table(oc, fc, nkx, nxp, nf, nyp, nfp):
    """Per tile slot r = (fl, kx, px, o) of one pre row: W offset part and (fl << 16 | o).

    The flat W index of slot r for pre row (ky, py), feature chunk f0 and
    feature block ob is ``woff[r] + ((f0 + nf*nkx*ky)*nyp + py)*nxp*nfp + ob*OC``;
    the table spares the kernel five integer divisions per weight it stages.
    """
    key = ("tile", oc, fc, nkx, nxp, nf, nyp, nfp)

    def make():
        fl, kx, px, o = np.meshgrid(np.arange(fc), np.arange(nkx), np.arange(nxp), np.arange(oc), indexing="ij")
        woff = ((fl + nf * kx) * nyp * nxp * nfp + px * nfp + o).astype(np.int32).reshape(-1)
        meta = ((fl << 16) | o).astype(np.int32).reshape(-1)
        return _to_device(woff), _to_device(meta)

    return _remember(key, make)


@cuda.jit(device=True)
def _stage_tile(tile, W1, woff, meta, ytab, y, jy0, jc, f0, nf, nkx, nyp, nxp, nfp, ob, OC, tid, nthreads):
    """Stage the weights of pre rows jy0..jy0+jc and features f0.. into the shared tile."""
    rowlen = woff.shape[0]
    for jl in range(jc):
        jbase = ((f0 + nf * nkx * ytab[y, jy0 + jl, 2]) * nyp + ytab[y, jy0 + jl, 1]) * nxp * nfp + ob * OC
        t0 = jl * rowlen
        for r in range(tid, rowlen, nthreads):
            m = meta[r]
            v = float32(0)
            if f0 + (m >> 16) < nf and ob * OC + (m & 0xFFFF) < nfp:
                v = W1[jbase + woff[r]]
            tile[t0 + r] = v


@_kernel
def _k_gather(A, W1, G, xtab, ytab, woff, meta, nkx, nyp, nxp, nf, nxb, nob, JC, FC, overwrite):
    nb = A.shape[0]
    ny, nx, nfp = G.shape[1], G.shape[2], G.shape[3]
    sy, sx = ytab.shape[1], xtab.shape[1]
    OC = cuda.blockDim.x
    TX = cuda.blockDim.y
    to = cuda.threadIdx.x
    tid = to + OC * cuda.threadIdx.y
    nthreads = OC * TX
    rowsz = nxp * OC          # one (f, kx) row of the tile
    fstride = nkx * rowsz     # one pre feature
    tile = cuda.shared.array(0, float32)
    for b in range(cuda.blockIdx.z, nb, cuda.gridDim.z):
        for y in range(cuda.blockIdx.y, ny, cuda.gridDim.y):
            for bx in range(cuda.blockIdx.x, nob * nxb, cuda.gridDim.x):
                xb = bx // nob
                ob = bx - xb * nob
                o = ob * OC + to
                x = xb * TX + cuda.threadIdx.y
                active = o < nfp and x < nx
                acc = float32(0)
                for jy0 in range(0, sy, JC):
                    jc = min(JC, sy - jy0)
                    for f0 in range(0, nf, FC):
                        fc = min(FC, nf - f0)
                        cuda.syncthreads()  # the previous tile has been read
                        _stage_tile(tile, W1, woff, meta, ytab, y, jy0, jc, f0, nf, nkx, nyp, nxp, nfp,
                                    ob, OC, tid, nthreads)
                        cuda.syncthreads()
                        if active:
                            for jl in range(jc):
                                iey = ytab[y, jy0 + jl, 0]
                                tj = jl * FC * fstride + to
                                for jx in range(sx):
                                    iex = xtab[x, jx, 0]
                                    base = tj + xtab[x, jx, 2] * rowsz + xtab[x, jx, 1] * OC
                                    for fl in range(fc):
                                        a = A[b, iey, iex, f0 + fl]
                                        if a != 0:
                                            acc += a * tile[base + fl * fstride]
                if active:
                    _put(G, b, y, x, o, acc, overwrite)


@cuda.jit(device=True, inline=True)
def _put(G, b, y, x, o, acc, overwrite):
    """A gather's sum into G: added, or (the channel's first delivery) written as 0 + sum, the same bits."""
    if overwrite:
        G[b, y, x, o] = float32(0) + acc
    else:
        G[b, y, x, o] += acc


def _grid3(nbx, ny, nb):
    """3-D grid (post x-and-feature blocks, post rows, batch), capped (the kernels loop over the rest)."""
    if SIMULATOR:
        return (max(1, min(nbx, 2)), max(1, min(ny, 2)), 1)
    return (max(1, min(nbx, 2 ** 31 - 1)), max(1, min(ny, 65535)), max(1, min(nb, 65535)))


def _launch_gather(A, W, G, xt, yt, nkx, nf, overwrite):
    nb, ny, nx, nfp = G.shape
    _, nyp, nxp, _ = W.shape
    oc, tx, jc, fc, shm = _gather_plan(yt.shape[1], nf, nkx, nxp, nfp, nx)
    nob, nxb = -(-nfp // oc), -(-nx // tx)
    if nob * nxb * ny * nb == 0:
        return
    woff, meta = _tile_table(oc, fc, nkx, nxp, nf, nyp, nfp)
    _k_gather[_grid3(nob * nxb, ny, nb), (oc, tx), 0, shm](
        A, W.reshape(W.size), G, xt, yt, woff, meta, nkx, nyp, nxp, nf, nxb, nob, jc, fc, bool(overwrite))


def deliver_pre(A, W, G, xmul, xoff, xdiv, nkx, ymul, yoff, ydiv, nky, lt, up, overwrite=False):
    """Pre-perspective convolve (see numpy_ref.deliver_pre), computed as a race-free post gather."""
    _check_out("G", G)
    geo = _ints(xmul, xoff, xdiv, nkx, ymul, yoff, ydiv, nky, lt, up)
    xt, yt = _geo_tables(A.shape, W.shape, G.shape, *geo)
    a, w, g = _Arg("pre.A", A), _Arg("pre.W", W), _Arg("pre.G", G)
    _launch_gather(a.dev, w.dev, g.dev, xt, yt, geo[3], A.shape[3], overwrite)
    g.done()


def deliver_post(A, W, G, xtab, ytab, nkx, overwrite=False):
    """Post-perspective convolve through geometry.post_table rows: one thread per post neuron and feature."""
    _check_out("G", G)
    xt, yt = _user_table(xtab, "xtab"), _user_table(ytab, "ytab")
    a, w, g = _Arg("post.A", A), _Arg("post.W", W), _Arg("post.G", G)
    _launch_gather(a.dev, w.dev, g.dev, xt, yt, int(nkx), A.shape[3], overwrite)
    g.done()


# ----- active list

@cuda.jit(device=True)
def _chunk_range(c, nchunk, N, K):
    """Flat element range [lo, hi) of chunk c (chunks never cross a batch element) and its batch."""
    b = c // nchunk
    lo = b * N + (c - b * nchunk) * (SCAN * K)
    hi = min(lo + SCAN * K, (b + 1) * N)
    return b, lo, hi


@_kernel
def _k_count_chunks(A1, N, K, nchunk, counts):
    """counts[c] = nonzeros of chunk c (SCAN*K elements; K consecutive per thread, one block reduction)."""
    buf = cuda.shared.array(0, int32)  # SCAN values
    tid = cuda.threadIdx.x
    for c in range(cuda.blockIdx.x, counts.shape[0], cuda.gridDim.x):
        _, lo, hi = _chunk_range(c, nchunk, N, K)
        n = 0
        for j in range(lo + tid * K, min(lo + (tid + 1) * K, hi)):
            if A1[j] != 0:
                n += 1
        _, total = _block_scan(n, buf, tid)
        if tid == 0:
            counts[c] = total


@_kernel
def _k_fill_chunks(A1, N, K, nchunk, ptr, idx, val):
    """Compact each chunk's nonzeros in order at ptr[c]: thread prefix from one block scan."""
    buf = cuda.shared.array(0, int32)  # SCAN values
    tid = cuda.threadIdx.x
    for c in range(cuda.blockIdx.x, ptr.shape[0] - 1, cuda.gridDim.x):
        b, lo, hi = _chunk_range(c, nchunk, N, K)
        j0 = lo + tid * K
        j1 = min(j0 + K, hi)
        n = 0
        for j in range(j0, j1):
            if A1[j] != 0:
                n += 1
        excl, _ = _block_scan(n, buf, tid)
        m = ptr[c] + excl
        for j in range(j0, j1):
            v = A1[j]
            if v != 0:
                idx[m] = j - b * N
                val[m] = v
                m += 1


class _ActiveList(tuple):
    """(offsets, idx, val) on the device, and ``buffers``: the arrays they are views of, which the
    next list of the same layer may overwrite (see :func:`active_list`'s ``reuse``)."""

    buffers = None


def _list_buffers(bufs, nb, size, n=None):
    """(offsets [nb+1], idx, val) device buffers: ``bufs``' where they fit (idx and val hold ``n``),
    else new ones with room for an eighth of the ``size`` values listed, a quarter more than ``n``
    and twice the old room: a list allocates once, or a few times as it grows, then never."""
    if bufs is None or bufs[0].shape[0] != nb + 1:
        bufs = (_device_array(nb + 1, np.int64), None, None)
    if n is not None and (bufs[1] is None or bufs[1].shape[0] < n):
        cap = max(1, n + n // 4, size // 8, 0 if bufs[1] is None else 2 * bufs[1].shape[0])
        bufs = (bufs[0], _device_array(cap, np.int32), _device_array(cap, np.float32))
    return bufs


def active_list(A, lt, up, stats=None, reuse=None):
    """Nonzero entries of each batch element's extended A (see numpy_ref.active_list), built on the device.

    ``stats`` (optional [nb, 6]): the restricted A's ``layer_stats`` at threshold 0. ``reuse``
    (optional): an earlier list of this layer that is no longer read; its buffers are overwritten.

    The flat buffer is cut into chunks of SCAN*K elements (never across batch
    elements); a block counts each chunk, one thread scans the counts, a block
    per chunk writes its nonzeros in order.  A device ``A`` gives device
    arrays (views of reused buffers, exactly sized: one 8-byte read of the total).
    """
    if stats is not None:
        stats[:] = layer_stats(A, lt, up, A.shape[1] - 2 * up, A.shape[2] - 2 * lt, 0.0)
    nb = A.shape[0]
    N = int(np.prod(A.shape[1:]))
    K = ACTIVE_K
    nchunk = max(1, -(-N // (SCAN * K)))
    nc = nb * nchunk
    a = _Arg("active.A", A, shape=(nb * N,))
    counts = _scratch("active.counts", (nc,), np.int64)
    ptr = _scratch("active.ptr", (nc + 1,), np.int64)
    device = a.host is None
    room = nb * N if device else 0  # a host A gets exactly sized copies
    bufs = _list_buffers(getattr(reuse, "buffers", None) if device else None, nb, room)
    offsets = bufs[0]
    if nc and N:
        _k_count_chunks[_blocks(nc, 1), SCAN, 0, SCAN * 4](a.dev, N, K, nchunk, counts)
        _k_scan[1, SCAN, 0, SCAN * 8](counts, ptr, nchunk, offsets)
        n = int(ptr[nc:nc + 1].copy_to_host()[0])
        _waited()
    else:
        n = 0
        _k_zero_i64[1, 32](ptr)
        _k_zero_i64[1, 32](offsets)
    bufs = _list_buffers(bufs, nb, room, n)
    idx, val = bufs[1], bufs[2]
    if n:
        _k_fill_chunks[_blocks(nc, 1), SCAN, 0, SCAN * 4](a.dev, N, K, nchunk, ptr, idx, val)
    if device:
        out = _ActiveList((offsets, idx[:n], val[:n]))
        out.buffers = (offsets, idx, val)
        return out
    offsets = offsets.copy_to_host()
    _waited()
    if n == 0:
        return offsets, np.empty(0, np.int32), np.empty(0, np.float32)
    return offsets, idx.copy_to_host()[:n].copy(), val.copy_to_host()[:n].copy()


# ----- sparse delivery

@_kernel
def _k_rowptr(offsets, idx, rowlen, nye, rowptr):
    """rowptr[b*nye + ye] = first entry of batch b at or after extended row ye (binary search)."""
    nb = offsets.shape[0] - 1
    for r in range(cuda.grid(1), nb * nye + 1, cuda.gridsize(1)):
        if r == nb * nye:
            rowptr[r] = offsets[nb]
        else:
            b = r // nye
            ye = r - b * nye
            rowptr[r] = _lower_bound(idx, offsets[b], offsets[b + 1], ye * rowlen)


@_kernel
def _k_gather_sparse(idx, val, rowptr, nf, nxe, nye, W1, G, xtab, ytab, woff, meta, nkx, nyp, nxp,
                     nxb, nob, JC, FC, overwrite):
    nb = G.shape[0]
    ny, nx, nfp = G.shape[1], G.shape[2], G.shape[3]
    sy, sx = ytab.shape[1], xtab.shape[1]
    rowlen = nf * nxe
    OC = cuda.blockDim.x
    TX = cuda.blockDim.y
    to = cuda.threadIdx.x
    tid = to + OC * cuda.threadIdx.y
    nthreads = OC * TX
    rowsz = nxp * OC
    fstride = nkx * rowsz
    tile = cuda.shared.array(0, float32)
    for b in range(cuda.blockIdx.z, nb, cuda.gridDim.z):
        for y in range(cuda.blockIdx.y, ny, cuda.gridDim.y):
            for bx in range(cuda.blockIdx.x, nob * nxb, cuda.gridDim.x):
                xb = bx // nob
                ob = bx - xb * nob
                o = ob * OC + to
                x = xb * TX + cuda.threadIdx.y
                active = o < nfp and x < nx
                acc = float32(0)
                for jy0 in range(0, sy, JC):
                    jc = min(JC, sy - jy0)
                    for f0 in range(0, nf, FC):
                        fc = min(FC, nf - f0)
                        cuda.syncthreads()
                        _stage_tile(tile, W1, woff, meta, ytab, y, jy0, jc, f0, nf, nkx, nyp, nxp, nfp,
                                    ob, OC, tid, nthreads)
                        cuda.syncthreads()
                        if active:
                            xlo = xtab[x, 0, 0]
                            xhi = xtab[x, sx - 1, 0]
                            for jl in range(jc):
                                iey = ytab[y, jy0 + jl, 0]
                                rr = b * nye + iey
                                lo = rowptr[rr]
                                hi = rowptr[rr + 1]
                                if lo == hi:
                                    continue
                                row0 = iey * rowlen
                                e0 = _lower_bound(idx, lo, hi, row0 + xlo * nf + f0)
                                e1 = _lower_bound(idx, e0, hi, row0 + xhi * nf + f0 + fc)
                                tj = jl * FC * fstride + to
                                for e in range(e0, e1):
                                    q = idx[e] - row0
                                    xe = q // nf
                                    fl = q - xe * nf - f0
                                    if fl < 0 or fl >= fc:
                                        continue
                                    jx = xe - xlo
                                    acc += val[e] * tile[tj + fl * fstride + xtab[x, jx, 2] * rowsz
                                                         + xtab[x, jx, 1] * OC]
                if active:
                    _put(G, b, y, x, o, acc, overwrite)


def deliver_sparse(offsets, idx, val, nf_pre, nx_ext, W, G,
                   xmul, xoff, xdiv, nkx, ymul, yoff, ydiv, nky, lt, up, overwrite=False):
    """Convolve from an active list (see numpy_ref.deliver_sparse): an owner-computes gather, no atomics;
    ``overwrite`` writes each sum instead of adding it (no launch to clear G first)."""
    _check_out("G", G)
    nf, nxe = _ints(nf_pre, nx_ext)
    geo = _ints(xmul, xoff, xdiv, nkx, ymul, yoff, ydiv, nky, lt, up)
    n = idx.shape[0]
    if n == 0:
        if overwrite:
            fill_zero(G) if _is_device(G) else G.fill(0)
        return
    nb = offsets.shape[0] - 1
    nye = _infer_nye(offsets, idx, nf, nxe, G.shape[1], W.shape[1], geo)
    xt, yt = _geo_tables((nb, nye, nxe, nf), W.shape, G.shape, *geo)
    o, i, v = _Arg("sp.off", offsets, dtype=np.int64), _Arg("sp.idx", idx, dtype=np.int32), \
        _Arg("sp.val", val, dtype=np.float32)
    w, g = _Arg("sp.W", W), _Arg("sp.G", G)
    rowptr = _scratch("sp.rowptr", (nb * nye + 1,), np.int64)
    _k_rowptr[_blocks(nb * nye + 1, SCAN), SCAN](o.dev, i.dev, nf * nxe, nye, rowptr)
    nbg, ny, nx, nfp = G.shape
    nyp, nxp = W.shape[1], W.shape[2]
    oc, tx, jc, fc, shm = _gather_plan(yt.shape[1], nf, geo[3], nxp, nfp, nx)
    nob, nxb = -(-nfp // oc), -(-nx // tx)
    if nob * nxb * ny * nbg:
        woff, meta = _tile_table(oc, fc, geo[3], nxp, nf, nyp, nfp)
        _k_gather_sparse[_grid3(nob * nxb, ny, nbg), (oc, tx), 0, shm](
            i.dev, v.dev, rowptr, nf, nxe, nye, w.dev.reshape(w.dev.size), g.dev, xt, yt, woff, meta,
            geo[3], nyp, nxp, nxb, nob, jc, fc, bool(overwrite))
    g.done()


def _infer_nye(offsets, idx, nf, nxe, ny_post, nyp, geo):
    """Extended pre height of the layer behind an active list.

    The interface passes nx_ext but not ny_ext; the pre layer is symmetric in
    its margin, so ny_ext = n_pre_y + 2*up, with n_pre_y from the y map.
    """
    ymul, ydiv, up = geo[4], geo[6], geo[9]
    n_pre = ny_post * ydiv // ymul
    return n_pre + 2 * up


# --------------------------------------------------------------------- input and update

@_kernel
def _k_accumulate(GSyn3, c, G2):
    nch = GSyn3.shape[0]
    n = G2.shape[1]
    for r in range(cuda.blockIdx.y, G2.shape[0], cuda.gridDim.y):
        for j in range(cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x, n,
                       cuda.gridDim.x * cuda.blockDim.x):
            s = c[0] * GSyn3[0, r, j]
            for ch in range(1, nch):
                s += c[ch] * GSyn3[ch, r, j]
            G2[r, j] = s


def _grid2(rows, rowlen):
    return (_blocks(rowlen, THREADS, 64), max(1, min(rows, MAX_BLOCKS))), THREADS


def accumulate_input(GSyn, coefficients, G):
    """``G = Σ_ch c_ch * GSyn[ch]`` in float32, channel order."""
    _check_out("G", G)
    nb, ny, nx, nf = G.shape
    rows, rowlen = nb * ny, nx * nf
    gs = _Arg("acc.GSyn", GSyn, shape=(GSyn.shape[0], rows, rowlen))
    c = _Arg("acc.c", np.ascontiguousarray(coefficients, dtype=np.float32).reshape(-1), constant=True)
    g = _Arg("acc.G", G, shape=(rows, rowlen), copy_in=False)
    if rows and rowlen:
        grid, block = _grid2(rows, rowlen)
        _k_accumulate[grid, block](gs.dev, c.dev, g.dev)
    g.done()


_transfer1 = cuda.jit(device=True)(transfer1)  # one definition: pvmpi/kernels/transfer.py
_transfer_args = transfer_args


@_kernel
def _k_apply_transfer(V2, A3, ny, lt, up, on, VThresh, AMin, clip, AMax, AShift, VWidth):
    n = V2.shape[1]
    for r in range(cuda.blockIdx.y, V2.shape[0], cuda.gridDim.y):
        b = r // ny
        ya = r - b * ny + up
        for j in range(cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x, n,
                       cuda.gridDim.x * cuda.blockDim.x):
            A3[b, ya, lt + j] = _transfer1(V2[r, j], on, VThresh, AMin, clip, AMax, AShift, VWidth)


def apply_transfer(V, A, lt, up, VThresh, AMin, AMax, AShift, VWidth, sums=None):
    """Write the ANN transfer of V into A's restricted region (facts 3.6); with ``sums``
    ([nb] float64, host) that region's sum per batch element."""
    _check_out("A", A)
    nb, ny, nx, nf = V.shape
    v = _Arg("tr.V", V, shape=(nb * ny, nx * nf))
    a = _Arg("tr.A", A, shape=(A.shape[0], A.shape[1], A.shape[2] * A.shape[3]))
    if nb * ny and nx * nf:
        grid, block = _grid2(nb * ny, nx * nf)
        _k_apply_transfer[grid, block](v.dev, a.dev, ny, int(lt) * nf, int(up),
                                       *_transfer_args(VThresh, AMin, AMax, AShift, VWidth))
    a.done()
    if sums is not None:
        sums[:] = layer_stats(A, lt, up, ny, nx, 0.0)[:, 0]


@_kernel
def _k_update_lca(V2, A3, P3, G2, e, s, ny, lt, up, on, VThresh, AMin, clip, AMax, AShift, VWidth):
    n = V2.shape[1]
    one = float32(1)
    for r in range(cuda.blockIdx.y, V2.shape[0], cuda.gridDim.y):
        b = r // ny
        ya = r - b * ny + up
        eb = e[b]
        ome = one - eb
        for j in range(cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x, n,
                       cuda.gridDim.x * cuda.blockDim.x):
            v = eb * V2[r, j] + ome * (G2[r, j] + s * P3[b, ya, lt + j])
            V2[r, j] = v
            A3[b, ya, lt + j] = _transfer1(v, on, VThresh, AMin, clip, AMax, AShift, VWidth)


def update_ann(GSyn, coefficients, V, A, lt, up, VThresh, AMin, AMax, AShift, VWidth, sums=None):
    """accumulate_input into V, then apply_transfer into A (see numpy_ref.update_ann)."""
    accumulate_input(GSyn, coefficients, V)
    apply_transfer(V, A, lt, up, VThresh, AMin, AMax, AShift, VWidth, sums)


def update_lca(V, A, G, exp_tau, self_interact, lt, up, VThresh, AMin, AMax, AShift, VWidth, v_sums=None,
               A_prev=None):
    """HyPerLCALayer step (facts 3.7): ``V ← e*V + (1-e)*(G + s*A)``, then ``A = transfer(V)``.

    ``v_sums`` (optional [nb] float64): ΣV per batch element. ``A_prev``: the
    previous activity when it is not in A (default A).
    """
    _check_out("V", V)
    _check_out("A", A)
    nb, ny, nx, nf = V.shape
    shape2 = (nb * ny, nx * nf)
    v = _Arg("lca.V", V, shape=shape2)
    a = _Arg("lca.A", A, shape=(A.shape[0], A.shape[1], A.shape[2] * A.shape[3]))
    p = a if A_prev is None else _Arg("lca.Aprev", A_prev, shape=(A.shape[0], A.shape[1], A.shape[2] * A.shape[3]))
    g = _Arg("lca.G", G, shape=shape2)
    e = _Arg("lca.e", np.ascontiguousarray(exp_tau, dtype=np.float32).reshape(-1), constant=True)
    if nb * ny and nx * nf:
        grid, block = _grid2(*shape2)
        _k_update_lca[grid, block](v.dev, a.dev, p.dev, g.dev, e.dev, _F32(self_interact), ny, int(lt) * nf, int(up),
                                   *_transfer_args(VThresh, AMin, AMax, AShift, VWidth))
    v.done()
    a.done()
    if v_sums is not None:
        v_sums[:] = layer_stats(V, 0, 0, ny, nx, 0.0)[:, 0]


# --------------------------------------------------------------------- halo strips

@_kernel
def _k_copy_block(A3, buf3, y0, x0, w, to_buf):
    """Rows (b, i) of a [nb, h, w*nf] block at (y0, x0) of A: gather into buf or scatter from it."""
    h = buf3.shape[1]
    for r in range(cuda.blockIdx.y, buf3.shape[0] * h, cuda.gridDim.y):
        b = r // h
        i = r - b * h
        for j in range(cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x, w,
                       cuda.gridDim.x * cuda.blockDim.x):
            if to_buf:
                buf3[b, i, j] = A3[b, y0 + i, x0 + j]
            else:
                A3[b, y0 + i, x0 + j] = buf3[b, i, j]


def _halo_block(A, buf, y0, x0, to_buf):
    nb, h, w, nf = buf.shape
    A3 = _as_dev(A).reshape(A.shape[0], A.shape[1], A.shape[2] * A.shape[3])
    b3 = _as_dev(buf).reshape(nb, h, w * nf)
    if nb * h and w * nf:
        grid, block = _grid2(nb * h, w * nf)
        _k_copy_block[grid, block](A3, b3, int(y0), int(x0) * nf, w * nf, to_buf)


def pack_halo(A, buf, y0, x0):
    """``buf[...] = A[:, y0:y0+h, x0:x0+w, :]`` on the device (A, buf device arrays; buf [nb, h, w, nf]).

    A halo strip leaves the device as one contiguous message (staged through
    host memory, or handed to a CUDA-aware MPI as it is).
    """
    _halo_block(A, buf, y0, x0, True)


def unpack_halo(A, buf, y0, x0):
    """``A[:, y0:y0+h, x0:x0+w, :] = buf`` on the device (the inverse of :func:`pack_halo`)."""
    _halo_block(A, buf, y0, x0, False)


@_kernel
def _k_mirror_x(A3, nf, m, n, left, right):
    """Every row (b, y) of A3 [nb, Y, X*nf]: the m margin columns each side copy the restricted ones, reversed."""
    span = m * nf
    for r in range(cuda.blockIdx.y, A3.shape[0] * A3.shape[1], cuda.gridDim.y):
        b = r // A3.shape[1]
        y = r - b * A3.shape[1]
        for j in range(cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x, 2 * span,
                       cuda.gridDim.x * cuda.blockDim.x):
            high = j >= span
            q = j - span if high else j
            k = q // nf
            f = q - k * nf
            if high and right:
                A3[b, y, (m + n + k) * nf + f] = A3[b, y, (m + n - 1 - k) * nf + f]
            elif not high and left:
                A3[b, y, k * nf + f] = A3[b, y, (2 * m - 1 - k) * nf + f]


@_kernel
def _k_mirror_y(A3, m, n, top, bottom):
    """Every column of A3 [nb, Y, X*nf]: the m margin rows each side copy the restricted ones, reversed."""
    for r in range(cuda.blockIdx.y, A3.shape[0] * 2 * m, cuda.gridDim.y):
        b = r // (2 * m)
        q = r - b * 2 * m
        high = q >= m
        k = q - m if high else q
        if high and not bottom or not high and not top:
            continue
        dst = m + n + k if high else k
        src = m + n - 1 - k if high else 2 * m - 1 - k
        for j in range(cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x, A3.shape[2],
                       cuda.gridDim.x * cuda.blockDim.x):
            A3[b, dst, j] = A3[b, src, j]


def mirror_halo(A, mx, my, nx, ny, edges):
    """OpenPV's mirror boundary on the device: x over all rows first, then y over all columns.

    ``edges`` = (top, bottom, left, right): which sides are at the global edge
    (the same order and result as :class:`pvmpi.parallel.halo.HaloExchange`).
    """
    top, bottom, left, right = (bool(e) for e in edges)
    nb, Y, X, nf = A.shape
    A3 = _as_dev(A).reshape(nb, Y, X * nf)
    if mx and (left or right):
        grid, block = _grid2(nb * Y, 2 * mx * nf)
        _k_mirror_x[grid, block](A3, nf, int(mx), int(nx), left, right)
    if my and (top or bottom):
        grid, block = _grid2(nb * 2 * my, X * nf)
        _k_mirror_y[grid, block](A3, int(my), int(ny), top, bottom)


# --------------------------------------------------------------------- learning

def _slices(nel, longest):
    """Slices per dW element so that about BUSY_THREADS threads work (at most one per pre neuron)."""
    return max(1, min(-(-BUSY_THREADS // max(nel, 1)), max(longest, 1)))


@_kernel
def _k_hebb_dense(A_pre, A_post, xs, ys, part, partc, S, nkx, nky,
                  lt_pre, up_pre, lt_post, up_post, nyp, nxp, nfp):
    nb, nye, nxe, nf = A_pre.shape
    ny = A_post.shape[1] - 2 * up_post
    nx = A_post.shape[2] - 2 * lt_post
    nel = part.shape[1]
    for t in range(cuda.grid(1), S * nel, cuda.gridsize(1)):
        s = t // nel
        el = t - s * nel
        o = el % nfp
        q = el // nfp
        px = q % nxp
        q = q // nxp
        py = q % nyp
        k = q // nyp
        f = k % nf
        kx = (k // nf) % nkx
        ky = k // (nf * nkx)
        ye0 = (up_pre + ky) % nky
        xe0 = (lt_pre + kx) % nkx
        nyk = (nye - ye0 + nky - 1) // nky
        nxk = (nxe - xe0 + nkx - 1) // nkx
        P = nb * nyk * nxk
        q0 = s * P // S
        q1 = (s + 1) * P // S
        acc = float32(0)
        cnt = float32(0)
        if q0 < q1:
            ix = q0 % nxk
            q = q0 // nxk
            iy = q % nyk
            b = q // nyk
            for _ in range(q0, q1):
                ye = ye0 + iy * nky
                xe = xe0 + ix * nkx
                a = A_pre[b, ye, xe, f]
                if a != 0:
                    y = ys[ye] + py
                    x = xs[xe] + px
                    if y >= 0 and y < ny and x >= 0 and x < nx:
                        acc += a * A_post[b, y + up_post, x + lt_post, o]
                        cnt += float32(1)
                ix += 1
                if ix == nxk:
                    ix = 0
                    iy += 1
                    if iy == nyk:
                        iy = 0
                        b += 1
        part[s, el] = acc
        partc[s, el] = cnt


@_kernel
def _k_hebb_reduce(part, partc, dW1, cnt1, dw_max):
    S, nel = part.shape
    for el in range(cuda.grid(1), nel, cuda.gridsize(1)):
        s1 = float32(0)
        c1 = float32(0)
        for s in range(S):
            s1 += part[s, el]
            c1 += partc[s, el]
        dW1[el] += dw_max * s1
        cnt1[el] += c1


def _finish_hebbian(part, partc, dW, counts, dw_max):
    nel = part.shape[1]
    d = _Arg("hb.dW", dW, shape=(nel,))
    c = _Arg("hb.cnt", counts, shape=(nel,))
    _k_hebb_reduce[_blocks(nel, SCAN), SCAN](part, partc, d.dev, c.dev, _F32(dw_max))
    d.done()
    c.done()


def hebbian_shared(A_pre, A_post, dW, counts, dw_max,
                   xmul, xoff, xdiv, nkx, ymul, yoff, ydiv, nky,
                   lt_pre, up_pre, lt_post, up_post):
    """Hebbian term of shared weights (see numpy_ref.hebbian_shared): owner-computes slices, fixed-order sum."""
    _check_out("dW", dW)
    _check_out("counts", counts)
    xmul, xoff, xdiv, nkx, ymul, yoff, ydiv, nky, lt_pre, up_pre, lt_post, up_post = _ints(
        xmul, xoff, xdiv, nkx, ymul, yoff, ydiv, nky, lt_pre, up_pre, lt_post, up_post)
    nb, nye, nxe, _ = A_pre.shape
    nk, nyp, nxp, nfp = dW.shape
    nel = nk * nyp * nxp * nfp
    if nel == 0:
        return
    S = _slices(nel, nb * -(-nye // nky) * -(-nxe // nkx))
    a, p = _Arg("hb.pre", A_pre), _Arg("hb.post", A_post)
    xs = _axis_starts(nxe, lt_pre, xmul, xoff, xdiv)
    ys = _axis_starts(nye, up_pre, ymul, yoff, ydiv)
    part = _scratch("hb.part", (S, nel), np.float32)
    partc = _scratch("hb.partc", (S, nel), np.float32)
    _k_hebb_dense[_blocks(S * nel, SCAN), SCAN](a.dev, p.dev, xs, ys, part, partc, S, nkx, nky,
                                                lt_pre, up_pre, lt_post, up_post, nyp, nxp, nfp)
    _finish_hebbian(part, partc, dW, counts, dw_max)


@_kernel
def _k_zero_f32(a):
    for i in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
        a[i] = 0


@_kernel
def _k_scatter(offsets, idx, val, dense2):
    """dense2[b, idx[e]] = val[e]: expand an active list (positions are unique: no races)."""
    nb = offsets.shape[0] - 1
    for e in range(cuda.grid(1), idx.shape[0], cuda.gridsize(1)):
        lo = 0
        hi = nb + 1
        while lo < hi:  # batch of entry e: the last b with offsets[b] <= e
            mid = (lo + hi) // 2
            if offsets[mid] <= e:
                lo = mid + 1
            else:
                hi = mid
        dense2[lo - 1, idx[e]] = val[e]


def hebbian_shared_sparse(offsets, idx, val, nf_pre, nx_ext, A_post, dW, counts, dw_max,
                          xmul, xoff, xdiv, nkx, ymul, yoff, ydiv, nky,
                          lt_pre, up_pre, lt_post, up_post):
    """``hebbian_shared`` from an active list: the list is expanded into a dense pre buffer on the
    device (O(n) scatter), then the dense owner-computes kernel runs.

    Bucketing the list by kernel instead costs a sort; on a GPU the dense
    kernel's zero tests are warp-broadcast loads and cheaper than that.
    Entries must be nonzero (as active_list makes them): a zero value is not
    counted, as in the dense form.
    """
    _check_out("dW", dW)
    _check_out("counts", counts)
    nf, nxe, ymul, ydiv, up_pre, up_post = _ints(nf_pre, nx_ext, ymul, ydiv, up_pre, up_post)
    n = idx.shape[0]
    if n == 0 or dW.size == 0:
        return
    nb = offsets.shape[0] - 1
    nye = (A_post.shape[1] - 2 * up_post) * ydiv // ymul + 2 * up_pre
    o, i, v = _Arg("hs.off", offsets, dtype=np.int64), _Arg("hs.idx", idx, dtype=np.int32), \
        _Arg("hs.val", val, dtype=np.float32)
    dense = _scratch("hs.dense", (nb * nye * nxe * nf,), np.float32)
    _k_zero_f32[_blocks(dense.shape[0], THREADS), THREADS](dense)
    _k_scatter[_blocks(n, THREADS), THREADS](o.dev, i.dev, v.dev, dense.reshape(nb, nye * nxe * nf))
    hebbian_shared(dense.reshape(nb, nye, nxe, nf), A_post, dW, counts, dw_max,
                   xmul, xoff, xdiv, nkx, ymul, yoff, ydiv, nky, lt_pre, up_pre, lt_post, up_post)


@_kernel
def _k_zero_i64(a):
    for i in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
        a[i] = 0


# --------------------------------------------------------------------- probes

@_kernel
def _k_layer_stats(X3, lt, up, ny, rowlen, thr, part):
    """part[b, p] = [Σa, Σ|a|, Σa², #|a|>thr, min, max] over rows p, p+P, ... of batch b's window."""
    acc = cuda.shared.array(0, float64)  # [6, SCAN], row-major
    tid = cuda.threadIdx.x
    b = cuda.blockIdx.y
    p = cuda.blockIdx.x
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    cnt = 0.0
    lo = math.inf
    hi = -math.inf
    for y in range(p, ny, cuda.gridDim.x):
        for j in range(tid, rowlen, SCAN):
            v = float64(X3[b, up + y, lt + j])
            a = abs(v)
            s0 += v
            s1 += a
            s2 += v * v
            if a > thr:
                cnt += 1.0
            lo = min(lo, v)
            hi = max(hi, v)
    acc[tid] = s0
    acc[1 * SCAN + tid] = s1
    acc[2 * SCAN + tid] = s2
    acc[3 * SCAN + tid] = cnt
    acc[4 * SCAN + tid] = lo
    acc[5 * SCAN + tid] = hi
    cuda.syncthreads()
    half = SCAN // 2
    while half > 0:
        if tid < half:
            for c in range(4):
                acc[c * SCAN + tid] += acc[c * SCAN + tid + half]
            acc[4 * SCAN + tid] = min(acc[4 * SCAN + tid], acc[4 * SCAN + tid + half])
            acc[5 * SCAN + tid] = max(acc[5 * SCAN + tid], acc[5 * SCAN + tid + half])
        cuda.syncthreads()
        half //= 2
    if tid < 6:
        part[b, p, tid] = acc[tid * SCAN]


def layer_stats(X, lt, up, ny, nx, nnz_threshold):
    """Per batch element: [Σa, Σ|a|, Σa², #|a|>thr, min, max] in float64 (see numpy_ref.layer_stats)."""
    return layer_stats_later(X, lt, up, ny, nx, nnz_threshold).result()


class _LaterStats:
    """:func:`layer_stats` launched, its [nb, P, 6] partial results on their way to pinned host
    memory; :meth:`result` waits for the device only if no wait since has (see :func:`_waited`)."""

    def __init__(self, host):
        self.host = host
        self.complete = False
        self.value = None

    def result(self):
        """The [nb, 6] float64 stats (the first call may wait for the device)."""
        if self.value is None:
            if not self.complete:
                cuda.synchronize()
                _waited()
            h = self.host
            nb = h.shape[0]
            out = np.empty((nb, 6), np.float64)
            out[:, :4] = h[:, :, :4].sum(axis=1)
            out[:, 4] = h[:, :, 4].min(axis=1) if nb else 0
            out[:, 5] = h[:, :, 5].max(axis=1) if nb else 0
            self.value = out
        return self.value


def _address(dev):
    """Where a device array's data starts (in the simulator, its host buffer)."""
    if SIMULATOR:
        return dev._ary.__array_interface__["data"][0]
    return dev.device_ctypes_pointer.value


_later_buffers = {}  # (device address, shape, threshold) of X: [device partials, pinned host copy, latest read]


def layer_stats_later(X, lt, up, ny, nx, nnz_threshold):
    """:func:`layer_stats` of device ``X`` started now and read later: the result's ``result()``.

    The partials travel to pinned host memory without waiting; the reads of a step's stats
    then share one wait for the device (the first read after the last launch), instead of one
    wait each, in which the device runs dry while Python launches the next kernels."""
    lt, up, ny, nx = _ints(lt, up, ny, nx)
    nb, nf = X.shape[0], X.shape[3]
    x = _Arg("st.X", X, shape=(nb, X.shape[1], X.shape[2] * nf))
    P = max(1, min(ny, 64 if not SIMULATOR else 1))
    key = (_address(x.dev), X.shape, lt, up, float(nnz_threshold))
    bufs = _later_buffers.get(key)
    if bufs is None:
        if len(_later_buffers) > 256:
            _later_buffers.clear()
        ALLOCATIONS[0] += 2  # the partials on the device, their pinned copy on the host
        bufs = _later_buffers[key] = [cuda.device_array((nb, P, 6), np.float64),
                                      cuda.pinned_array((nb, P, 6), np.float64), None]
    part, host, latest = bufs
    if latest is not None and latest.value is None:  # its copy lands in the buffer this one reuses
        latest.result()
    later = bufs[2] = _LaterStats(host)
    if len(_LATER) > 1024:  # reads never asked for: let them go
        cuda.synchronize()
        _waited()
    if nb:
        _k_layer_stats[(P, nb), SCAN, 0, 6 * SCAN * 8](x.dev, lt * nf, up, ny, nx * nf, float(nnz_threshold), part)
        part.copy_to_host(host, stream=cuda.default_stream())
        _LATER.append(later)
    else:
        later.complete = True
    return later


@_kernel
def _k_firm_cost(X3, lt, up, ny, rowlen, w, part):
    """part[b, p] = Σ c(a) over rows p, p+P, ... of batch b's window (facts §5.2), a block tree sum."""
    acc = cuda.shared.array(0, float64)  # SCAN values
    tid = cuda.threadIdx.x
    b = cuda.blockIdx.y
    p = cuda.blockIdx.x
    half = 0.5 * w
    inv = 0.5 / w if w > 0 else 0.0
    s = 0.0
    for y in range(p, ny, cuda.gridDim.x):
        for j in range(tid, rowlen, SCAN):
            x = abs(float64(X3[b, up + y, lt + j]))
            s += x * (1.0 - x * inv) if x < w else half
    acc[tid] = s
    cuda.syncthreads()
    step = SCAN // 2
    while step > 0:
        if tid < step:
            acc[tid] += acc[tid + step]
        cuda.syncthreads()
        step //= 2
    if tid == 0:
        part[b, p] = acc[0]


def firm_threshold_cost(X, lt, up, ny, nx, w):
    """Σ c(a) per batch element in float64 (see numpy_ref.firm_threshold_cost): only [nb, P] partial
    sums cross to the host."""
    lt, up, ny, nx = _ints(lt, up, ny, nx)
    nb, nf = X.shape[0], X.shape[3]
    x = _Arg("fc.X", X, shape=(nb, X.shape[1], X.shape[2] * nf))
    P = max(1, min(ny, 64 if not SIMULATOR else 1))
    part = _scratch("fc.part", (nb, P), np.float64)
    if nb:
        _k_firm_cost[(P, nb), SCAN, 0, SCAN * 8](x.dev, lt * nf, up, ny, nx * nf, float(w), part)
        h = part.copy_to_host()
        _waited()
        return h.sum(axis=1)
    return np.zeros(0, np.float64)


# --------------------------------------------------------------------- engine state (device-resident)

CAPABILITIES = Capabilities(device_resident=True, gemm_delivery=False)  # V, A, GSyn, W, dW live here


def zeros(shape):
    """A float32 device buffer of zeros (allocated and cleared on the device: nothing crosses)."""
    d = _device_array(tuple(int(n) for n in np.atleast_1d(shape)), np.float32)
    fill_zero(d)
    return d


def fill_zero(X):
    """``X[...] = 0`` on the device (X a C-contiguous device array or view)."""
    x = _as_dev(X)
    if x.size:
        x1 = x.reshape(x.size)
        _k_zero_f32[_blocks(x.size, THREADS), THREADS](x1)


_host_buffers = {}


def host_buffer(a):
    """A host array shaped like device buffer ``a`` (kept per shape) to compose a new value in
    before :func:`upload` (input frames)."""
    key = tuple(a.shape)
    buf = _host_buffers.get(key)
    if buf is None:
        buf = _host_buffers[key] = np.zeros(key, np.dtype(a.dtype))
    return buf


def upload(dst, host):
    """``dst[...] = host`` (host data, broadcast to dst's shape): one host-to-device copy."""
    h = np.ascontiguousarray(host, dtype=np.dtype(dst.dtype))
    if h.shape != tuple(dst.shape):  # a copy: broadcast views have zero strides the copy must not see
        h = np.broadcast_to(h, dst.shape).copy()
    if h.size:
        _as_dev(dst).copy_to_device(h)
        _waited(drained=False)


def copy(dst, src):
    """``dst[...] = src`` between device buffers of one shape (device to device)."""
    if dst.size:
        _as_dev(dst).copy_to_device(_as_dev(src))


@_kernel
def _k_scale_into(D3, S3, ny, dlt, dup, slt, sup, n, scale, add):
    """Rows r = (b, y) of the windows: D[b, dup+y, dlt+j] (+)= scale * S[b, sup+y, slt+j]."""
    for r in range(cuda.blockIdx.y, D3.shape[0] * ny, cuda.gridDim.y):
        b = r // ny
        y = r - b * ny
        for j in range(cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x, n,
                       cuda.gridDim.x * cuda.blockDim.x):
            v = scale * S3[b, sup + y, slt + j]
            if add:
                D3[b, dup + y, dlt + j] += v
            else:
                D3[b, dup + y, dlt + j] = v


def scale_into(dst, src, scale, add, dst_lt=0, dst_up=0, src_lt=0, src_up=0, sums=None):
    """``dst (+)= scale * src`` on restricted windows (see numpy_ref.scale_into); a host ``src``
    (the reduced dW) is staged, so it crosses once. ``sums`` ([nb] float64, host): dst's window's sums."""
    _check_out("dst", dst)
    if len(dst.shape) != 4:  # weights [arbor, kernel, y, x, f]: one flat row per arbor
        dst, src = _flat4(dst), _flat4(src)
    nb, Y, X, nf = dst.shape
    ny, nx = Y - 2 * int(dst_up), X - 2 * int(dst_lt)
    d, s = _Arg("si.dst", dst, shape=(nb, Y, X * nf)), _Arg("si.src", src, shape=(src.shape[0], src.shape[1],
                                                                                  src.shape[2] * src.shape[3]))
    if nb * ny and nx * nf:
        grid, block = _grid2(nb * ny, nx * nf)
        _k_scale_into[grid, block](d.dev, s.dev, ny, int(dst_lt) * nf, int(dst_up), int(src_lt) * nf,
                                   int(src_up), nx * nf, _F32(scale), bool(add))
    d.done()
    if sums is not None:
        sums[:] = layer_stats(dst, dst_lt, dst_up, ny, nx, 0.0)[:, 0]


def _flat4(a):
    """Any array as [1, 1, size, 1] (elementwise operations without windows)."""
    return a.reshape(1, 1, int(np.prod(a.shape)), 1)


@_kernel
def _k_gather_flat(dst, src, index):
    for i in range(cuda.grid(1), dst.shape[0], cuda.gridsize(1)):
        j = index[i]
        dst[i] = src[j] if j >= 0 else float32(0)


def gather_flat(dst, src, index):
    """``dst.flat[i] = src.flat[index[i]]``, 0 where ``index[i] < 0``, on the device (a TransposeConn
    following its original)."""
    _check_out("dst", dst)
    n = int(np.prod(dst.shape))
    d, s = _Arg("gf.dst", dst, shape=(n,)), _Arg("gf.src", src, shape=(int(np.prod(src.shape)),))
    i = _Arg("gf.index", index, dtype=np.int64)
    if n:
        _k_gather_flat[_blocks(n, THREADS), THREADS](d.dev, s.dev, i.dev)
    d.done()


@_kernel
def _k_momentum_lca(V2, G2, P3, D2, e, s, rate, ny, lt, up):
    n = V2.shape[1]
    one = float32(1)
    for r in range(cuda.blockIdx.y, V2.shape[0], cuda.gridDim.y):
        b = r // ny
        ya = r - b * ny + up
        eb = e[b]
        for j in range(cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x, n,
                       cuda.gridDim.x * cuda.blockDim.x):
            drive = (one - eb) * (G2[r, j] + s * P3[b, ya, lt + j])
            V2[r, j] = eb * V2[r, j] + drive + rate * D2[r, j]
            D2[r, j] = drive


def update_momentum_lca(V, G, A_prev, prev_drive, exp_tau, self_interact, rate, lt, up):
    """MomentumLCALayer's V and drive (see numpy_ref.update_momentum_lca), elementwise on the device."""
    _check_out("V", V)
    _check_out("prev_drive", prev_drive)
    nb, ny, nx, nf = V.shape
    shape2 = (nb * ny, nx * nf)
    v, g, d = _Arg("mlca.V", V, shape=shape2), _Arg("mlca.G", G, shape=shape2), _Arg("mlca.D", prev_drive,
                                                                                      shape=shape2)
    p = _Arg("mlca.A", A_prev, shape=(A_prev.shape[0], A_prev.shape[1], A_prev.shape[2] * A_prev.shape[3]))
    e = _Arg("mlca.e", np.ascontiguousarray(exp_tau, dtype=np.float32).reshape(-1), constant=True)
    if nb * ny and nx * nf:
        grid, block = _grid2(*shape2)
        _k_momentum_lca[grid, block](v.dev, g.dev, p.dev, d.dev, e.dev, _F32(self_interact), _F32(rate), ny,
                                     int(lt) * nf, int(up))
    v.done()
    d.done()


@_kernel
def _k_vertex_transfer(V2, A3, vv, va, sneg, spos, ny, lt, up):
    n = V2.shape[1]
    m = vv.shape[0]
    for r in range(cuda.blockIdx.y, V2.shape[0], cuda.gridDim.y):
        b = r // ny
        ya = r - b * ny + up
        for j in range(cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x, n,
                       cuda.gridDim.x * cuda.blockDim.x):
            v = V2[r, j]
            i = -1  # the last vertex at or below v (searchsorted right, minus one)
            for q in range(m):
                if vv[q] <= v:
                    i = q
            if i < 0:
                a = va[0] + sneg * (v - vv[0])
            elif i >= m - 1:
                a = va[m - 1] + spos * (v - vv[m - 1])
            else:
                a = va[i] + (va[i + 1] - va[i]) * (v - vv[i]) / (vv[i + 1] - vv[i])
            A3[b, ya, lt + j] = a


def apply_vertex_transfer(V, A, lt, up, vv, va, slope_neg, slope_pos):
    """The verticesV/verticesA transfer of V into A's restricted region (see numpy_ref), on the device."""
    _check_out("A", A)
    nb, ny, nx, nf = V.shape
    v = _Arg("vt.V", V, shape=(nb * ny, nx * nf))
    a = _Arg("vt.A", A, shape=(A.shape[0], A.shape[1], A.shape[2] * A.shape[3]))
    x = _Arg("vt.vv", np.ascontiguousarray(vv, dtype=np.float32), constant=True)
    y = _Arg("vt.va", np.ascontiguousarray(va, dtype=np.float32), constant=True)
    if nb * ny and nx * nf:
        grid, block = _grid2(nb * ny, nx * nf)
        _k_vertex_transfer[grid, block](v.dev, a.dev, x.dev, y.dev, _F32(slope_neg), _F32(slope_pos), ny,
                                        int(lt) * nf, int(up))
    a.done()


@_kernel
def _k_momentum_weights(W, dw, prev, a, f, c):
    for i in range(cuda.grid(1), W.shape[0], cuda.gridsize(1)):
        new = a * dw[i] + f * prev[i] - c * W[i]
        prev[i] = new
        W[i] += new


def momentum_weights(W, dw, prev, a, f, c):
    """MomentumConn's step on the device (see numpy_ref.momentum_weights); a host ``dw`` crosses once."""
    _check_out("W", W)
    _check_out("prev", prev)
    n = int(np.prod(W.shape))
    w, d, p = _Arg("mw.W", W, shape=(n,)), _Arg("mw.dw", dw, shape=(n,)), _Arg("mw.prev", prev, shape=(n,))
    if n:
        _k_momentum_weights[_blocks(n, THREADS), THREADS](w.dev, d.dev, p.dev, _F32(a), _F32(f), _F32(c))
    w.done()
    p.done()


# --------------------------------------------------------------------- RescaleLayer, DropoutLayer

POINTMEANSTD, POINTRESPONSENORMALIZATION, SOFTMAX, LOGREG, ZEROTONEGATIVE = range(5)  # numpy_ref's codes
_FLT_MIN = float32(1.17549435e-38)


@_kernel
def _k_rescale_batch(D3, S3, c, ny, dlt, dup, slt, sup, n):
    for r in range(cuda.blockIdx.y, D3.shape[0] * ny, cuda.gridDim.y):
        b = r // ny
        y = r - b * ny
        for j in range(cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x, n,
                       cuda.gridDim.x * cuda.blockDim.x):
            D3[b, dup + y, dlt + j] = ((S3[b, sup + y, slt + j] - c[b, 0]) / c[b, 1]) * c[b, 2] + c[b, 3]


def rescale_batch(dst, src, coeffs, dst_lt, dst_up, src_lt, src_up):
    """RescaleLayer's whole-layer methods per batch element (see numpy_ref.rescale_batch), on the device."""
    _check_out("dst", dst)
    nb, Y, X, nf = dst.shape
    ny, nx = Y - 2 * int(dst_up), X - 2 * int(dst_lt)
    d = _Arg("rb.dst", dst, shape=(nb, Y, X * nf))
    s = _Arg("rb.src", src, shape=(src.shape[0], src.shape[1], src.shape[2] * src.shape[3]))
    c = _Arg("rb.c", np.ascontiguousarray(coeffs, dtype=np.float32).reshape(nb, 4), constant=True)
    if nb * ny and nx * nf:
        grid, block = _grid2(nb * ny, nx * nf)
        _k_rescale_batch[grid, block](d.dev, s.dev, c.dev, ny, int(dst_lt) * nf, int(dst_up), int(src_lt) * nf,
                                      int(src_up), nx * nf)
    d.done()


@_kernel
def _k_rescale_features(D, S, method, mean_t, std_t, ny, nx, dlt, dup, slt, sup):
    nf = S.shape[3]
    fnf = float32(nf)
    for i in range(cuda.grid(1), D.shape[0] * ny * nx, cuda.gridsize(1)):  # one thread per position
        b = i // (ny * nx)
        y = (i // nx) % ny
        x = i % nx
        ys, xs, yd, xd = sup + y, slt + x, dup + y, dlt + x
        if method == POINTMEANSTD or method == POINTRESPONSENORMALIZATION:
            total = float32(0)
            if method == POINTMEANSTD:
                for f in range(nf):
                    total += S[b, ys, xs, f]
            mean = total / fnf
            sq = float32(0)
            for f in range(nf):
                sq += (S[b, ys, xs, f] - mean) * (S[b, ys, xs, f] - mean)
            spread = math.sqrt(sq / fnf) if method == POINTMEANSTD else math.sqrt(sq)
            for f in range(nf):
                v = S[b, ys, xs, f]
                if spread == 0:
                    D[b, yd, xd, f] = v
                elif method == POINTMEANSTD:
                    D[b, yd, xd, f] = (v - mean) * (std_t / spread) + mean_t
                else:
                    D[b, yd, xd, f] = v / spread
        elif method == SOFTMAX:
            top = _FLT_MIN
            for f in range(nf):
                top = max(top, S[b, ys, xs, f])
            total = float32(0)
            for f in range(nf):
                total += math.exp(S[b, ys, xs, f] - top)
            for f in range(nf):
                ok = total != 0 and total == total
                D[b, yd, xd, f] = math.exp(S[b, ys, xs, f] - top) / total if ok else float32(0)
        elif method == LOGREG:
            for f in range(nf):
                D[b, yd, xd, f] = float32(1) / (float32(1) + math.exp(S[b, ys, xs, f]))
        else:  # ZEROTONEGATIVE
            for f in range(nf):
                v = S[b, ys, xs, f]
                D[b, yd, xd, f] = float32(-1) if v == 0 else v


def rescale_features(dst, src, method, target_mean, target_std, dst_lt, dst_up, src_lt, src_up):
    """RescaleLayer's per-position and per-neuron methods (see numpy_ref.rescale_features), on the device."""
    _check_out("dst", dst)
    nb, Y, X, nf = dst.shape
    ny, nx = Y - 2 * int(dst_up), X - 2 * int(dst_lt)
    d, s = _Arg("rf.dst", dst), _Arg("rf.src", src)
    n = nb * ny * nx
    if n:
        _k_rescale_features[_blocks(n, THREADS), THREADS](d.dev, s.dev, int(method), _F32(target_mean),
                                                          _F32(target_std), *_ints(ny, nx, dst_lt, dst_up,
                                                                                   src_lt, src_up))
    d.done()


@cuda.jit(device=True, inline=True)
def _unravel(i, ny, nx, nf):
    """(b, y, x, f) of flat index i of a [nb, ny, nx, nf] buffer."""
    return i // (nf * nx * ny), (i // (nf * nx)) % ny, (i // nf) % nx, i % nf


@cuda.jit(device=True, inline=True)
def _taus(s1, s2, s3):
    m = np.uint32(0xFFFFFFFF)
    s1 = (((s1 & np.uint32(0xFFFFFFFE)) << 12) & m) ^ ((((s1 << 13) & m) ^ s1) >> 19)
    s2 = (((s2 & np.uint32(0xFFFFFFF8)) << 4) & m) ^ ((((s2 << 2) & m) ^ s2) >> 25)
    s3 = (((s3 & np.uint32(0xFFFFFFF0)) << 17) & m) ^ ((((s3 << 3) & m) ^ s3) >> 11)
    return s1, s2, s3


@cuda.jit(device=True, inline=True)
def _draw(R, b, y, x, f):
    """Step neuron (b, y, x, f)'s taus88 generator in R [4, nb, ny, nx, nf]; its new s0."""
    s1, s2, s3 = _taus(R[1, b, y, x, f], R[2, b, y, x, f], R[3, b, y, x, f])
    s0 = s1 ^ s2 ^ s3
    R[0, b, y, x, f] = s0
    R[1, b, y, x, f] = s1
    R[2, b, y, x, f] = s2
    R[3, b, y, x, f] = s3
    return s0


@_kernel
def _k_dropout(A, R, p, lt, up):
    nb, ny, nx, nf = R.shape[1], R.shape[2], R.shape[3], R.shape[4]
    for i in range(cuda.grid(1), nb * ny * nx * nf, cuda.gridsize(1)):
        b, y, x, f = _unravel(i, ny, nx, nf)
        if _draw(R, b, y, x, f) % 100 < p:
            A[b, up + y, lt + x, f] = float32(0)


def dropout(A, rng, probability, lt, up):
    """DropoutLayer's draw (see numpy_ref.dropout): one thread per neuron and its taus88 generator."""
    _check_out("A", A)
    a, r = _Arg("do.A", A), _Arg("do.rng", rng)
    n = int(np.prod(rng.shape[1:]))
    if n:
        _k_dropout[_blocks(n, THREADS), THREADS](a.dev, r.dev, int(probability), int(lt), int(up))
    a.done()
    r.done()


# --------------------------------------------------------------------- PtwiseQuotientLayer, FirmThresholdCostLayer

@_kernel
def _k_combine(N, D, G, op):
    for i in range(cuda.grid(1), G.shape[0], cuda.gridsize(1)):
        if op == 0:
            G[i] = N[i] / D[i]
        elif op == 1:
            G[i] = N[i] * D[i]
        else:
            G[i] = N[i] * N[i]


def combine_channels(GSyn, G, op):
    """G = exc / inh, exc * inh or exc² on the device (see numpy_ref.combine_channels)."""
    _check_out("G", G)
    n = int(np.prod(G.shape))
    gs = _Arg("cc.GSyn", GSyn, shape=(GSyn.shape[0], n))
    g = _Arg("cc.G", G, shape=(n,), copy_in=False)
    if n:
        other = gs.dev[1] if GSyn.shape[0] > 1 else gs.dev[0]
        _k_combine[_blocks(n, THREADS), THREADS](gs.dev[0], other, g.dev, int(op))
    g.done()


@_kernel
def _k_firm_transfer(V2, A3, ny, lt, up, w, a2):
    n = V2.shape[1]
    for r in range(cuda.blockIdx.y, V2.shape[0], cuda.gridDim.y):
        b = r // ny
        ya = r - b * ny + up
        for j in range(cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x, n,
                       cuda.gridDim.x * cuda.blockDim.x):
            x = abs(V2[r, j])
            A3[b, ya, lt + j] = x * (float32(1) - x * a2) if x <= w else float32(0.5) * w


def firm_threshold_transfer(V, A, lt, up, VThresh, VWidth):
    """The firm-threshold cost of V into A's restricted window (see numpy_ref), on the device."""
    _check_out("A", A)
    nb, ny, nx, nf = V.shape
    v = _Arg("ft.V", V, shape=(nb * ny, nx * nf))
    a = _Arg("ft.A", A, shape=(A.shape[0], A.shape[1], A.shape[2] * A.shape[3]))
    w = _F32(VThresh) + _F32(VWidth)
    if nb * ny and nx * nf:
        grid, block = _grid2(nb * ny, nx * nf)
        _k_firm_transfer[grid, block](v.dev, a.dev, ny, int(lt) * nf, int(up), w, _F32(0.5) / w)
    a.done()


@_kernel
def _k_feature_max(A, G, ny, nx, lt, up, add):
    nf = A.shape[3]
    for i in range(cuda.grid(1), G.shape[0] * ny * nx, cuda.gridsize(1)):
        b = i // (ny * nx)
        y = (i // nx) % ny
        x = i % nx
        top = A[b, up + y, lt + x, 0]
        for f in range(1, nf):
            top = max(top, A[b, up + y, lt + x, f])
        if add:
            G[b, y, x, 0] += top
        else:
            G[b, y, x, 0] = top


def deliver_feature_max(A, G, lt, up, add):
    """WTAConn's delivery on the device (see numpy_ref.deliver_feature_max)."""
    _check_out("G", G)
    nb, ny, nx, _ = G.shape
    a, g = _Arg("fm.A", A), _Arg("fm.G", G)
    n = nb * ny * nx
    if n:
        _k_feature_max[_blocks(n, THREADS), THREADS](a.dev, g.dev, ny, nx, int(lt), int(up), bool(add))
    g.done()


@_kernel
def _k_sigmoid(V2, A3, ny, lt, up, vth, scale, sigmoid, inverse):
    n = V2.shape[1]
    one = float32(1)
    for r in range(cuda.blockIdx.y, V2.shape[0], cuda.gridDim.y):
        b = r // ny
        ya = r - b * ny + up
        for j in range(cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x, n,
                       cuda.gridDim.x * cuda.blockDim.x):
            if sigmoid:
                a = one / (one + math.exp(float32(2) * (V2[r, j] - vth) * scale))
            else:
                a = min(max(float32(0.5) - (V2[r, j] - vth) * scale / float32(2), float32(0)), one)
            A3[b, ya, lt + j] = one - a if inverse else a


def sigmoid_transfer(V, A, lt, up, Vth, scale, sigmoid, inverse):
    """SigmoidLayer's A on the device (see numpy_ref.sigmoid_transfer)."""
    _check_out("A", A)
    nb, ny, nx, nf = V.shape
    v = _Arg("sg.V", V, shape=(nb * ny, nx * nf))
    a = _Arg("sg.A", A, shape=(A.shape[0], A.shape[1], A.shape[2] * A.shape[3]))
    if nb * ny and nx * nf:
        grid, block = _grid2(nb * ny, nx * nf)
        _k_sigmoid[grid, block](v.dev, a.dev, ny, int(lt) * nf, int(up), _F32(Vth), _F32(scale), bool(sigmoid),
                                bool(inverse))
    a.done()


# --------------------------------------------------------------------- Retina

@_kernel
def _k_retina_rate(GS, A, ny, nx, lt, up, gain, base):
    nf = A.shape[3]
    for i in range(cuda.grid(1), GS.shape[1] * ny * nx * nf, cuda.gridsize(1)):
        b, y, x, f = _unravel(i, ny, nx, nf)
        A[b, up + y, lt + x, f] = gain * (GS[0, b, y, x, f] - GS[1, b, y, x, f]) + base


def retina_rate(GSyn, A, lt, up, gain, base):
    """The non-spiking Retina on the device (see numpy_ref.retina_rate)."""
    _check_out("A", A)
    g, a = _Arg("rr.G", GSyn), _Arg("rr.A", A)
    n = int(np.prod(GSyn.shape[1:]))
    if n:
        _k_retina_rate[_blocks(n, THREADS), THREADS](g.dev, a.dev, GSyn.shape[2], GSyn.shape[3], int(lt), int(up),
                                                     _F32(gain), _F32(base))
    a.done()


@_kernel
def _k_retina_spikes(G, A, T, R, lt, up, dt, base, stim, burst, absr, refr):
    nb, ny, nx, nf = T.shape
    for i in range(cuda.grid(1), nb * ny * nx * nf, cuda.gridsize(1)):
        b, y, x, f = _unravel(i, ny, nx, nf)
        t = T[b, y, x, f] + dt
        spike = False
        if t >= absr:
            rf = float32(1) - math.exp(-(t - absr) / refr)
            if rf < 0:
                rf = float32(0)
            p = base * rf + (stim * (G[0, b, y, x, f] - G[1, b, y, x, f])) * rf * burst
            spike = float32(_draw(R, b, y, x, f)) / float32(4294967296.0) < p
        A[b, up + y, lt + x, f] = float32(1) if spike else float32(0)
        T[b, y, x, f] = float32(0) if spike else t


def retina_spikes(GSyn, A, since, rng, lt, up, dt, prob_base, prob_stim, burst, abs_refractory, refractory):
    """The spiking Retina on the device (see numpy_ref.retina_spikes): one thread per neuron."""
    _check_out("A", A)
    _check_out("since", since)
    g, a, t, r = _Arg("rs.G", GSyn), _Arg("rs.A", A), _Arg("rs.T", since), _Arg("rs.R", rng)
    n = int(np.prod(since.shape))
    if n:
        _k_retina_spikes[_blocks(n, THREADS), THREADS](g.dev, a.dev, t.dev, r.dev, int(lt), int(up),
                                                       *(_F32(v) for v in (dt, prob_base, prob_stim, burst,
                                                                           abs_refractory, refractory)))
    a.done()
    t.done()
    r.done()


@_kernel
def _k_max_pool(A, G, xtab, ytab, overwrite, active_only, gate, with_gate, x0, y0, nx_ext):
    nb, ny, nx, nf = G.shape
    for i in range(cuda.grid(1), nb * ny * nx * nf, cuda.gridsize(1)):
        b, y, x, f = _unravel(i, ny, nx, nf)
        top = -math.inf if overwrite else G[b, y, x, f]
        won = float32(-1)
        for jy in range(ytab.shape[1]):
            ye = ytab[y, jy, 0]
            for jx in range(xtab.shape[1]):
                xe = xtab[x, jx, 0]
                a = A[b, ye, xe, f]
                if (a != 0 or not active_only) and top <= a:
                    top = a
                    won = float32(((y0 + ye) * nx_ext + x0 + xe) * nf + f)
        G[b, y, x, f] = top
        if with_gate:
            gate[b, y, x, f] = won


def deliver_max_pool(A, G, xtab, ytab, overwrite, active_only, gate=None, x0=0, y0=0, nx_ext=0):
    """PoolingConn's maxpooling and its winners on the device (see numpy_ref.deliver_max_pool)."""
    _check_out("G", G)
    a, g = _Arg("mp.A", A), _Arg("mp.G", G)
    w = _Arg("mp.gate", gate if gate is not None else np.zeros((1, 1, 1, 1), np.float32))
    xt, yt = _user_table(xtab, "xtab"), _user_table(ytab, "ytab")
    n = int(np.prod(G.shape))
    if n:
        _k_max_pool[_blocks(n, THREADS), THREADS](a.dev, g.dev, xt, yt, bool(overwrite), bool(active_only), w.dev,
                                                  gate is not None, int(x0), int(y0), int(nx_ext))
    g.done()
    if gate is not None:
        w.done()


@_kernel
def _k_unpool(A, G, gate, lt, up, g_lt, g_up, qx0, qy0, qnx, qny, x0, y0, nx_ext, mx, my):
    nb, ny, nx, nf = G.shape
    for b in range(cuda.grid(1), nb, cuda.gridsize(1)):  # one thread per batch element: OpenPV's order
        for ye in range(A.shape[1]):
            for xe in range(A.shape[2]):
                gy = ye - up + qy0
                gx = xe - lt + qx0
                if gy < 0 or gy >= qny or gx < 0 or gx >= qnx:
                    continue
                for f in range(A.shape[3]):
                    a = A[b, ye, xe, f]
                    k = int(gate[b, g_up + ye - up, g_lt + xe - lt, f])
                    if a == 0 or k < 0:
                        continue
                    px = (k // nf) % nx_ext - mx - x0
                    py = k // (nf * nx_ext) - my - y0
                    pf = k % nf
                    if 0 <= px < nx and 0 <= py < ny and abs(a) > abs(G[b, py, px, pf]):
                        G[b, py, px, pf] = a


def unpool_max(A, G, gate, lt, up, g_lt, g_up, q0, x0, y0, nx_ext, margin_x, margin_y):
    """TransposePoolingConn of max pooling on the device (see numpy_ref.unpool_max): one thread per batch
    element keeps OpenPV's order (the unpooling is a small part of a step)."""
    _check_out("G", G)
    a, g, w = _Arg("up.A", A), _Arg("up.G", G), _Arg("up.gate", gate)
    nb = G.shape[0]
    if nb:
        _k_unpool[_blocks(nb, THREADS), THREADS](a.dev, g.dev, w.dev, *_ints(lt, up, g_lt, g_up, *q0, x0, y0, nx_ext,
                                                                          margin_x, margin_y))
    g.done()


# --------------------------------------------------------------------- LIF, LIFGap

@cuda.jit(device=True, inline=True)
def _noise_draw(R, b, y, x, f, g, prob, amp):
    if float32(_draw(R, b, y, x, f)) / float32(4294967296.0) < prob:
        g = g + amp * (float32(_draw(R, b, y, x, f)) / float32(4294967296.0))
    return g


@_kernel
def _k_lif_arma(GS, A, V, TH, GE, GI, GIB, GAP, R, lt, up, c, with_gap):
    nb, ny, nx, nf = V.shape
    one = float32(1)
    for i in range(cuda.grid(1), nb * ny * nx * nf, cuda.gridsize(1)):
        b, y, x, f = _unravel(i, ny, nx, nf)
        ge = _noise_draw(R, b, y, x, f, GS[0, b, y, x, f], c[11], c[8])
        gi = _noise_draw(R, b, y, x, f, GS[1, b, y, x, f], c[12], c[9])
        gib = _noise_draw(R, b, y, x, f, GS[2, b, y, x, f], c[13], c[10])
        gei = GE[b, y, x, f] + ge
        gii = GI[b, y, x, f] + gi
        gibi = GIB[b, y, x, f] + gib
        ggap = GS[3, b, y, x, f] if with_gap else float32(0)
        den_i = one + gei + gii + gibi
        if with_gap:
            den_i = den_i + GAP[b, y, x, f]
        tau_i = c[0] / den_i
        top_i = c[1] + c[2] * gei + c[3] * gii + c[4] * gibi
        if with_gap:
            top_i = top_i + ggap
        v_i = top_i / den_i
        gei = min(gei, float32(10))
        gii = min(gii, float32(10))
        gibi = min(gibi, float32(10))
        gef = gei * c[14]
        gif = gii * c[15]
        gibf = gibi * c[16]
        den_f = one + gef + gif + gibf
        if with_gap:
            den_f = den_f + GAP[b, y, x, f]
            tau_f = c[0] / den_f
        else:
            tau_f = c[0] / (one + gef + gif + gibi)
        top_f = c[1] + c[2] * gef + c[3] * gif + c[4] * gibf
        if with_gap:
            top_f = top_f + ggap
        v_f = top_f / den_f
        dt = c[18]
        slope = (tau_f - tau_i) / dt
        if slope == 0:
            f1 = float32(math.exp(float64(-dt / tau_i)))
        else:
            f1 = float32(math.pow(float64(tau_f / tau_i), float64(-one / slope)))
        if slope == -1:
            f2 = tau_i / dt * float32(math.log(float64(tau_f / tau_i + one)))
        else:
            f2 = (one - tau_i / dt * (one - f1)) / (one + slope)
        f3 = one - f1 - f2
        v = f1 * V[b, y, x, f] + f2 * v_i + f3 * v_f
        th = c[5] + (TH[b, y, x, f] - c[5]) * c[17]
        fired = v > th
        A[b, up + y, lt + x, f] = one if fired else float32(0)
        V[b, y, x, f] = c[1] if fired else v
        TH[b, y, x, f] = th + c[6] if fired else th
        GE[b, y, x, f] = gef
        GI[b, y, x, f] = gif
        GIB[b, y, x, f] = gibf + c[7] if fired else gibf


def lif_arma(GSyn, A, V, Vth, G_E, G_I, G_IB, gap, rng, lt, up, consts, with_gap):
    """LIF's arma step on the device (see numpy_ref.lif_arma): one thread per neuron."""
    for name, arr in (("A", A), ("V", V), ("Vth", Vth), ("G_E", G_E), ("G_I", G_I), ("G_IB", G_IB)):
        _check_out(name, arr)
    args = [_Arg("lif." + n, a) for n, a in (("GSyn", GSyn), ("A", A), ("V", V), ("Vth", Vth), ("G_E", G_E),
                                               ("G_I", G_I), ("G_IB", G_IB), ("gap", gap), ("rng", rng))]
    c = _Arg("lif.c", np.ascontiguousarray(consts, dtype=np.float32), constant=True)
    n = int(np.prod(V.shape))
    if n:
        _k_lif_arma[_blocks(n, THREADS), THREADS](*(a.dev for a in args), int(lt), int(up), c.dev, bool(with_gap))
    for a in args[1:7] + args[8:]:
        a.done()


# --------------------------------------------------------------------- MaskLayer

@_kernel
def _k_mask(A, lt, up, M, m_lt, m_up, invert, per_feature, ny, nx):
    nf, mf = A.shape[3], M.shape[3]
    for i in range(cuda.grid(1), A.shape[0] * ny * nx * nf, cuda.gridsize(1)):
        b, y, x, f = _unravel(i, ny, nx, nf)
        if per_feature:
            v = M[0, 0, 0, f]
        else:
            v = M[b, m_up + y, m_lt + x, f if mf > 1 else 0]
        if (v != 0) == invert:
            A[b, up + y, lt + x, f] = float32(0)


def mask_activity(A, lt, up, M, m_lt, m_up, invert):
    """MaskLayer's mask on the device (see numpy_ref.mask_activity): one thread per neuron."""
    _check_out("A", A)
    nb, Y, X, nf = A.shape
    ny, nx = Y - 2 * int(up), X - 2 * int(lt)
    a, m = _Arg("mk.A", A), _Arg("mk.M", M)
    n = nb * ny * nx * nf
    if n:
        _k_mask[_blocks(n, THREADS), THREADS](a.dev, int(lt), int(up), m.dev, int(m_lt), int(m_up), bool(invert),
                                              tuple(M.shape[:3]) == (1, 1, 1), ny, nx)
    a.done()


# --------------------------------------------------------------------- BackgroundLayer

@_kernel
def _k_background(A, lt, up, S, s_lt, s_up, rep, ny, nx):
    nf = S.shape[3]
    for i in range(cuda.grid(1), A.shape[0] * ny * nx, cuda.gridsize(1)):  # one thread per position
        b, y, x, _ = _unravel(i, ny, nx, 1)
        quiet = float32(1)
        for f in range(nf):
            v = S[b, s_up + y, s_lt + x, f]
            if v != 0:
                quiet = float32(0)
            for k in range(rep):
                A[b, up + y, lt + x, (f + 1) * rep + k] = v
        for k in range(rep):
            A[b, up + y, lt + x, k] = quiet


def background(A, lt, up, src, s_lt, s_up, rep):
    """BackgroundLayer on the device (see numpy_ref.background)."""
    _check_out("A", A)
    nb, Y, X, _ = A.shape
    ny, nx = Y - 2 * int(up), X - 2 * int(lt)
    a, s = _Arg("bg.A", A), _Arg("bg.src", src)
    n = nb * ny * nx
    if n:
        _k_background[_blocks(n, THREADS), THREADS](a.dev, int(lt), int(up), s.dev, int(s_lt), int(s_up), int(rep),
                                                    ny, nx)
    a.done()


@_kernel
def _k_spikelet(A, lt, up, V, S, s_lt, s_up, amp):
    nb, ny, nx, nf = V.shape
    for i in range(cuda.grid(1), nb * ny * nx * nf, cuda.gridsize(1)):
        b, y, x, f = _unravel(i, ny, nx, nf)
        v = V[b, y, x, f]
        A[b, up + y, lt + x, f] = v + amp if S[b, s_up + y, s_lt + x, f] > 0 else v


def spikelet(A, lt, up, V, src, s_lt, s_up, amp):
    """GapLayer's activity on the device (see numpy_ref.spikelet)."""
    _check_out("A", A)
    a, v, s = _Arg("sp.A", A), _Arg("sp.V", V), _Arg("sp.src", src)
    n = int(np.prod(V.shape))
    if n:
        _k_spikelet[_blocks(n, THREADS), THREADS](a.dev, int(lt), int(up), v.dev, s.dev, int(s_lt), int(s_up),
                                                  _F32(amp))
    a.done()
