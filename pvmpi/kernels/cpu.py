"""Numba CPU kernels: same names, signatures and results (to float32 round-off) as numpy_ref.

Every parallel loop owns its output: delivery runs over post rows
``(b, y)`` (a gather even for the pre-perspective forms), learning over
kernels, so there are no write races and the summation order does not
depend on the thread count.  Innermost loops are 0-based runs over
contiguous memory — a patch row ``(px, f_post)`` is one run in W, G and dW —
so LLVM vectorises them; index arithmetic with divisions is hoisted out
(per axis, per active entry or per table row).  The public functions are thin wrappers that fix argument
types (int64 scalars, float32 arrays) so each jitted function compiles
once.
"""
import math

import numba
import numpy as np
from numba import njit, prange
from numba.cpython.unsafe.numbers import trailing_zeros

from pvmpi.kernels import blas
from pvmpi.kernels.blas import NO_TRANS, ROW_MAJOR
from pvmpi.kernels.contract import Capabilities
from pvmpi.kernels.host import (  # noqa: F401  (the engine's state in host memory: this backend's own)
    copy,
    fill_zero,
    gather_flat,
    host_buffer,
    to_device,
    to_host,
    upload,
    zeros,
)
from pvmpi.kernels.numpy_ref import (  # noqa: F401  (elementwise, as fast in numpy: the reference's)
    FLT_MIN,
    LOGREG,
    POINTMEANSTD,
    POINTRESPONSENORMALIZATION,
    SOFTMAX,
    ZEROTONEGATIVE,
    apply_vertex_transfer,
    combine_channels,
    deliver_feature_max,
    firm_threshold_transfer,
    momentum_weights,
    rescale_batch,
    retina_rate,
    sigmoid_transfer,
    spikelet,
)
from pvmpi.kernels.numpy_ref import scale_into as _scale_into_ref
from pvmpi.kernels.simd import LANES, add_patch_sum, move8, nonzero_mask64
from pvmpi.kernels.transfer import transfer1, transfer_args

_F32 = np.float32
CAPABILITIES = Capabilities(device_resident=False, gemm_delivery=True)  # deliver_im2col: BLAS
_JIT = dict(parallel=True, cache=True, fastmath=False)


def _ints(*values):
    return tuple(map(int, values))


def _check_out(name, arr):
    if arr.dtype != np.float32 or not arr.flags.c_contiguous or not arr.flags.writeable:
        raise ValueError(f"{name} must be a writeable C-contiguous float32 array")


# --------------------------------------------------------------------- delivery

@njit(cache=True, fastmath=False)
def _axis_starts(n_ext, margin, mul, off, div, nk):
    """Post start and kernel index along one axis for every extended pre index (divisions once)."""
    start = np.empty(n_ext, dtype=np.int64)
    kern = np.empty(n_ext, dtype=np.int64)
    for ie in range(n_ext):
        i = ie - margin
        start[ie] = (mul * i + off) // div
        kern[ie] = i % nk
    return start, kern


@njit(inline="always")
def _axpy(y, a, x):
    """y += a*x over a contiguous run; a 0-based loop lets LLVM vectorise it."""
    for q in range(y.shape[0]):
        y[q] += a * x[q]


@njit(inline="always")
def _copy(dst, src):
    """dst[:] = src for a contiguous run."""
    for q in range(dst.shape[0]):
        dst[q] = src[q]


@njit(**_JIT)
def _deliver_pre(A, W, G, xmul, xoff, xdiv, nkx, ymul, yoff, ydiv, nky, lt, up):
    nb, nye, nxe, nf = A.shape
    nk, nyp, nxp, nfp = W.shape
    ny, nx = G.shape[1], G.shape[2]
    # A patch row (px, o) is contiguous in W and in G: one flat inner loop.
    W3 = W.reshape(nk, nyp, nxp * nfp)
    G3 = G.reshape(nb, ny, nx * nfp)
    ys, yk = _axis_starts(nye, up, ymul, yoff, ydiv, nky)
    xs, xk = _axis_starts(nxe, lt, xmul, xoff, xdiv, nkx)
    for r in prange(nb * ny):
        b = r // ny
        y = r - b * ny
        Gr = G3[b, y]
        for ye in range(nye):
            py = y - ys[ye]
            if py < 0 or py >= nyp:
                continue
            for xe in range(nxe):
                x0 = xs[xe]
                lo = max(0, -x0) * nfp
                hi = min(nxp, nx - x0) * nfp
                if lo >= hi:  # outside the tile (and slices with negative ends would wrap)
                    continue
                kb = nf * (xk[xe] + nkx * yk[ye])
                for f in range(nf):
                    a = A[b, ye, xe, f]
                    if a == 0:
                        continue
                    _axpy(Gr[x0 * nfp + lo:x0 * nfp + hi], a, W3[kb + f, py, lo:hi])


def deliver_pre(A, W, G, xmul, xoff, xdiv, nkx, ymul, yoff, ydiv, nky, lt, up, overwrite=False):
    """Pre-perspective convolve (see numpy_ref.deliver_pre); parallel over post rows."""
    _check_out("G", G)
    if overwrite:
        G.fill(0)
    _deliver_pre(A, W, G, *_ints(xmul, xoff, xdiv, nkx, ymul, yoff, ydiv, nky, lt, up))


@njit(inline="always")
def _nonzero_bits(run):
    """Bit q set where run[q] != 0 (len(run) <= 64): one vectorisable pass instead of a branch per value."""
    m = np.uint64(0)
    for q in range(run.shape[0]):
        m |= np.uint64(run[q] != 0) << np.uint64(q)
    return m


@njit(inline="always")
def _list_run(row, k0, k1, base, idx, val, n, stats):
    """List row[k0:k1]'s nonzeros as (base + j, value) into idx/val from n on.

    Each run of 64 values becomes a bit mask of its nonzeros, then only the set
    bits are visited (a branch per value cost a misprediction per active
    neuron). Returns the next n and, when ``stats``, the listed values'
    [Σa, Σ|a|, Σa², #|a|>0, min, max] (accumulated in registers: through
    memory they cost more than the listing).
    """
    one = np.uint64(1)
    s = 0.0
    s1 = 0.0
    s2 = 0.0
    cnt = 0
    lo = np.inf
    hi = -np.inf
    for c0 in range(k0, k1, 64):
        m = nonzero_mask64(row, c0) if c0 + 64 <= k1 else _nonzero_bits(row[c0:k1])
        while m:
            j = c0 + trailing_zeros(m)
            v = row[j]
            idx[n] = base + j
            val[n] = v
            n += 1
            if stats:
                d = np.float64(v)
                s += d
                s1 += abs(d)
                s2 += d * d
                cnt += abs(d) > 0.0
                lo = min(lo, d)
                hi = max(hi, d)
            m &= m - one
    return n, s, s1, s2, cnt, lo, hi


@njit(inline="always")
def _put_stats(out, s, s1, s2, cnt, lo, hi):
    """out[:6] = [Σa, Σ|a|, Σa², count, min, max] (the layout of layer_stats)."""
    out[0] = s
    out[1] = s1
    out[2] = s2
    out[3] = cnt
    out[4] = lo
    out[5] = hi


@njit(inline="always")
def _list_stats_run(row, k0, k1, base, idx, val, n, out):
    """_list_run, the stats of row[k0:k1] (its zeros counted in min and max) into out[:6]; returns n."""
    m, s, s1, s2, cnt, lo, hi = _list_run(row, k0, k1, base, idx, val, n, True)
    if m - n < k1 - k0:
        lo = min(lo, 0.0)
        hi = max(hi, 0.0)
    _put_stats(out, s, s1, s2, cnt, lo, hi)
    return m


@njit(inline="always")
def _fill_row(A2, r, nye, up, ny, c0, c1, idx, val, n, part):
    """List row r's nonzeros into idx/val from n on (returns the next n); with ``part``, also the
    stats of its restricted part [c0, c1)."""
    row = A2[r]
    rowlen = A2.shape[1]
    base = (r % nye) * rowlen
    if part.shape[0] > 0 and up <= r % nye < up + ny:
        n = _list_run(row, 0, c0, base, idx, val, n, False)[0]
        n = _list_stats_run(row, c0, c1, base, idx, val, n, part[r])
        return _list_run(row, c1, rowlen, base, idx, val, n, False)[0]
    return _list_run(row, 0, rowlen, base, idx, val, n, False)[0]


