"""Numba CPU kernels: same names, signatures and results (to float32 round-off) as numpy_ref.

Every parallel loop owns its output: delivery runs over post rows
``(b, y)`` (a gather even for the pre-perspective forms), learning over
kernels, so there are no write races and the summation order does not
depend on the thread count.  The innermost loop runs over the contiguous
feature axis.  The public functions are thin wrappers that fix argument
types (int64 scalars, float32 arrays) so each jitted function compiles
once.
"""
import numpy as np
from numba import njit, prange

from pvmpi.kernels.numpy_ref import FLT_MAX

_F32 = np.float32
_JIT = dict(parallel=True, cache=True, fastmath=False)


def _ints(*values):
    return tuple(int(v) for v in values)


def _check_out(name, arr):
    if arr.dtype != np.float32 or not arr.flags.c_contiguous or not arr.flags.writeable:
        raise ValueError(f"{name} must be a writeable C-contiguous float32 array")


# --------------------------------------------------------------------- delivery

@njit(**_JIT)
def _deliver_pre(A, W, G, xmul, xoff, xdiv, nkx, ymul, yoff, ydiv, nky, lt, up):
    nb, nye, nxe, nf = A.shape
    nyp, nxp, nfp = W.shape[1], W.shape[2], W.shape[3]
    ny, nx = G.shape[1], G.shape[2]
    for r in prange(nb * ny):
        b = r // ny
        y = r - b * ny
        for ye in range(nye):
            i = ye - up
            py = y - (ymul * i + yoff) // ydiv
            if py < 0 or py >= nyp:
                continue
            kyo = nkx * (i % nky)
            for xe in range(nxe):
                j = xe - lt
                x0 = (xmul * j + xoff) // xdiv
                lo = max(0, -x0)
                hi = min(nxp, nx - x0)
                if lo >= hi:
                    continue
                kb = nf * (j % nkx + kyo)
                for f in range(nf):
                    a = A[b, ye, xe, f]
                    if a == 0:
                        continue
                    for px in range(lo, hi):
                        for o in range(nfp):
                            G[b, y, x0 + px, o] += a * W[kb + f, py, px, o]


def deliver_pre(A, W, G, xmul, xoff, xdiv, nkx, ymul, yoff, ydiv, nky, lt, up):
    """Pre-perspective convolve (see numpy_ref.deliver_pre); parallel over post rows."""
    _check_out("G", G)
    _deliver_pre(A, W, G, *_ints(xmul, xoff, xdiv, nkx, ymul, yoff, ydiv, nky, lt, up))


@njit(**_JIT)
def _count_rows(A2, counts):
    for r in prange(A2.shape[0]):
        c = 0
        for j in range(A2.shape[1]):
            if A2[r, j] != 0:
                c += 1
        counts[r + 1] = c


@njit(**_JIT)
def _fill_rows(A2, rowptr, nye, idx, val):
    rowlen = A2.shape[1]
    for r in prange(A2.shape[0]):
        n = rowptr[r]
        base = (r % nye) * rowlen
        for j in range(rowlen):
            v = A2[r, j]
            if v != 0:
                idx[n] = base + j
                val[n] = v
                n += 1


def active_list(A, lt, up):
    """Nonzero entries of each batch element's extended A (see numpy_ref.active_list)."""
    nb, nye = A.shape[0], A.shape[1]
    A2 = A.reshape(nb * nye, -1)
    rowptr = np.zeros(nb * nye + 1, dtype=np.int64)
    _count_rows(A2, rowptr)
    np.cumsum(rowptr, out=rowptr)
    n = int(rowptr[-1])
    idx = np.empty(n, dtype=np.int32)
    val = np.empty(n, dtype=np.float32)
    _fill_rows(A2, rowptr, nye, idx, val)
    return np.ascontiguousarray(rowptr[::nye]), idx, val