@njit(**_JIT)
def _fill_chunks(A2, rowptr, nye, up, ny, c0, c1, idx, val, part):
    """List the rows in one run of rows per thread, in parallel, each run from its own first row's
    place in buffers of A's size (r * rowlen: no count pass first); then slide each run down behind
    the one before (only the entries move). rowptr[r] = where row r's entries start."""
    rows, rowlen = A2.shape
    nchunks = max(1, min(numba.get_num_threads(), rows))
    for k in prange(nchunks):
        r0, r1 = rows * k // nchunks, rows * (k + 1) // nchunks
        n = r0 * rowlen
        for r in range(r0, r1):
            m = _fill_row(A2, r, nye, up, ny, c0, c1, idx, val, n, part)
            rowptr[r + 1] = m - n
            n = m
    rowptr[0] = 0
    for r in range(rows):
        rowptr[r + 1] += rowptr[r]
    for k in range(1, nchunks):  # runs in order: each lands at or below where it was listed
        r0, r1 = rows * k // nchunks, rows * (k + 1) // nchunks
        src, dst = r0 * rowlen, rowptr[r0]
        for q in range(rowptr[r1] - dst):
            idx[dst + q] = idx[src + q]
            val[dst + q] = val[src + q]


@njit(cache=True)
def _restricted_stats(part, nye, up, ny, out):
    """Per batch element, the restricted rows' stats added in row order."""
    for b in range(out.shape[0]):
        out[b, :4] = 0.0
        out[b, 4] = np.inf
        out[b, 5] = -np.inf
        for y in range(ny):
            p = part[b * nye + up + y]
            for c in range(4):
                out[b, c] += p[c]
            out[b, 4] = min(out[b, 4], p[4])
            out[b, 5] = max(out[b, 5], p[5])


def _room(reuse, size):
    """idx and val buffers of ``size`` entries: those under the views of ``reuse`` (an earlier list
    from :func:`active_list`, no longer read) when they are that large, else new ones."""
    if reuse is not None:
        idx, val = (getattr(a, "base", None) for a in reuse[1:])
        if idx is not None and val is not None and idx.shape == val.shape == (size,) \
                and idx.dtype == np.int32 and val.dtype == np.float32:
            return idx, val
    return np.empty(size, np.int32), np.empty(size, np.float32)


def active_list(A, lt, up, stats=None, reuse=None):
    """Nonzero entries of each batch element's extended A (see numpy_ref.active_list).

    With ``stats`` ([nb, 6] float64) the restricted A's ``layer_stats`` at
    threshold 0 come from the same pass, summed over the nonzeros only.
    A is read once: the entries are listed into buffers of A's size
    (``reuse``'s, when given) and returned as views (see ``_fill_chunks``).
    """
    nb, nye, nxe, nf = A.shape
    A2 = A.reshape(nb * nye, -1)
    ny, nx = nye - 2 * up, nxe - 2 * lt
    rowptr = np.empty(nb * nye + 1, dtype=np.int64)
    part = np.empty((nb * nye, 6) if stats is not None else (0, 6), np.float64)
    idx, val = _room(reuse, A.size)
    _fill_chunks(A2, rowptr, *_ints(nye, up, ny, lt * nf, (lt + nx) * nf), idx, val, part)
    n = int(rowptr[-1])
    idx, val = idx[:n], val[:n]
    if stats is not None:
        _restricted_stats(part, nye, int(up), ny, stats)
    return np.ascontiguousarray(rowptr[::nye]), idx, val


@njit(inline="always")
def _add_strip(G2, y0, py0, py1, nyp, nfp, S, s_lo, s_hi, T):
    """G2[y0 + py, x, o] += S[x, py, o] for py in [py0, py1), x in [s_lo, s_hi).

    A transpose: with one post feature each G row reads S at a stride of nyp,
    which LLVM leaves scalar. So 8 strip columns at a time go through T as
    [py, x] (loops of constant length, vectorised), and each G row gets one
    run of 8. With more features the runs are contiguous already.
    """
    xb = s_lo
    if nfp == 1:
        while xb + 8 <= s_hi:
            block = S[xb * nyp:(xb + 8) * nyp]
            for py in range(nyp):
                for xi in range(8):
                    T[py * 8 + xi] = block[xi * nyp + py]
            for py in range(py0, py1):
                Gr = G2[y0 + py, xb:xb + 8]
                t = T[py * 8:py * 8 + 8]
                for xi in range(8):
                    Gr[xi] += t[xi]
            xb += 8
    for py in range(py0, py1):
        Gr = G2[y0 + py]
        for x in range(xb, s_hi):
            for o in range(nfp):
                Gr[x * nfp + o] += S[(x * nyp + py) * nfp + o]