@njit(**_JIT)
def _deliver_sparse(offsets, idx, val, nf, nxe, W, G, xmul, xoff, xdiv, nkx, ymul, yoff, ydiv, nky, lt, up):
    nyp, nxp, nfp = W.shape[1], W.shape[2], W.shape[3]
    nb = offsets.shape[0] - 1
    ny, nx = G.shape[1], G.shape[2]
    rowlen = nf * nxe
    for r in prange(nb * ny):
        b = r // ny
        y = r - b * ny
        lo_b = offsets[b]
        hi_b = offsets[b + 1]
        if lo_b == hi_b:
            continue
        entries = idx[lo_b:hi_b]
        for ye in range(idx[lo_b] // rowlen, idx[hi_b - 1] // rowlen + 1):
            i = ye - up
            py = y - (ymul * i + yoff) // ydiv
            if py < 0 or py >= nyp:
                continue
            kyo = nkx * (i % nky)
            first = lo_b + np.searchsorted(entries, ye * rowlen)
            last = lo_b + np.searchsorted(entries, (ye + 1) * rowlen)
            for n in range(first, last):
                rem = idx[n] - ye * rowlen
                xe = rem // nf
                f = rem - xe * nf
                j = xe - lt
                x0 = (xmul * j + xoff) // xdiv
                k = f + nf * (j % nkx + kyo)
                a = val[n]
                for px in range(max(0, -x0), min(nxp, nx - x0)):
                    for o in range(nfp):
                        G[b, y, x0 + px, o] += a * W[k, py, px, o]


def deliver_sparse(offsets, idx, val, nf_pre, nx_ext, W, G,
                   xmul, xoff, xdiv, nkx, ymul, yoff, ydiv, nky, lt, up):
    """Convolve from an active list; each post row finds its pre rows by binary search."""
    _check_out("G", G)
    _deliver_sparse(offsets, idx, val, *_ints(nf_pre, nx_ext), W, G,
                    *_ints(xmul, xoff, xdiv, nkx, ymul, yoff, ydiv, nky, lt, up))


@njit(**_JIT)
def _deliver_post(A, W, G, xtab, ytab, nkx):
    nb, nf = A.shape[0], A.shape[3]
    nfp = W.shape[3]
    ny, nx = G.shape[1], G.shape[2]
    sy, sx = ytab.shape[1], xtab.shape[1]
    for r in prange(nb * ny):
        b = r // ny
        y = r - b * ny
        acc = np.empty(nfp, dtype=np.float32)
        for x in range(nx):
            acc[:] = 0
            for jy in range(sy):
                iey = ytab[y, jy, 0]
                py = ytab[y, jy, 1]
                kyo = nkx * ytab[y, jy, 2]
                for jx in range(sx):
                    iex = xtab[x, jx, 0]
                    px = xtab[x, jx, 1]
                    kb = nf * (xtab[x, jx, 2] + kyo)
                    for f in range(nf):
                        a = A[b, iey, iex, f]
                        if a != 0:
                            w = W[kb + f, py, px]
                            for o in range(nfp):
                                acc[o] += a * w[o]
            for o in range(nfp):
                G[b, y, x, o] += acc[o]


def deliver_post(A, W, G, xtab, ytab, nkx):
    """Post-perspective convolve through geometry.post_table rows; parallel over post rows."""
    _check_out("G", G)
    _deliver_post(A, W, G, np.ascontiguousarray(xtab, dtype=np.int32),
                  np.ascontiguousarray(ytab, dtype=np.int32), int(nkx))


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

@njit(inline="always")
def _transfer1(v, on, VThresh, AMin, clip, AMax, AShift, VWidth):
    a = v
    if on:
        top = VThresh + VWidth
        if v < VThresh:
            a = AMin
        elif v < top:
            a = AMin + (((top - AShift) - AMin) * (v - VThresh)) / VWidth
        else:
            a = v - AShift
    if clip and a > AMax:
        a = AMax
    return a


def _transfer_args(VThresh, AMin, AMax, AShift, VWidth):
    VThresh, AMin, AMax, AShift, VWidth = (_F32(v) for v in (VThresh, AMin, AMax, AShift, VWidth))
    return (bool(VThresh > _F32(-FLT_MAX)), VThresh, AMin, bool(AMax < _F32(FLT_MAX)), AMax, AShift, VWidth)


@njit(**_JIT)
def _apply_transfer(V, A, lt, up, on, VThresh, AMin, clip, AMax, AShift, VWidth):
    nb, ny, nx, nf = V.shape
    for r in prange(nb * ny):
        b = r // ny
        y = r - b * ny
        for x in range(nx):
            for f in range(nf):
                A[b, y + up, x + lt, f] = _transfer1(V[b, y, x, f], on, VThresh, AMin, clip, AMax, AShift, VWidth)


def apply_transfer(V, A, lt, up, VThresh, AMin, AMax, AShift, VWidth):
    """Write the ANN transfer of V into A's restricted region (facts 3.6)."""
    _check_out("A", A)
    _apply_transfer(V, A, int(lt), int(up), *_transfer_args(VThresh, AMin, AMax, AShift, VWidth))


@njit(**_JIT)
def _update_lca(V, A, G, e, s, lt, up, on, VThresh, AMin, clip, AMax, AShift, VWidth):
    nb, ny, nx, nf = V.shape
    one = np.float32(1)
    for r in prange(nb * ny):
        b = r // ny
        y = r - b * ny
        eb = e[b]
        ome = one - eb
        for x in range(nx):
            for f in range(nf):
                v = eb * V[b, y, x, f] + ome * (G[b, y, x, f] + s * A[b, y + up, x + lt, f])
                V[b, y, x, f] = v
                A[b, y + up, x + lt, f] = _transfer1(v, on, VThresh, AMin, clip, AMax, AShift, VWidth)


def update_lca(V, A, G, exp_tau, self_interact, lt, up, VThresh, AMin, AMax, AShift, VWidth):
    """HyPerLCALayer step (facts 3.7), float32 in the order of numpy_ref.update_lca."""
    _check_out("V", V)
    _check_out("A", A)
    e = np.ascontiguousarray(exp_tau, dtype=np.float32).reshape(-1)
    _update_lca(V, A, G, e, _F32(self_interact), int(lt), int(up),
                *_transfer_args(VThresh, AMin, AMax, AShift, VWidth))


# ------------------------------------------------------------------- learning

@njit(**_JIT)
def _hebbian_dense(A_pre, A_post, dW, counts, dw_max,
                   xmul, xoff, xdiv, nkx, ymul, yoff, ydiv, nky, lt_pre, up_pre, lt_post, up_post):
    nb, nye, nxe, nf = A_pre.shape
    nk, nyp, nxp, nfp = dW.shape
    ny = A_post.shape[1] - 2 * up_post
    nx = A_post.shape[2] - 2 * lt_post
    one = np.float32(1)
    for k in prange(nk):
        f = k % nf
        kx = (k // nf) % nkx
        ky = k // (nf * nkx)
        for b in range(nb):
            for ye in range((up_pre + ky) % nky, nye, nky):
                y0 = (ymul * (ye - up_pre) + yoff) // ydiv
                pylo = max(0, -y0)
                pyhi = min(nyp, ny - y0)
                for xe in range((lt_pre + kx) % nkx, nxe, nkx):
                    a = A_pre[b, ye, xe, f]
                    if a == 0:
                        continue
                    da = dw_max * a
                    x0 = (xmul * (xe - lt_pre) + xoff) // xdiv
                    pxlo = max(0, -x0)
                    pxhi = min(nxp, nx - x0)
                    for py in range(pylo, pyhi):
                        for px in range(pxlo, pxhi):
                            q = A_post[b, y0 + py + up_post, x0 + px + lt_post]
                            for o in range(nfp):
                                dW[k, py, px, o] += da * q[o]
                                counts[k, py, px, o] += one


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
    ny = A_post.shape[1] - 2 * up_post
    nx = A_post.shape[2] - 2 * lt_post
    one = np.float32(1)
    for k in prange(nk):
        for m in range(ptr[k], ptr[k + 1]):
            e = order[m]
            b = batch[e]
            xe = (idx[e] // nf) % nxe
            ye = idx[e] // (nf * nxe)
            da = dw_max * val[e]
            y0 = (ymul * (ye - up_pre) + yoff) // ydiv
            x0 = (xmul * (xe - lt_pre) + xoff) // xdiv
            pxlo = max(0, -x0)
            pxhi = min(nxp, nx - x0)
            for py in range(max(0, -y0), min(nyp, ny - y0)):
                for px in range(pxlo, pxhi):
                    q = A_post[b, y0 + py + up_post, x0 + px + lt_post]
                    for o in range(nfp):
                        dW[k, py, px, o] += da * q[o]
                        counts[k, py, px, o] += one


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