@njit(**_JIT)
def _deliver_sparse(offsets, idx, val, nf, nxe, Wt, G, xmul, xoff, xdiv, nkx,
                    ymul, yoff, ydiv, nky, lt, up):
    nk, nxp, nyp, nfp = Wt.shape
    col = nyp * nfp  # one patch column (py, o): contiguous in Wt and in the strip
    W1 = Wt.reshape(-1)
    nb = offsets.shape[0] - 1
    ny, nx = G.shape[1], G.shape[2]
    G3 = G.reshape(nb, ny, nx * nfp)
    rowlen = nf * nxe
    if nb == 0 or ny == 0:
        return
    xstart, xkern = _axis_starts(nxe, lt, xmul, xoff, xdiv, nkx)
    # several tasks per thread balance the threads; one thread takes whole batch elements (a band
    # boundary costs the pre rows whose patches cross it twice)
    threads = numba.get_num_threads()
    tasks_wanted = 4 * threads if threads > 1 else 1
    nband = min(ny, max(1, -(-tasks_wanted // max(nb, 1))))
    band = -(-ny // nband)
    nband = (ny + band - 1) // band
    for task in prange(nb * nband):
        b = task // nband
        y_lo = (task - b * nband) * band
        y_hi = min(ny, y_lo + band)
        lo_b = offsets[b]
        hi_b = offsets[b + 1]
        if lo_b == hi_b:
            continue
        S = np.zeros(nx * col, np.float32)  # the post rows one pre row reaches, as [x, py, o]
        T = np.empty(8 * nyp, np.float32)  # a block of 8 strip columns, transposed
        acc = np.empty(nxp * col, np.float32)  # one position's patch sum, where not in registers
        entries = idx[lo_b:hi_b]
        first = lo_b
        for ye in range(idx[lo_b] // rowlen, idx[hi_b - 1] // rowlen + 1):
            last = lo_b + np.searchsorted(entries, (ye + 1) * rowlen)
            i = ye - up
            y0 = (ymul * i + yoff) // ydiv
            py0 = max(0, y_lo - y0)
            py1 = min(nyp, y_hi - y0)
            if py0 >= py1 or first == last:
                first = last
                continue
            kyo = nf * nkx * (i % nky)
            s_lo = nx
            s_hi = 0
            n = first
            xe = 0
            end_e = ye * rowlen + nf  # where the entries of position xe end
            while n < last:
                # one pre position (ye, xe): its active features are consecutive entries; positions
                # only increase along the row, so xe advances without an integer division
                while idx[n] >= end_e:
                    xe += 1
                    end_e += nf
                m = n + 1
                while m < last and idx[m] < end_e:
                    m += 1
                x0 = xstart[xe]
                lo = max(0, -x0)
                hi = min(nxp, nx - x0)
                if lo < hi:  # (slices with negative ends would wrap around)
                    k0 = nf * xkern[xe] + kyo - (end_e - nf)  # kernel = k0 + idx
                    # the clipped patch is one contiguous block of S and of each kernel's row of W1
                    add_patch_sum(S, (x0 + lo) * col, W1, idx, val, n, m, k0, nxp * col, lo * col,
                                  (hi - lo) * col, acc)
                    s_lo = min(s_lo, x0 + lo)
                    s_hi = max(s_hi, x0 + hi)
                n = m
            _add_strip(G3[b], y0, py0, py1, nyp, nfp, S, s_lo, s_hi, T)
            if s_lo < s_hi:
                S[s_lo * col:s_hi * col] = 0  # cleared for the next pre row
            first = last


def deliver_sparse(offsets, idx, val, nf_pre, nx_ext, W, G,
                   xmul, xoff, xdiv, nkx, ymul, yoff, ydiv, nky, lt, up, overwrite=False):
    """Convolve from an active list by scattering patches.

    The patches of one pre row's active neurons are summed in a strip laid
    out [x, py, o], where each (clipped) patch is one contiguous block once
    the weights are transposed to [px, py, o]: one long vector run per
    active neuron instead of a short run per patch row. The strip is then
    added to the post rows it covers. Tasks are (batch element, band of post
    rows) and write only their own rows, so threads never share an output,
    and every post neuron gets the same sums whatever the banding: results
    do not depend on the thread count. ``overwrite``: G is cleared first.
    """
    _check_out("G", G)
    if overwrite:
        G.fill(0)
    Wt = np.ascontiguousarray(W.transpose(0, 2, 1, 3))  # [kernel, px, py, o]
    _deliver_sparse(offsets, idx, val, *_ints(nf_pre, nx_ext), Wt, G,
                    *_ints(xmul, xoff, xdiv, nkx, ymul, yoff, ydiv, nky, lt, up))


@njit(**_JIT)
def _deliver_post(A, W, G, xtab, ytab, nkx):
    nb, nf = A.shape[0], A.shape[3]
    nk, nyp, nxp, nfp = W.shape
    ny, nx = G.shape[1], G.shape[2]
    sy, sx = ytab.shape[1], xtab.shape[1]
    W2 = W.reshape(nk * nyp * nxp, nfp)
    fstride = nyp * nxp
    # Hoisted tables: W2 row of (f, slot) = ypart + xpart + f*fstride.
    xie = np.empty((nx, sx), dtype=np.int64)
    xpart = np.empty((nx, sx), dtype=np.int64)
    for x in range(nx):
        for jx in range(sx):
            xie[x, jx] = xtab[x, jx, 0]
            xpart[x, jx] = nf * xtab[x, jx, 2] * fstride + xtab[x, jx, 1]
    for r in prange(nb * ny):
        b = r // ny
        y = r - b * ny
        yie = np.empty(sy, dtype=np.int64)
        ypart = np.empty(sy, dtype=np.int64)
        for jy in range(sy):
            yie[jy] = ytab[y, jy, 0]
            ypart[jy] = nf * nkx * ytab[y, jy, 2] * fstride + ytab[y, jy, 1] * nxp
        acc = np.empty(nfp, dtype=np.float32)
        one = np.float32(1)
        Gr = G[b, y]
        for x in range(nx):
            acc[:] = 0
            for jy in range(sy):
                Ar = A[b, yie[jy]]
                for jx in range(sx):
                    Ap = Ar[xie[x, jx]]
                    base = ypart[jy] + xpart[x, jx]
                    for f in range(nf):
                        a = Ap[f]
                        if a != 0:
                            _axpy(acc, a, W2[base + f * fstride])
            _axpy(Gr[x], one, acc)


def deliver_post(A, W, G, xtab, ytab, nkx, overwrite=False):
    """Post-perspective convolve through geometry.post_table rows; parallel over post rows."""
    _check_out("G", G)
    if overwrite:
        G.fill(0)
    _deliver_post(A, W, G, np.ascontiguousarray(xtab, dtype=np.int32),
                  np.ascontiguousarray(ytab, dtype=np.int32), int(nkx))


@njit(cache=True, nogil=True)
def _im2col(A2, cols, b, ylo, x0, y0, sy, run, nf):
    """Rows of post positions (y, x) of one batch element: their sy runs of sx*nf pre values.

    Serial and without the GIL: the threads of :func:`deliver_im2col` run it
    on their own blocks side by side.
    """
    nx = x0.shape[0]
    K = cols.shape[1]
    width = A2.shape[2]
    src = A2[b].reshape(-1)
    dst = cols.reshape(-1)
    vectors = run // LANES
    for yy in range(cols.shape[0] // nx):
        ye0 = y0[ylo + yy]
        for x in range(nx):
            d0 = (yy * nx + x) * K
            s0 = x0[x] * nf
            for jy in range(sy):
                d = d0 + jy * run
                s = (ye0 + jy) * width + s0
                if run == LANES:  # an 8-wide patch row of one feature: the common case
                    move8(dst, d, src, s)
                    continue
                for v in range(vectors):
                    move8(dst, d + v * LANES, src, s + v * LANES)
                for q in range(vectors * LANES, run):
                    dst[d + q] = src[s + q]


_SCRATCH = {}


def _scratch(role, shape):
    """A float32 work array kept between calls (no allocation per step)."""
    n = math.prod(shape)
    buf = _SCRATCH.get(role)
    if buf is None or buf.size < n:
        buf = _SCRATCH[role] = np.empty(n, np.float32)
    return buf[:n].reshape(shape)


_GEMM_ROWS = 2048  # post positions per im2col block: cols + product stay in L2
_POOL = None  # threads of deliver_im2col, made at the first use with more than one thread
_BLAS_LIMITED = False


def _blas_single_threaded():
    """BLAS runs one thread per call: its spinning workers would take the cores Numba's threads
    need (1 rank x 2 threads ran 15x slower); deliver_im2col threads over blocks instead."""
    global _BLAS_LIMITED
    if not _BLAS_LIMITED:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1, user_api="blas")
        _BLAS_LIMITED = True


def _pool(threads):
    global _POOL
    if _POOL is None or _POOL._max_workers != threads:
        from concurrent.futures import ThreadPoolExecutor

        if _POOL is not None:
            _POOL.shutdown()
        _POOL = ThreadPoolExecutor(threads, thread_name_prefix="pvmpi-gemm")
    return _POOL


@njit(**_JIT)
def _im2col_gemm(sgemm, A2, M, G2, cols, x0, y0, sy, run, nf, ny, rows_per_block, beta):
    """deliver_im2col's blocks on Numba's threads: im2col into the thread's scratch, then BLAS."""
    nb = G2.shape[0]
    nx = x0.shape[0]
    K, N = M.shape
    nyb = (ny + rows_per_block - 1) // rows_per_block
    for blk in prange(nb * nyb):
        b = blk // nyb
        ylo = (blk - b * nyb) * rows_per_block
        n = (min(ny, ylo + rows_per_block) - ylo) * nx
        c = cols[numba.get_thread_id(), :n]
        _im2col(A2, c, b, ylo, x0, y0, sy, run, nf)
        sgemm(ROW_MAJOR, NO_TRANS, NO_TRANS, n, N, K, np.float32(1), c.ctypes.data, K, M.ctypes.data, N,
              beta, G2[b, ylo * nx:].ctypes.data, N)


def deliver_im2col(A, M, G, x0, y0, sy, sx, overwrite):
    """Dense delivery as GEMM: ``G[b, y, x, :] (+)= cols[b, y, x, :] @ M`` (see numpy_ref).

    im2col copies, block by block, the sy runs of sx*nf consecutive pre
    values each post position reads; BLAS (one thread per call) multiplies
    the block by M. The blocks run on Numba's threads, calling the cblas_sgemm
    of NumPy's own BLAS (pvmpi.kernels.blas); where that is not found, on a pool of Python threads
    calling NumPy's matmul. ``overwrite`` writes G instead of adding to it
    (the first delivery into a channel this step).
    """
    _check_out("G", G)
    nb, ny, nx, nfp = G.shape
    nf = A.shape[3]
    K = sy * sx * nf
    A2 = A.reshape(A.shape[0], A.shape[1], -1)
    G2 = G.reshape(nb, ny * nx, nfp)
    x0 = np.ascontiguousarray(x0, dtype=np.int64)
    y0 = np.ascontiguousarray(y0, dtype=np.int64)
    rows_per_block = max(1, _GEMM_ROWS // nx)
    _blas_single_threaded()
    sgemm = blas.sgemm()
    if sgemm is not None:
        cols = _scratch("im2col", (numba.config.NUMBA_NUM_THREADS, rows_per_block * nx, K))
        _im2col_gemm(sgemm, A2, np.ascontiguousarray(M, dtype=np.float32), G2, cols, x0, y0,
                     *_ints(sy, sx * nf, nf, ny, rows_per_block), _F32(0 if overwrite else 1))
        return
    blocks = [(b, ylo, min(ny, ylo + rows_per_block)) for b in range(nb) for ylo in range(0, ny, rows_per_block)]
    threads = min(numba.get_num_threads(), len(blocks))

    def work(worker):
        for b, ylo, yhi in blocks[worker::threads]:
            n = (yhi - ylo) * nx
            cols = _scratch(("im2col", worker), (n, K))
            _im2col(A2, cols, b, ylo, x0, y0, sy, sx * nf, nf)
            out = G2[b, ylo * nx:yhi * nx]
            if overwrite:
                np.matmul(cols, M, out=out)
            else:
                prod = _scratch(("product", worker), (n, nfp))
                np.matmul(cols, M, out=prod)
                out += prod

    if threads == 1:
        work(0)
    else:
        list(_pool(threads).map(work, range(threads)))


@njit(**_JIT)
def _accumulate_input(GSyn2, c, G1):
    nch = GSyn2.shape[0]
    for n in prange(G1.shape[0]):
        s = c[0] * GSyn2[0, n]
        for ch in range(1, nch):
            s += c[ch] * GSyn2[ch, n]
        G1[n] = s


def accumulate_input(GSyn, coefficients, G):
    """``G = Σ_ch c_ch * GSyn[ch]`` in float32, channel order."""
    _check_out("G", G)
    c = np.ascontiguousarray(coefficients, dtype=np.float32).reshape(-1)
    _accumulate_input(GSyn.reshape(GSyn.shape[0], -1), c, G.reshape(-1))


# ------------------------------------------------------------------- layer update

_transfer1 = njit(inline="always")(transfer1)  # one definition: pvmpi/kernels/transfer.py
_transfer_args = transfer_args


@njit(**_JIT)
def _apply_transfer(V, A, lt, up, on, VThresh, AMin, clip, AMax, AShift, VWidth, part):
    nb, ny, nx, nf = V.shape
    V3 = V.reshape(nb, ny, nx * nf)
    A3 = A.reshape(nb, A.shape[1], A.shape[2] * nf)
    for r in prange(nb * ny):
        b = r // ny
        y = r - b * ny
        Vr = V3[b, y]
        Ar = A3[b, y + up, lt * nf:(lt + nx) * nf]
        for q in range(Vr.shape[0]):
            Ar[q] = _transfer1(Vr[q], on, VThresh, AMin, clip, AMax, AShift, VWidth)
        if part.shape[0]:  # the row's sum while it is in cache (the guard's check of A)
            part[b, y] = _sum_of_run(Ar)


def apply_transfer(V, A, lt, up, VThresh, AMin, AMax, AShift, VWidth, sums=None):
    """Write the ANN transfer of V into A's restricted region (facts 3.6); with ``sums``
    ([nb] float64) that region's sum per batch element from the same pass."""
    _check_out("A", A)
    part = np.empty((V.shape[0], V.shape[1]) if sums is not None else (0, 0), np.float64)
    _apply_transfer(np.ascontiguousarray(V), A, int(lt), int(up),
                    *_transfer_args(VThresh, AMin, AMax, AShift, VWidth), part)
    if sums is not None:
        _sum_in_order(part, sums)


@njit(**_JIT)
def _update_ann(GS, c, V, A, lt, up, on, VThresh, AMin, clip, AMax, AShift, VWidth, part, sums):
    nch = GS.shape[0]
    nb, ny, nx, nf = V.shape
    V3 = V.reshape(nb, ny, nx * nf)
    A3 = A.reshape(nb, A.shape[1], A.shape[2] * nf)
    G4 = GS.reshape(nch, nb, ny, nx * nf)
    for r in prange(nb * ny):
        b = r // ny
        y = r - b * ny
        Vr = V3[b, y]
        Ar = A3[b, y + up, lt * nf:(lt + nx) * nf]
        c0 = c[0]
        G0 = G4[0, b, y]
        for q in range(Vr.shape[0]):  # accumulate_input's order: c0 G0, then + c_ch G_ch
            Vr[q] = c0 * G0[q]
        for ch in range(1, nch):
            cc = c[ch]
            Gc = G4[ch, b, y]
            for q in range(Vr.shape[0]):
                Vr[q] += cc * Gc[q]
        for q in range(Vr.shape[0]):
            Ar[q] = _transfer1(Vr[q], on, VThresh, AMin, clip, AMax, AShift, VWidth)
        if part.shape[0]:
            part[b, y] = _sum_of_run(Ar)
    if part.shape[0]:  # in the same call: each call costs microseconds of dispatch
        _sum_in_order(part, sums)


def update_ann(GSyn, coefficients, V, A, lt, up, VThresh, AMin, AMax, AShift, VWidth, sums=None):
    """accumulate_input into V, then apply_transfer into A, row by row: each row of V is written
    and read again while in cache (one pass over the layer instead of two)."""
    _check_out("V", V)
    _check_out("A", A)
    nb, ny = V.shape[0], V.shape[1]
    if GSyn.shape[1:] != V.shape:
        raise ValueError(f"update_ann: GSyn {GSyn.shape} for V {V.shape}")
    c = np.ascontiguousarray(coefficients, dtype=np.float32).reshape(-1)
    part = np.empty((nb, ny) if sums is not None else (0, 0), np.float64)
    _update_ann(np.ascontiguousarray(GSyn, np.float32), c, V, A, int(lt), int(up),
                *_transfer_args(VThresh, AMin, AMax, AShift, VWidth), part, _NO_SUMS if sums is None else sums)


@njit(**_JIT)
def _scale_rows(D3, S3, ny, dlt, dup, slt, sup, n, scale, add, part, sums):
    """Rows r = (b, y) of the windows: D[b, dup+y, dlt+j] (+)= scale * S[b, sup+y, slt+j]; the row's
    sum into part[b, y] while it is in cache."""
    for r in prange(D3.shape[0] * ny):
        b = r // ny
        y = r - b * ny
        d = D3[b, dup + y, dlt:dlt + n]
        s = S3[b, sup + y, slt:slt + n]
        if add:
            for j in range(n):
                d[j] += scale * s[j]
        else:
            for j in range(n):
                d[j] = scale * s[j]
        part[b, y] = _sum_of_run(d)
    _sum_in_order(part, sums)


def scale_into(dst, src, scale, add, dst_lt=0, dst_up=0, src_lt=0, src_up=0, sums=None):
    """``dst (+)= scale * src`` on restricted windows (see numpy_ref.scale_into); with ``sums``
    ([nb] float64) dst's window's sum per batch element from the same pass, row by row."""
    if sums is None:
        return _scale_into_ref(dst, src, scale, add, dst_lt, dst_up, src_lt, src_up)
    _check_out("dst", dst)
    nb, Y, X, nf = dst.shape
    ny, nx = Y - 2 * int(dst_up), X - 2 * int(dst_lt)
    src = np.ascontiguousarray(src, np.float32)
    window = (nb, src.shape[1] - 2 * int(src_up), src.shape[2] - 2 * int(src_lt), src.shape[3])
    if window != (nb, ny, nx, nf):  # the kernel indexes without bounds checks
        raise ValueError(f"scale_into: src window {window} differs from dst's {(nb, ny, nx, nf)}")
    part = np.empty((nb, ny), np.float64)
    _scale_rows(dst.reshape(nb, Y, X * nf), src.reshape(src.shape[0], src.shape[1], src.shape[2] * nf),
                *_ints(ny, dst_lt * nf, dst_up, src_lt * nf, src_up, nx * nf), _F32(scale), bool(add), part, sums)


@njit(inline="always")
def _lca_run(Vr, Gr, Ar, eb, ome, s, on, VThresh, AMin, clip, AMax, AShift, VWidth):
    """One run of LCA neurons, in place: Ar holds the previous activity and receives the new one."""
    for q in range(Vr.shape[0]):
        v = eb * Vr[q] + ome * (Gr[q] + s * Ar[q])
        Vr[q] = v
        Ar[q] = _transfer1(v, on, VThresh, AMin, clip, AMax, AShift, VWidth)


@njit(**_JIT)
def _update_lca(V, A, Ap, G, e, s, lt, up, on, VThresh, AMin, clip, AMax, AShift, VWidth, part, in_place, sums):
    nb, ny, nx, nf = V.shape
    one = np.float32(1)
    V3 = V.reshape(nb, ny, nx * nf)
    G3 = G.reshape(nb, ny, nx * nf)
    A3 = A.reshape(nb, A.shape[1], A.shape[2] * nf)
    P3 = Ap.reshape(nb, A.shape[1], A.shape[2] * nf)
    c0, c1 = lt * nf, (lt + nx) * nf
    for r in prange(nb * ny):
        b = r // ny
        y = r - b * ny
        Ar = A3[b, y + up, c0:c1]
        if not in_place:  # the previous activity into A's row first (in cache for the update)
            _copy(Ar, P3[b, y + up, c0:c1])
        eb = e[b]
        _lca_run(V3[b, y], G3[b, y], Ar, eb, one - eb, s, on, VThresh, AMin, clip, AMax, AShift, VWidth)
        if part.shape[0]:  # the row's ΣV while it is still in cache
            part[b, y] = _sum_of_run(V3[b, y])
    if part.shape[0]:
        _sum_in_order(part, sums)


def update_lca(V, A, G, exp_tau, self_interact, lt, up, VThresh, AMin, AMax, AShift, VWidth, v_sums=None,
               A_prev=None):
    """HyPerLCALayer step (facts 3.7), float32 in the order of numpy_ref.update_lca.

    With ``v_sums`` ([nb] float64) ΣV per batch element comes out of the same
    pass, row by row while each row is in cache (the guard's check of V).
    ``A_prev``: the previous activity when it is not in A (default, or ``A``
    itself: A is updated in place, each value read just before it is
    overwritten — one buffer streamed instead of two).
    """
    _check_out("V", V)
    _check_out("A", A)
    e = np.ascontiguousarray(exp_tau, dtype=np.float32).reshape(-1)
    nb, ny = V.shape[0], V.shape[1]
    part = np.empty((nb, ny) if v_sums is not None else (0, 0), np.float64)
    in_place = A_prev is None or A_prev is A
    _update_lca(V, A, A if in_place else A_prev, G, e, _F32(self_interact), int(lt), int(up),
                *_transfer_args(VThresh, AMin, AMax, AShift, VWidth), part, in_place,
                _NO_SUMS if v_sums is None else v_sums)


@njit(**_JIT)
def _update_momentum_lca(V, G, Ap, D, e, s, rate, lt, up):
    nb, ny, nx, nf = V.shape
    one = np.float32(1)
    V3 = V.reshape(nb, ny, nx * nf)
    G3 = G.reshape(nb, ny, nx * nf)
    D3 = D.reshape(nb, ny, nx * nf)
    P3 = Ap.reshape(nb, Ap.shape[1], Ap.shape[2] * nf)
    for r in prange(nb * ny):
        b = r // ny
        y = r - b * ny
        eb = e[b]
        ome = one - eb
        Vr, Gr, Dr = V3[b, y], G3[b, y], D3[b, y]
        Ar = P3[b, y + up, lt * nf:(lt + nx) * nf]
        for q in range(Vr.shape[0]):  # numpy_ref's expression, term by term
            drive = ome * (Gr[q] + s * Ar[q])
            Vr[q] = eb * Vr[q] + drive + rate * Dr[q]
            Dr[q] = drive


def update_momentum_lca(V, G, A_prev, prev_drive, exp_tau, self_interact, rate, lt, up):
    """MomentumLCALayer's V and drive (see numpy_ref.update_momentum_lca) in one pass, row by row
    (numpy's form makes five temporaries of the layer's size: 4.4 against about 1 ms for V1)."""
    _check_out("V", V)
    _check_out("prev_drive", prev_drive)
    e = np.ascontiguousarray(exp_tau, dtype=np.float32).reshape(-1)
    _update_momentum_lca(V, np.ascontiguousarray(G, np.float32), np.ascontiguousarray(A_prev, np.float32),
                         prev_drive, e, _F32(self_interact), _F32(rate), int(lt), int(up))


_NO_SUMS = np.empty(0, np.float64)  # the kernels' ``sums`` when the caller wants none


@njit(cache=True)
def _sum_in_order(part, out):
    """out[b] = Σ_y part[b, y], in row order (the same bits for any thread count)."""
    for b in range(part.shape[0]):
        out[b] = 0.0
        for y in range(part.shape[1]):
            out[b] += part[b, y]


# ------------------------------------------------------------------- learning

@njit(inline="always")
def _hebb_patch(dWk, cntk, P, da, y0, x0, nyp, nxp, nfp, ny, nx, lt_post, up_post, one):
    """Add one pre neuron's clipped patch of post activity to its kernel's dW and counts.

    Returns True, counting nothing, when the patch lies wholly inside the post
    tile: the caller adds such patches' count to every weight at once (counts
    are whole numbers, exact in any order), which halves the work per entry.
    """
    lo = max(0, -x0) * nfp
    hi = min(nxp, nx - x0) * nfp
    if lo >= hi:  # patch outside the post tile (and slices with negative ends would wrap)
        return False
    p0 = (x0 + lt_post) * nfp
    py0, py1 = max(0, -y0), min(nyp, ny - y0)
    whole = py0 == 0 and py1 == nyp and lo == 0 and hi == nxp * nfp
    for py in range(py0, py1):
        dr = dWk[py, lo:hi]
        Pr = P[y0 + py + up_post, p0 + lo:p0 + hi]
        for q in range(dr.shape[0]):
            dr[q] += da * Pr[q]
        if not whole:
            cr = cntk[py, lo:hi]
            for q in range(cr.shape[0]):
                cr[q] += one
    return whole


@njit(inline="always")
def _add_count(cntk, n):
    """Every weight of one kernel counted n more times (the patches _hebb_patch left uncounted)."""
    c = cntk.reshape(-1)
    add = np.float32(n)
    for q in range(c.shape[0]):
        c[q] += add


@njit(**_JIT)
def _hebbian_dense(A_pre, A_post, dW, counts, dw_max,
                   xmul, xoff, xdiv, nkx, ymul, yoff, ydiv, nky, lt_pre, up_pre, lt_post, up_post):
    nb, nye, nxe, nf = A_pre.shape
    nk, nyp, nxp, nfp = dW.shape
    ny = A_post.shape[1] - 2 * up_post
    nx = A_post.shape[2] - 2 * lt_post
    # (px, o) runs are contiguous in dW, counts and a post row: one flat inner loop.
    dW3 = dW.reshape(nk, nyp, nxp * nfp)
    cnt3 = counts.reshape(nk, nyp, nxp * nfp)
    P3 = A_post.reshape(nb, A_post.shape[1], A_post.shape[2] * nfp)
    ys, _ = _axis_starts(nye, up_pre, ymul, yoff, ydiv, nky)
    xs, _ = _axis_starts(nxe, lt_pre, xmul, xoff, xdiv, nkx)
    one = np.float32(1)
    for k in prange(nk):
        f = k % nf
        kx = (k // nf) % nkx
        ky = k // (nf * nkx)
        whole = 0
        for b in range(nb):
            for ye in range((up_pre + ky) % nky, nye, nky):
                y0 = ys[ye]
                for xe in range((lt_pre + kx) % nkx, nxe, nkx):
                    a = A_pre[b, ye, xe, f]
                    if a == 0:
                        continue
                    whole += _hebb_patch(dW3[k], cnt3[k], P3[b], dw_max * a, y0, xs[xe],
                                         nyp, nxp, nfp, ny, nx, lt_post, up_post, one)
        _add_count(cnt3[k], whole)


def hebbian_shared(A_pre, A_post, dW, counts, dw_max,
                   xmul, xoff, xdiv, nkx, ymul, yoff, ydiv, nky,
                   lt_pre, up_pre, lt_post, up_post):
    """Hebbian term of shared weights (see numpy_ref.hebbian_shared); parallel over kernels."""
    _check_out("dW", dW)
    _check_out("counts", counts)
    _hebbian_dense(A_pre, A_post, dW, counts, _F32(dw_max),
                   *_ints(xmul, xoff, xdiv, nkx, ymul, yoff, ydiv, nky, lt_pre, up_pre, lt_post, up_post))


@njit(**_JIT)
def _bucket_by_kernel(offsets, idx, nf, nxe, nkx, nky, lt, up, nk):
    """Stable counting sort of active entries by kernel: order, kernel row pointers, batch of each entry."""
    n = idx.shape[0]
    nb = offsets.shape[0] - 1
    kern = np.empty(n, dtype=np.int64)
    batch = np.empty(n, dtype=np.int64)
    for b in prange(nb):
        for e in range(offsets[b], offsets[b + 1]):
            xe = (idx[e] // nf) % nxe
            ye = idx[e] // (nf * nxe)
            kern[e] = idx[e] % nf + nf * ((xe - lt) % nkx + nkx * ((ye - up) % nky))
            batch[e] = b
    ptr = np.zeros(nk + 1, dtype=np.int64)
    for e in range(n):
        ptr[kern[e] + 1] += 1
    for k in range(nk):
        ptr[k + 1] += ptr[k]
    fill = ptr[:-1].copy()
    order = np.empty(n, dtype=np.int64)
    for e in range(n):
        order[fill[kern[e]]] = e
        fill[kern[e]] += 1
    return order, ptr, batch


@njit(**_JIT)
def _hebbian_sparse(order, ptr, batch, idx, val, nf, nxe, A_post, dW, counts, dw_max,
                    xmul, xoff, xdiv, ymul, yoff, ydiv, lt_pre, up_pre, lt_post, up_post):
    nk, nyp, nxp, nfp = dW.shape
    nb = A_post.shape[0]
    ny = A_post.shape[1] - 2 * up_post
    nx = A_post.shape[2] - 2 * lt_post
    dW3 = dW.reshape(nk, nyp, nxp * nfp)
    cnt3 = counts.reshape(nk, nyp, nxp * nfp)
    P3 = A_post.reshape(nb, A_post.shape[1], A_post.shape[2] * nfp)
    one = np.float32(1)
    for k in prange(nk):
        whole = 0
        for m in range(ptr[k], ptr[k + 1]):
            e = order[m]
            xe = (idx[e] // nf) % nxe
            ye = idx[e] // (nf * nxe)
            y0 = (ymul * (ye - up_pre) + yoff) // ydiv
            x0 = (xmul * (xe - lt_pre) + xoff) // xdiv
            whole += _hebb_patch(dW3[k], cnt3[k], P3[batch[e]], dw_max * val[e], y0, x0,
                                 nyp, nxp, nfp, ny, nx, lt_post, up_post, one)
        _add_count(cnt3[k], whole)


def hebbian_shared_sparse(offsets, idx, val, nf_pre, nx_ext, A_post, dW, counts, dw_max,
                          xmul, xoff, xdiv, nkx, ymul, yoff, ydiv, nky,
                          lt_pre, up_pre, lt_post, up_post):
    """``hebbian_shared`` from an active list; entries are bucketed by kernel so threads never share a kernel."""
    _check_out("dW", dW)
    _check_out("counts", counts)
    nf_pre, nx_ext, nkx, nky, lt_pre, up_pre = _ints(nf_pre, nx_ext, nkx, nky, lt_pre, up_pre)
    order, ptr, batch = _bucket_by_kernel(offsets, idx, nf_pre, nx_ext, nkx, nky, lt_pre, up_pre, dW.shape[0])
    _hebbian_sparse(order, ptr, batch, idx, val, nf_pre, nx_ext, A_post, dW, counts, _F32(dw_max),
                    *_ints(xmul, xoff, xdiv, ymul, yoff, ydiv, lt_pre, up_pre, lt_post, up_post))


# --------------------------------------------------------------------- probes

@njit(cache=True, fastmath={"reassoc"})
def _stats_of_run(row, irow, thr, out):
    """[Σa, Σ|a|, Σa², #|a|>thr, min key, max key] of one contiguous run, in one vectorised pass.

    Reassociation lets LLVM vectorise the float64 sums; min and max are taken
    over order-preserving integer keys of the float32 bits (float min/max
    reductions do not vectorise here; integer ones do). Its own function (not
    inlined at the Numba level), so only these sums are reassociated.
    """
    m = np.int32(0x7FFFFFFF)
    s = 0.0
    s1 = 0.0
    s2 = 0.0
    cnt = 0
    lo = m
    hi = np.int32(-0x80000000)
    for q in range(row.shape[0]):
        d = np.float64(row[q])
        s += d
        s1 += abs(d)
        s2 += d * d
        cnt += abs(d) > thr
        iv = irow[q]
        key = iv ^ ((iv >> 31) & m)
        lo = min(lo, key)
        hi = max(hi, key)
    _put_stats(out, s, s1, s2, cnt, lo, hi)


@njit(cache=True, fastmath={"reassoc"})
def _sum_of_run(row):
    s = 0.0
    for q in range(row.shape[0]):
        s += np.float64(row[q])
    return s


@njit(inline="always")
def _sum_rows(part, out):
    """Rows added in order: the result does not depend on how rows were split over threads.

    Columns 0-3 are sums, 4 and 5 min and max keys.
    """
    for b in range(part.shape[0]):
        out[b, :] = 0.0
        out[b, 4] = part[b, 0, 4]
        out[b, 5] = part[b, 0, 5]
        for y in range(part.shape[1]):
            for c in range(4):
                out[b, c] += part[b, y, c]
            out[b, 4] = min(out[b, 4], part[b, y, 4])
            out[b, 5] = max(out[b, 5], part[b, y, 5])


@njit(**_JIT)
def _layer_stats(X, lt, up, ny, nx, thr, part, out):
    """Stats of each restricted row (b, y) of X into part[b, y, :6] (in parallel), then per batch
    element into out[b] — one call, as each call costs several microseconds of dispatch."""
    nb, nf = X.shape[0], X.shape[3]
    X3 = X.reshape(nb, X.shape[1], X.shape[2] * nf)
    I3 = X3.view(np.int32)
    for r in prange(nb * ny):
        b = r // ny
        y = r - b * ny
        _stats_of_run(X3[b, up + y, lt * nf:(lt + nx) * nf], I3[b, up + y, lt * nf:(lt + nx) * nf], thr,
                      part[b, y])
    _sum_rows(part, out)
    keys = np.empty(2, np.int32)
    for b in range(nb):
        for c in range(2):
            k = np.int32(out[b, 4 + c])
            keys[c] = k ^ ((k >> 31) & np.int32(0x7FFFFFFF))  # the key's inverse (an involution on the bits)
        vals = keys.view(np.float32)
        out[b, 4] = np.float64(vals[0]) + 0.0  # -0.0 reads as 0.0
        out[b, 5] = np.float64(vals[1]) + 0.0


def layer_stats(X, lt, up, ny, nx, nnz_threshold):
    """Per batch element: [Σa, Σ|a|, Σa², #|a|>thr, min, max] in float64 (see numpy_ref.layer_stats)."""
    part = np.empty((X.shape[0], int(ny), 6), np.float64)
    out = np.empty((X.shape[0], 6), np.float64)
    _layer_stats(np.ascontiguousarray(X), *_ints(lt, up, ny, nx), float(nnz_threshold), part, out)
    return out


@njit(cache=True, fastmath={"reassoc"})
def _firm_cost_of_run(row, w):
    """Σ c(a) over a run in float64 (reassociated: the vectoriser may split the sum)."""
    half = 0.5 * w
    inv = 0.5 / w if w > 0 else 0.0
    s = 0.0
    for q in range(row.shape[0]):
        x = abs(np.float64(row[q]))
        s += x * (1.0 - x * inv) if x < w else half
    return s


@njit(**_JIT)
def _firm_threshold_cost(X, lt, up, ny, nx, w, part, out):
    nb, nf = X.shape[0], X.shape[3]
    X3 = X.reshape(nb, X.shape[1], X.shape[2] * nf)
    for r in prange(nb * ny):
        b = r // ny
        y = r - b * ny
        part[b, y] = _firm_cost_of_run(X3[b, up + y, lt * nf:(lt + nx) * nf], w)
    _sum_in_order(part, out)


def firm_threshold_cost(X, lt, up, ny, nx, w):
    """Σ c(a) per batch element (see numpy_ref.firm_threshold_cost): rows in parallel, added in order."""
    part = np.empty((X.shape[0], int(ny)), np.float64)
    out = np.empty(X.shape[0], np.float64)
    _firm_threshold_cost(np.ascontiguousarray(X), *_ints(lt, up, ny, nx), float(w), part, out)
    return out


# --------------------------------------------------------------------- RescaleLayer, DropoutLayer

@njit(**_JIT)
def _rescale_features(D, S, method, mean_t, std_t, ny, nx, dlt, dup, slt, sup):
    nf = S.shape[3]
    fnf = np.float32(nf)
    for r in prange(D.shape[0] * ny):
        b = r // ny
        y = r - b * ny
        for x in range(nx):
            s = S[b, sup + y, slt + x]
            d = D[b, dup + y, dlt + x]
            if method == POINTMEANSTD or method == POINTRESPONSENORMALIZATION:
                total = np.float32(0)
                if method == POINTMEANSTD:
                    for f in range(nf):
                        total += s[f]
                mean = total / fnf
                sq = np.float32(0)
                for f in range(nf):
                    sq += (s[f] - mean) * (s[f] - mean)
                spread = np.float32(math.sqrt(sq / fnf)) if method == POINTMEANSTD else np.float32(math.sqrt(sq))
                for f in range(nf):
                    if spread == 0:
                        d[f] = s[f]
                    elif method == POINTMEANSTD:
                        d[f] = (s[f] - mean) * (std_t / spread) + mean_t
                    else:
                        d[f] = s[f] / spread
            elif method == SOFTMAX:
                top = FLT_MIN
                for f in range(nf):
                    top = max(top, s[f])
                total = np.float32(0)
                for f in range(nf):
                    total += np.float32(math.exp(s[f] - top))
                for f in range(nf):
                    ok = total != 0 and total == total
                    d[f] = np.float32(math.exp(s[f] - top)) / total if ok else np.float32(0)
            elif method == LOGREG:
                for f in range(nf):
                    d[f] = np.float32(1) / (np.float32(1) + np.float32(math.exp(s[f])))
            else:  # ZEROTONEGATIVE
                for f in range(nf):
                    d[f] = np.float32(-1) if s[f] == 0 else s[f]


def rescale_features(dst, src, method, target_mean, target_std, dst_lt, dst_up, src_lt, src_up):
    """RescaleLayer's per-position and per-neuron methods (see numpy_ref.rescale_features)."""
    _check_out("dst", dst)
    ny, nx = dst.shape[1] - 2 * int(dst_up), dst.shape[2] - 2 * int(dst_lt)
    _rescale_features(dst, np.ascontiguousarray(src, np.float32), int(method), _F32(target_mean),
                      _F32(target_std), *_ints(ny, nx, dst_lt, dst_up, src_lt, src_up))


@njit(inline="always")
def _taus88(s1, s2, s3):
    """One taus88 step on uint32 values held in uint64 (numba widens integer arithmetic)."""
    m = np.uint64(0xFFFFFFFF)
    s1 = (((s1 & np.uint64(0xFFFFFFFE)) << np.uint64(12)) & m) ^ ((((s1 << np.uint64(13)) & m) ^ s1) >> np.uint64(19))
    s2 = (((s2 & np.uint64(0xFFFFFFF8)) << np.uint64(4)) & m) ^ ((((s2 << np.uint64(2)) & m) ^ s2) >> np.uint64(25))
    s3 = (((s3 & np.uint64(0xFFFFFFF0)) << np.uint64(17)) & m) ^ ((((s3 << np.uint64(3)) & m) ^ s3) >> np.uint64(11))
    return s1, s2, s3


@njit(inline="always")
def _draw(R, b, y, x, f):
    """Step neuron (b, y, x, f)'s taus88 generator in R [4, nb, ny, nx, nf]; its new s0."""
    s1, s2, s3 = _taus88(np.uint64(R[1, b, y, x, f]), np.uint64(R[2, b, y, x, f]), np.uint64(R[3, b, y, x, f]))
    s0 = s1 ^ s2 ^ s3
    R[0, b, y, x, f], R[1, b, y, x, f] = np.uint32(s0), np.uint32(s1)
    R[2, b, y, x, f], R[3, b, y, x, f] = np.uint32(s2), np.uint32(s3)
    return s0


@njit(**_JIT)
def _dropout(A, R, p, lt, up):
    nb, ny, nx, nf = R.shape[1], R.shape[2], R.shape[3], R.shape[4]
    for r in prange(nb * ny):
        b = r // ny
        y = r - b * ny
        for x in range(nx):
            for f in range(nf):
                s0 = _draw(R, b, y, x, f)
                if s0 % np.uint64(100) < p:
                    A[b, up + y, lt + x, f] = np.float32(0)


def dropout(A, rng, probability, lt, up):
    """DropoutLayer's draw: each neuron's taus88 step, A = 0 where s0 % 100 < probability
    (see numpy_ref.dropout)."""
    _check_out("A", A)
    _dropout(A, rng, np.uint64(probability), *_ints(lt, up))


@njit(**_JIT)
def _retina_spikes(G, A, T, R, lt, up, dt, base, stim, burst, absr, refr):
    nb, ny, nx, nf = T.shape
    for r in prange(nb * ny):
        b = r // ny
        y = r - b * ny
        for x in range(nx):
            for f in range(nf):
                t = T[b, y, x, f] + dt
                spike = False
                if t >= absr:
                    rf = np.float32(1) - np.float32(math.exp(-(t - absr) / refr))
                    if rf < 0:
                        rf = np.float32(0)
                    p = base * rf + (stim * (G[0, b, y, x, f] - G[1, b, y, x, f])) * rf * burst
                    spike = np.float32(_draw(R, b, y, x, f)) / np.float32(4294967296.0) < p
                A[b, up + y, lt + x, f] = np.float32(1) if spike else np.float32(0)
                T[b, y, x, f] = np.float32(0) if spike else t


def retina_spikes(GSyn, A, since, rng, lt, up, dt, prob_base, prob_stim, burst, abs_refractory, refractory):
    """The spiking Retina (see numpy_ref.retina_spikes), rows in parallel."""
    _check_out("A", A)
    _check_out("since", since)
    with np.errstate(divide="ignore", invalid="ignore"):
        _retina_spikes(np.ascontiguousarray(GSyn, np.float32), A, since, rng, *_ints(lt, up),
                       *(_F32(v) for v in (dt, prob_base, prob_stim, burst, abs_refractory, refractory)))


@njit(**_JIT)
def _max_pool(A, G, xtab, ytab, overwrite, active_only, gate, with_gate, x0, y0, nx_ext):
    nb, ny, nx, nf = G.shape
    for r in prange(nb * ny):
        b = r // ny
        y = r - b * ny
        for x in range(nx):
            for f in range(nf):
                top = -np.inf if overwrite else G[b, y, x, f]
                won = np.float32(-1)
                for jy in range(ytab.shape[1]):
                    ye = ytab[y, jy, 0]
                    for jx in range(xtab.shape[1]):
                        xe = xtab[x, jx, 0]
                        a = A[b, ye, xe, f]
                        if (a != 0 or not active_only) and top <= a:
                            top = a
                            won = np.float32(((y0 + ye) * nx_ext + x0 + xe) * nf + f)
                G[b, y, x, f] = top
                if with_gate:
                    gate[b, y, x, f] = won


def deliver_max_pool(A, G, xtab, ytab, overwrite, active_only, gate=None, x0=0, y0=0, nx_ext=0):
    """PoolingConn's maxpooling and its winners (see numpy_ref.deliver_max_pool): post rows in parallel."""
    _check_out("G", G)
    g = gate if gate is not None else np.zeros((1, 1, 1, 1), np.float32)
    _max_pool(np.ascontiguousarray(A, np.float32), G, xtab, ytab, bool(overwrite), bool(active_only), g,
              gate is not None, *_ints(x0, y0, nx_ext))


@njit(cache=True)
def _unpool(A, G, gate, lt, up, g_lt, g_up, qx0, qy0, qnx, qny, x0, y0, nx_ext, mx, my):
    nb, ny, nx, nf = G.shape
    for b in range(nb):  # in OpenPV's order: a later value replaces an earlier one only when larger
        for ye in range(A.shape[1]):
            for xe in range(A.shape[2]):
                gy, gx = ye - up + qy0, xe - lt + qx0
                if gy < 0 or gy >= qny or gx < 0 or gx >= qnx:
                    continue
                for f in range(A.shape[3]):
                    a = A[b, ye, xe, f]
                    k = int(gate[b, g_up + ye - up, g_lt + xe - lt, f])
                    if a == 0 or k < 0:
                        continue
                    px, py, pf = (k // nf) % nx_ext - mx - x0, k // (nf * nx_ext) - my - y0, k % nf
                    if 0 <= px < nx and 0 <= py < ny and abs(a) > abs(G[b, py, px, pf]):
                        G[b, py, px, pf] = a


def unpool_max(A, G, gate, lt, up, g_lt, g_up, q0, x0, y0, nx_ext, margin_x, margin_y):
    """TransposePoolingConn of max pooling (see numpy_ref.unpool_max): in order, per batch element."""
    _check_out("G", G)
    _unpool(np.ascontiguousarray(A, np.float32), G, np.ascontiguousarray(gate, np.float32),
            *_ints(lt, up, g_lt, g_up, *q0, x0, y0, nx_ext, margin_x, margin_y))


@njit(inline="always")
def _noise_draw(R, b, y, x, f, g, prob, amp):
    """OpenPV's noise draw for one neuron (see numpy_ref._noise): returns the new input."""
    if np.float32(_draw(R, b, y, x, f)) / np.float32(4294967296.0) < prob:
        g = g + amp * (np.float32(_draw(R, b, y, x, f)) / np.float32(4294967296.0))
    return g


@njit(**_JIT)
def _lif_arma(GS, A, V, TH, GE, GI, GIB, GAP, R, lt, up, c, with_gap):
    nb, ny, nx, nf = V.shape
    tau, vrest, vexc, vinh, vinhb, vthrest, dvth, dgib = c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]
    one, gmax, dt = np.float32(1), np.float32(10), c[18]
    for r in prange(nb * ny):
        b = r // ny
        y = r - b * ny
        for x in range(nx):
            for f in range(nf):
                ge = _noise_draw(R, b, y, x, f, GS[0, b, y, x, f], c[11], c[8])
                gi = _noise_draw(R, b, y, x, f, GS[1, b, y, x, f], c[12], c[9])
                gib = _noise_draw(R, b, y, x, f, GS[2, b, y, x, f], c[13], c[10])
                gei, gii, gibi = GE[b, y, x, f] + ge, GI[b, y, x, f] + gi, GIB[b, y, x, f] + gib
                ggap = GS[3, b, y, x, f] if with_gap else np.float32(0)
                den_i = one + gei + gii + gibi
                if with_gap:
                    den_i = den_i + GAP[b, y, x, f]
                tau_i = tau / den_i
                top_i = vrest + vexc * gei + vinh * gii + vinhb * gibi
                v_i = (top_i + ggap if with_gap else top_i) / den_i
                gei, gii, gibi = min(gei, gmax), min(gii, gmax), min(gibi, gmax)
                gef, gif, gibf = gei * c[14], gii * c[15], gibi * c[16]
                den_f = one + gef + gif + gibf
                if with_gap:
                    den_f = den_f + GAP[b, y, x, f]
                tau_f = tau / (den_f if with_gap else one + gef + gif + gibi)
                top_f = vrest + vexc * gef + vinh * gif + vinhb * gibf
                v_f = (top_f + ggap if with_gap else top_f) / den_f
                slope = (tau_f - tau_i) / dt
                if slope == 0:
                    f1 = np.float32(math.exp(np.float64(-dt / tau_i)))
                else:
                    f1 = np.float32(math.pow(np.float64(tau_f / tau_i), np.float64(-one / slope)))
                if slope == -1:
                    f2 = tau_i / dt * np.float32(math.log(np.float64(tau_f / tau_i + one)))
                else:
                    f2 = (one - tau_i / dt * (one - f1)) / (one + slope)
                f3 = one - f1 - f2
                v = f1 * V[b, y, x, f] + f2 * v_i + f3 * v_f
                th = vthrest + (TH[b, y, x, f] - vthrest) * c[17]
                fired = v > th
                A[b, up + y, lt + x, f] = one if fired else np.float32(0)
                V[b, y, x, f] = vrest if fired else v
                TH[b, y, x, f] = th + dvth if fired else th
                GE[b, y, x, f], GI[b, y, x, f] = gef, gif
                GIB[b, y, x, f] = gibf + dgib if fired else gibf


def lif_arma(GSyn, A, V, Vth, G_E, G_I, G_IB, gap, rng, lt, up, consts, with_gap):
    """LIF's arma step (see numpy_ref.lif_arma): rows in parallel, each neuron's generator its own."""
    for name, arr in (("A", A), ("V", V), ("Vth", Vth), ("G_E", G_E), ("G_I", G_I), ("G_IB", G_IB)):
        _check_out(name, arr)
    with np.errstate(all="ignore"):
        _lif_arma(np.ascontiguousarray(GSyn, np.float32), A, V, Vth, G_E, G_I, G_IB, np.ascontiguousarray(gap),
                  rng, *_ints(lt, up), np.ascontiguousarray(consts, np.float32), bool(with_gap))


@njit(**_JIT)
def _mask(A, lt, up, M, m_lt, m_up, invert, per_feature):
    nb, nf = A.shape[0], A.shape[3]
    ny, nx = A.shape[1] - 2 * up, A.shape[2] - 2 * lt
    mf = M.shape[3]
    for r in prange(nb * ny):
        b = r // ny
        y = r - b * ny
        for x in range(nx):
            for f in range(nf):
                if per_feature:
                    v = M[0, 0, 0, f]
                else:
                    v = M[b, m_up + y, m_lt + x, f if mf > 1 else 0]
                if (v != 0) == invert:
                    A[b, up + y, lt + x, f] = np.float32(0)


def mask_activity(A, lt, up, M, m_lt, m_up, invert):
    """MaskLayer's mask (see numpy_ref.mask_activity), rows in parallel."""
    _check_out("A", A)
    M = np.ascontiguousarray(M, np.float32)
    _mask(A, *_ints(lt, up), M, *_ints(m_lt, m_up), bool(invert), M.shape[:3] == (1, 1, 1))


@njit(**_JIT)
def _background(A, lt, up, S, s_lt, s_up, rep):
    nb, nf = A.shape[0], S.shape[3]
    ny, nx = A.shape[1] - 2 * up, A.shape[2] - 2 * lt
    for r in prange(nb * ny):
        b = r // ny
        y = r - b * ny
        for x in range(nx):
            quiet = np.float32(1)
            for f in range(nf):
                v = S[b, s_up + y, s_lt + x, f]
                if v != 0:
                    quiet = np.float32(0)
                for k in range(rep):
                    A[b, up + y, lt + x, (f + 1) * rep + k] = v
            for k in range(rep):
                A[b, up + y, lt + x, k] = quiet


def background(A, lt, up, src, s_lt, s_up, rep):
    """BackgroundLayer (see numpy_ref.background), rows in parallel."""
    _check_out("A", A)
    _background(A, *_ints(lt, up), np.ascontiguousarray(src, np.float32), *_ints(s_lt, s_up, rep))
