"""Reference kernels in vectorised numpy: the readable truth the other backends must equal.

Layout (DESIGN.md): layer buffers ``[batch, y, x, f]`` float32 C-contiguous;
activity ``A`` extended by margins ``up`` (y) and ``lt`` (x), ``V``/``G``
restricted; shared weights of one arbor ``W[kernel, nyp, nxp, nfp]`` with
kernel ``k = f_pre + nf_pre*(kx + nkx*ky)``.  Along each axis the post start
of restricted pre index ``i`` is ``(mul*i + off) // div`` (see
:mod:`pvmpi.geometry`); patches are clipped to the local post tile.
Outputs are updated in place; functions return None (``active_list``
excepted).  Loops run over kernels and patch offsets, never over neurons.
"""
import numpy as np

from pvmpi.kernels.contract import Capabilities

# the engine's state in host memory (pvmpi.kernels.host): this backend's own
from pvmpi.kernels.host import copy, fill_zero, gather_flat, host_buffer, to_device, to_host, upload, zeros  # noqa: F401

FLT_MAX = 3.4028234663852886e38
CAPABILITIES = Capabilities(device_resident=False, gemm_delivery=False)
_F32 = np.float32


def _phase(n_ext, margin, nk, k):
    """Extended indices whose kernel index along the axis is ``k``."""
    ie = np.arange(n_ext)
    return ie[(ie - margin) % nk == k]


def _clip(start, p, n):
    """Post indices ``start + p`` and the mask of those inside ``[0, n)``."""
    pos = start + p
    return pos, (pos >= 0) & (pos < n)


def _decode(offsets, idx, nf, nx_ext):
    """Batch, extended y, extended x and feature of every active-list entry."""
    b = np.repeat(np.arange(offsets.size - 1), np.diff(offsets))
    idx = idx.astype(np.int64)
    return b, idx // (nf * nx_ext), (idx // nf) % nx_ext, idx % nf


# --------------------------------------------------------------------- delivery

def deliver_pre(A, W, G, xmul, xoff, xdiv, nkx, ymul, yoff, ydiv, nky, lt, up, overwrite=False):
    """Pre-perspective convolve: ``G[b, post] += A[b, pre] * w[pre→post]`` over all extended pre.

    Per kernel phase and patch offset the pre→post map is injective, so one
    fancy-indexed add (no ``np.add.at``) is exact. ``overwrite``: G holds only
    this delivery (as if cleared first; the first delivery into a channel).
    """
    if overwrite:
        G[...] = 0
    nb, nye, nxe, nf = A.shape
    _, nyp, nxp, nfp = W.shape
    ny, nx = G.shape[1], G.shape[2]
    W6 = W.reshape(nky, nkx, nf, nyp, nxp, nfp)
    for ky in range(nky):
        ye = _phase(nye, up, nky, ky)
        y0 = (ymul * (ye - up) + yoff) // ydiv
        for kx in range(nkx):
            xe = _phase(nxe, lt, nkx, kx)
            x0 = (xmul * (xe - lt) + xoff) // xdiv
            a = A[:, ye[:, None], xe[None, :], :]
            for py in range(nyp):
                y, my = _clip(y0, py, ny)
                if not my.any():
                    continue
                for px in range(nxp):
                    x, mx = _clip(x0, px, nx)
                    if not mx.any():
                        continue
                    G[:, y[my][:, None], x[mx][None, :], :] += a[:, my][:, :, mx] @ W6[ky, kx, :, py, px, :]


def active_list(A, lt, up, stats=None, reuse=None):
    """Nonzero entries of each batch element's extended ``A``: what a sparse layer publishes.

    Returns ``(offsets int64 [nb+1], idx int32, val float32)``; entries of
    batch ``b`` are ``offsets[b]:offsets[b+1]``, ``idx = f + nf*(xe + nx_ext*ye)``
    increasing.  The whole extended buffer is listed, halo included, as in
    OpenPV.  ``stats`` ([nb, 6] float64, optional) receives the restricted
    A's ``layer_stats`` at threshold 0 (margins ``lt``/``up``). ``reuse``: an
    earlier list whose buffers a backend may overwrite (a device's; here new arrays).
    """
    if stats is not None:
        stats[:] = layer_stats(A, lt, up, A.shape[1] - 2 * up, A.shape[2] - 2 * lt, 0.0)
    nb = A.shape[0]
    flat = A.reshape(nb, -1)
    bi, ii = np.nonzero(flat)
    offsets = np.zeros(nb + 1, dtype=np.int64)
    np.cumsum(np.bincount(bi, minlength=nb), out=offsets[1:])
    return offsets, ii.astype(np.int32), flat[bi, ii].astype(np.float32)


def deliver_sparse(offsets, idx, val, nf_pre, nx_ext, W, G,
                   xmul, xoff, xdiv, nkx, ymul, yoff, ydiv, nky, lt, up, overwrite=False):
    """``deliver_pre`` visiting only an active list (LCA reconstruction from a sparse code).

    Several features of one pre position hit the same post neuron, so the
    scatter needs ``np.add.at``. ``overwrite`` as for ``deliver_pre``.
    """
    if overwrite:
        G[...] = 0
    nyp, nxp = W.shape[1], W.shape[2]
    ny, nx = G.shape[1], G.shape[2]
    b, ye, xe, f = _decode(offsets, idx, nf_pre, nx_ext)
    k = f + nf_pre * ((xe - lt) % nkx + nkx * ((ye - up) % nky))
    y0 = (ymul * (ye - up) + yoff) // ydiv
    x0 = (xmul * (xe - lt) + xoff) // xdiv
    for py in range(nyp):
        y, my = _clip(y0, py, ny)
        for px in range(nxp):
            x, mx = _clip(x0, px, nx)
            m = my & mx
            np.add.at(G, (b[m], y[m], x[m]), val[m, None] * W[k[m], py, px, :])


def deliver_post(A, W, G, xtab, ytab, nkx, overwrite=False):
    """Post-perspective convolve: each post neuron gathers its inputs through the
    :func:`pvmpi.geometry.post_table` rows (same sums as ``deliver_pre``).
    ``overwrite`` as for ``deliver_pre``.
    """
    if overwrite:
        G[...] = 0
    nf = A.shape[3]
    nk, nyp, nxp, nfp = W.shape
    nky = nk // (nf * nkx)
    W6 = W.reshape(nky, nkx, nf, nyp, nxp, nfp)
    for jy in range(ytab.shape[1]):
        iey, py, ky = (ytab[:, jy, c][:, None] for c in range(3))
        for jx in range(xtab.shape[1]):
            iex, px, kx = (xtab[:, jx, c][None, :] for c in range(3))
            a = A[:, iey, iex, :]  # [nb, ny, nx, nf]
            for f in range(nf):
                G += a[..., f, None] * W6[ky, kx, f, py, px, :]


def deliver_im2col(A, M, G, x0, y0, sy, sx, overwrite):
    """Dense delivery where every post neuron reads the same pattern of pre neurons.

    Post ``(y, x)`` reads the pre block ``A[b, y0[y]:y0[y]+sy, x0[x]:x0[x]+sx, :]``
    (extended indices), flattened in (jy, jx, f) order, against the rows of
    ``M [sy*sx*nf, nfp]`` (built by :mod:`pvmpi.network.im2col` from the
    weights): ``G[b, y, x, :] (+)= block @ M``. ``overwrite`` writes G.
    """
    ye = np.asarray(y0)[:, None] + np.arange(sy)
    xe = np.asarray(x0)[:, None] + np.arange(sx)
    cols = A[:, ye[:, None, :, None], xe[None, :, None, :], :]  # [nb, ny, nx, sy, sx, nf]
    prod = cols.reshape(G.shape[:3] + (-1,)) @ M
    if overwrite:
        G[...] = prod
    else:
        G += prod


def accumulate_input(GSyn, coefficients, G):
    """``G = Σ_ch c_ch * GSyn[ch]`` (GSyn ``[nch, nb, ny, nx, nf]``), in float32, channel order."""
    c = np.asarray(coefficients, dtype=np.float32)
    np.multiply(c[0], GSyn[0], out=G)
    for ch in range(1, GSyn.shape[0]):
        G += c[ch] * GSyn[ch]


# ------------------------------------------------------------------- layer update

def transfer(V, VThresh, AMin, AMax, AShift, VWidth):
    """ANN transfer function (facts 3.6) of a float32 array; returns a new array.

    ``VThresh <= -FLT_MAX`` turns thresholding off, ``AMax >= FLT_MAX``
    turns clipping off; ``VWidth >= 0`` (the caller normalises).
    """
    VThresh, AMin, AMax, AShift, VWidth = (_F32(v) for v in (VThresh, AMin, AMax, AShift, VWidth))
    out = np.array(V, dtype=np.float32, copy=True)
    if VThresh > _F32(-FLT_MAX):
        top = VThresh + VWidth
        out = V - AShift
        if VWidth > 0:
            mid = V < top
            out[mid] = AMin + (((top - AShift) - AMin) * (V[mid] - VThresh)) / VWidth
        out[V < VThresh] = AMin
    if AMax < _F32(FLT_MAX):
        out[out > AMax] = AMax
    return out


def apply_transfer(V, A, lt, up, VThresh, AMin, AMax, AShift, VWidth, sums=None):
    """Write ``transfer(V)`` into the restricted region of extended ``A``; ``sums`` ([nb] float64,
    optional) receives that region's sum per batch element (the guard's check of A)."""
    ny, nx = V.shape[1], V.shape[2]
    A[:, up:up + ny, lt:lt + nx, :] = transfer(V, VThresh, AMin, AMax, AShift, VWidth)
    if sums is not None:
        _window_sums(A[:, up:up + ny, lt:lt + nx, :], sums)


def update_ann(GSyn, coefficients, V, A, lt, up, VThresh, AMin, AMax, AShift, VWidth, sums=None):
    """An ANN (or, with no threshold and no cap, a HyPerLayer) step: V = Σ_ch c_ch GSyn[ch]
    (:func:`accumulate_input`), then A's restricted window = transfer(V) (:func:`apply_transfer`)."""
    accumulate_input(GSyn, coefficients, V)
    apply_transfer(V, A, lt, up, VThresh, AMin, AMax, AShift, VWidth, sums)


def _window_sums(window, sums):
    """sums[b] = the float64 sum of window[b] (finite exactly when every float32 value is)."""
    sums[:] = window.reshape(window.shape[0], -1).sum(axis=1, dtype=np.float64)


def update_lca(V, A, G, exp_tau, self_interact, lt, up, VThresh, AMin, AMax, AShift, VWidth, v_sums=None,
               A_prev=None):
    """HyPerLCALayer step (facts 3.7): ``V ← e*V + (1-e)*(G + s*A)``, then ``A = transfer(V)``.

    ``exp_tau[b]`` is ``exp(-Δ_b*dt/τ)`` of batch element ``b``; ``A`` is
    the previous activity.  Each operation is rounded to float32, in the
    order written.  ``v_sums`` ([nb] float64, optional) receives ΣV per
    batch element (the guard's check of V).  ``A_prev`` holds the previous
    activity when it is not in ``A`` (default ``A``).
    """
    ny, nx = V.shape[1], V.shape[2]
    e = np.asarray(exp_tau, dtype=np.float32).reshape(-1, 1, 1, 1)
    s = _F32(self_interact)
    Ar = (A if A_prev is None else A_prev)[:, up:up + ny, lt:lt + nx, :]
    V[...] = e * V + (_F32(1) - e) * (G + s * Ar)
    apply_transfer(V, A, lt, up, VThresh, AMin, AMax, AShift, VWidth)
    if v_sums is not None:
        _window_sums(V, v_sums)


# ------------------------------------------------------------------- learning

def hebbian_shared(A_pre, A_post, dW, counts, dw_max,
                   xmul, xoff, xdiv, nkx, ymul, yoff, ydiv, nky,
                   lt_pre, up_pre, lt_post, up_post):
    """Hebbian term of shared weights (facts 4.5), added to ``dW`` and ``counts``.

    ``dW[k, py, px, :] += dw_max * a_pre * A_post[post]`` and ``counts += 1``
    for every nonzero extended pre neuron and every post neuron of its
    clipped patch, summed over the batch.  The caller zeroes both arrays.
    """
    nb, nye, nxe, nf = A_pre.shape
    _, nyp, nxp, nfp = dW.shape
    ny, nx = A_post.shape[1] - 2 * up_post, A_post.shape[2] - 2 * lt_post
    post = A_post[:, up_post:up_post + ny, lt_post:lt_post + nx, :]
    dw_max = _F32(dw_max)
    for ky in range(nky):
        ye = _phase(nye, up_pre, nky, ky)
        y0 = (ymul * (ye - up_pre) + yoff) // ydiv
        for kx in range(nkx):
            xe = _phase(nxe, lt_pre, nkx, kx)
            x0 = (xmul * (xe - lt_pre) + xoff) // xdiv
            a = A_pre[:, ye[:, None], xe[None, :], :]
            ks = slice(nf * (kx + nkx * ky), nf * (kx + nkx * ky + 1))
            for py in range(nyp):
                y, my = _clip(y0, py, ny)
                if not my.any():
                    continue
                for px in range(nxp):
                    x, mx = _clip(x0, px, nx)
                    if not mx.any():
                        continue
                    pre = a[:, my][:, :, mx].reshape(-1, nf)
                    q = post[:, y[my][:, None], x[mx][None, :], :].reshape(-1, nfp)
                    dW[ks, py, px, :] += dw_max * (pre.T @ q)
                    counts[ks, py, px, :] += np.count_nonzero(pre, axis=0).astype(np.float32)[:, None]


def hebbian_shared_sparse(offsets, idx, val, nf_pre, nx_ext, A_post, dW, counts, dw_max,
                          xmul, xoff, xdiv, nkx, ymul, yoff, ydiv, nky,
                          lt_pre, up_pre, lt_post, up_post):
    """``hebbian_shared`` from an active list (V1 is sparse): same result, active neurons only."""
    nyp, nxp = dW.shape[1], dW.shape[2]
    ny, nx = A_post.shape[1] - 2 * up_post, A_post.shape[2] - 2 * lt_post
    b, ye, xe, f = _decode(offsets, idx, nf_pre, nx_ext)
    k = f + nf_pre * ((xe - lt_pre) % nkx + nkx * ((ye - up_pre) % nky))
    y0 = (ymul * (ye - up_pre) + yoff) // ydiv
    x0 = (xmul * (xe - lt_pre) + xoff) // xdiv
    da = _F32(dw_max) * val
    for py in range(nyp):
        y, my = _clip(y0, py, ny)
        for px in range(nxp):
            x, mx = _clip(x0, px, nx)
            m = my & mx
            q = A_post[b[m], y[m] + up_post, x[m] + lt_post, :]
            np.add.at(dW[:, py, px, :], k[m], da[m, None] * q)
            np.add.at(counts[:, py, px, :], k[m], np.float32(1))


# --------------------------------------------------------------------- probes

def layer_stats(X, lt, up, ny, nx, nnz_threshold):
    """Per batch element of the restricted window of X: [Σa, Σ|a|, Σa², #|a|>thr, min, max] in float64.

    One pass serves every norm and stats probe of a layer (facts §5.2, §5.5).
    """
    R = X[:, up:up + ny, lt:lt + nx, :].reshape(X.shape[0], -1).astype(np.float64)
    return np.stack([R.sum(axis=1), np.abs(R).sum(axis=1), (R * R).sum(axis=1),
                     (np.abs(R) > nnz_threshold).sum(axis=1), R.min(axis=1), R.max(axis=1)], axis=1)



def firm_threshold_cost(X, lt, up, ny, nx, w):
    """Per batch element of the restricted window of X: Σ c(a) in float64, where
    c(a) = |a|(1 − |a|/(2w)) if |a| < w, else w/2, with w = VThresh + VWidth (facts §5.2)."""
    x = np.abs(X[:, up:up + ny, lt:lt + nx, :].reshape(X.shape[0], -1).astype(np.float64))
    w = float(w)
    inside = x * (1 - x / (2 * w)) if w > 0 else np.zeros_like(x)
    return np.where(x < w, inside, w / 2).sum(axis=1)


def scale_into(dst, src, scale, add, dst_lt=0, dst_up=0, src_lt=0, src_up=0, sums=None):
    """``dst (+)= scale * src`` on the restricted windows of two ``[b, y, x, f]`` buffers.

    Windows start at (up, lt) margins; their size is dst's shape less its
    margins. ``add`` False overwrites. IdentConn, V = G, A = V, resets and
    the weight update are all this one operation. ``sums`` ([nb] float64,
    optional) receives dst's window's sum per batch element afterwards.
    """
    ny, nx = dst.shape[1] - 2 * dst_up, dst.shape[2] - 2 * dst_lt
    d = dst[:, dst_up:dst_up + ny, dst_lt:dst_lt + nx] if dst_lt or dst_up else dst
    s = src[:, src_up:src_up + ny, src_lt:src_lt + nx] if src_lt or src_up else src
    scale = _F32(scale)
    if not add and scale == 1:
        np.copyto(d, s)
    elif not add:
        np.multiply(s, scale, out=d)
    elif scale == 1:
        d += s
    else:
        d += scale * s
    if sums is not None:
        _window_sums(d, sums)


def update_momentum_lca(V, G, A_prev, prev_drive, exp_tau, self_interact, rate, lt, up):
    """MomentumLCALayer's V: drive = (1-e)(G + s*A), V ← e*V + drive + rate*prev_drive, prev_drive ← drive.

    ``A_prev`` is the previous extended activity (margins lt, up); A itself
    is left to the transfer function.
    """
    ny, nx = V.shape[1], V.shape[2]
    e = np.asarray(exp_tau, dtype=np.float32).reshape(-1, 1, 1, 1)
    A = A_prev[:, up:up + ny, lt:lt + nx, :]
    drive = (_F32(1) - e) * (G + _F32(self_interact) * A)
    V[...] = e * V + drive + _F32(rate) * prev_drive
    prev_drive[...] = drive


def vertex_transfer(V, vv, va, slope_neg, slope_pos):
    """Piecewise-linear transfer through (verticesV, verticesA), continuous from the right at jumps."""
    i = np.searchsorted(vv, V, side="right") - 1
    A = np.empty_like(V)
    left = i < 0
    right = i >= len(vv) - 1
    mid = ~(left | right)
    A[left] = va[0] + slope_neg * (V[left] - vv[0])
    A[right] = va[-1] + slope_pos * (V[right] - vv[-1])
    j = i[mid]
    x0, x1, y0, y1 = vv[j], vv[j + 1], va[j], va[j + 1]
    A[mid] = y0 + (y1 - y0) * (V[mid] - x0) / (x1 - x0)
    return A


def apply_vertex_transfer(V, A, lt, up, vv, va, slope_neg, slope_pos):
    """Write :func:`vertex_transfer` of V into A's restricted region (verticesV/verticesA layers)."""
    ny, nx = V.shape[1], V.shape[2]
    A[:, up:up + ny, lt:lt + nx, :] = vertex_transfer(V, np.asarray(vv, np.float32), np.asarray(va, np.float32),
                                                      _F32(slope_neg), _F32(slope_pos))


def momentum_weights(W, dw, prev, a, f, c):
    """MomentumConn's step: new = a*dw + f*prev - c*W; prev ← new; W += new (facts §4.6)."""
    new = _F32(a) * dw + _F32(f) * prev - _F32(c) * W
    prev[...] = new
    W += new


# --------------------------------------------------------------------- RescaleLayer, DropoutLayer

#: rescale_features' methods, by code (RescaleLayer's rescaleMethod)
POINTMEANSTD, POINTRESPONSENORMALIZATION, SOFTMAX, LOGREG, ZEROTONEGATIVE = range(5)
FLT_MIN = _F32(1.17549435e-38)  # OpenPV's softmax starts its maximum here, not at -FLT_MAX


def _windows(dst, src, dst_lt, dst_up, src_lt, src_up):
    ny, nx = dst.shape[1] - 2 * dst_up, dst.shape[2] - 2 * dst_lt
    return (dst[:, dst_up:dst_up + ny, dst_lt:dst_lt + nx], src[:, src_up:src_up + ny, src_lt:src_lt + nx])


def rescale_batch(dst, src, coeffs, dst_lt, dst_up, src_lt, src_up):
    """dst's restricted window = ((src - shift) / div) * scale + offset, per batch element b with
    ``coeffs[b] = (shift, div, scale, offset)`` (float32 [nb, 4]): RescaleLayer's whole-layer methods."""
    d, s = _windows(dst, src, dst_lt, dst_up, src_lt, src_up)
    c = np.asarray(coeffs, _F32).reshape(-1, 4, 1, 1, 1)
    d[...] = ((s - c[:, 0]) / c[:, 1]) * c[:, 2] + c[:, 3]


def rescale_features(dst, src, method, target_mean, target_std, dst_lt, dst_up, src_lt, src_up):
    """dst's restricted window = src rescaled over the features at each position (pointmeanstd,
    pointResponseNormalization, softmax) or neuron by neuron (logreg, zerotonegative); ``method``
    is one of the codes above. A zero spread leaves the values unchanged, as in OpenPV."""
    d, s = _windows(dst, src, dst_lt, dst_up, src_lt, src_up)
    nf = _F32(s.shape[-1])
    if method == POINTMEANSTD:
        mean = s.sum(axis=-1, keepdims=True, dtype=_F32) / nf
        std = np.sqrt(((s - mean) ** 2).sum(axis=-1, keepdims=True, dtype=_F32) / nf)
        with np.errstate(divide="ignore", invalid="ignore"):
            d[...] = np.where(std != 0, (s - mean) * (_F32(target_std) / std) + _F32(target_mean), s)
    elif method == POINTRESPONSENORMALIZATION:
        norm = np.sqrt((s * s).sum(axis=-1, keepdims=True, dtype=_F32))
        with np.errstate(divide="ignore", invalid="ignore"):
            d[...] = np.where(norm != 0, s / norm, s)
    elif method == SOFTMAX:
        e = np.exp(s - np.maximum(s.max(axis=-1, keepdims=True), FLT_MIN))
        total = e.sum(axis=-1, keepdims=True, dtype=_F32)
        with np.errstate(divide="ignore", invalid="ignore"):
            d[...] = np.where((total != 0) & (total == total), e / total, _F32(0))
    elif method == LOGREG:
        d[...] = _F32(1) / (_F32(1) + np.exp(s))
    elif method == ZEROTONEGATIVE:
        d[...] = np.where(s == 0, _F32(-1), s)
    else:
        raise ValueError(f"unknown rescale method code {method}")


def taus88_step(s1, s2, s3):
    """One taus88 step (OpenPV's cl_random_get) on uint32 arrays: new arrays; shifts drop bits > 32."""
    s1 = ((s1 & np.uint32(0xFFFFFFFE)) << np.uint32(12)) ^ (
        ((s1 << np.uint32(13)) ^ s1) >> np.uint32(19))
    s2 = ((s2 & np.uint32(0xFFFFFFF8)) << np.uint32(4)) ^ (
        ((s2 << np.uint32(2)) ^ s2) >> np.uint32(25))
    s3 = ((s3 & np.uint32(0xFFFFFFF0)) << np.uint32(17)) ^ (
        ((s3 << np.uint32(3)) ^ s3) >> np.uint32(11))
    return s1, s2, s3


def dropout(A, rng, probability, lt, up):
    """DropoutLayer: step each restricted neuron's taus88 generator (``rng`` uint32 [4, nb, ny, nx, nf]:
    s0 s1 s2 s3) and zero A where the new s0 % 100 < probability (OpenPV's draw, bit for bit)."""
    s1, s2, s3 = taus88_step(rng[1], rng[2], rng[3])
    rng[1], rng[2], rng[3] = s1, s2, s3
    rng[0] = s1 ^ s2 ^ s3
    ny, nx = rng.shape[2], rng.shape[3]
    a = A[:, up:up + ny, lt:lt + nx]
    a[rng[0] % np.uint32(100) < np.uint32(probability)] = _F32(0)


# --------------------------------------------------------------------- PtwiseQuotientLayer, FirmThresholdCostLayer

QUOTIENT, PRODUCT, SQUARE = range(3)  #: combine_channels' operations


def combine_channels(GSyn, G, op):
    """G = exc / inh, exc * inh or exc² neuron by neuron (``op``: QUOTIENT, PRODUCT, SQUARE): the input of
    PtwiseQuotientLayer, PtwiseProductLayer and ANNSquaredLayer."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if op == QUOTIENT:
            np.divide(GSyn[0], GSyn[1], out=G)
        else:
            np.multiply(GSyn[0], GSyn[1] if op == PRODUCT else GSyn[0], out=G)


def firm_threshold_transfer(V, A, lt, up, VThresh, VWidth):
    """A's restricted window = |v|(1 - |v|·a2) where |v| <= w, else w/2 (w = VThresh + VWidth,
    a2 = 0.5/w in float32, as OpenPV's FirmThresholdCostActivityBuffer)."""
    ny, nx = V.shape[1], V.shape[2]
    w = _F32(VThresh) + _F32(VWidth)
    a2 = _F32(0.5) / w
    x = np.abs(V)
    A[:, up:up + ny, lt:lt + nx] = np.where(x <= w, x * (_F32(1) - x * a2), _F32(0.5) * w)


def deliver_feature_max(A, G, lt, up, add):
    """G[..., 0] (+)= max over features of A's restricted window (WTAConn's delivery; G has nf = 1)."""
    ny, nx = G.shape[1], G.shape[2]
    top = A[:, up:up + ny, lt:lt + nx].max(axis=-1)
    if add:
        G[..., 0] += top
    else:
        G[..., 0] = top


def sigmoid_transfer(V, A, lt, up, Vth, scale, sigmoid, inverse):
    """SigmoidLayer's A on the restricted window: 1/(1 + exp(2(V - Vth)·scale)), or (sigmoid False)
    0.5 - (V - Vth)·scale/2 clipped to [0, 1]; inverse gives 1 - A."""
    ny, nx = V.shape[1], V.shape[2]
    Vth, scale, one = _F32(Vth), _F32(scale), _F32(1)
    if sigmoid:
        a = one / (one + np.exp(_F32(2) * (V - Vth) * scale))
    else:
        a = np.clip(_F32(0.5) - (V - Vth) * scale / _F32(2), _F32(0), one)
    A[:, up:up + ny, lt:lt + nx] = one - a if inverse else a


# --------------------------------------------------------------------- Retina

def retina_rate(GSyn, A, lt, up, gain, base):
    """The non-spiking Retina: A = gain·(exc − inh) + base on the restricted window (gain = the burst
    status times the stimulus probability, base the background probability, float32)."""
    ny, nx = GSyn.shape[2], GSyn.shape[3]
    A[:, up:up + ny, lt:lt + nx] = _F32(gain) * (GSyn[0] - GSyn[1]) + _F32(base)


def retina_spikes(GSyn, A, since, rng, lt, up, dt, prob_base, prob_stim, burst, abs_refractory, refractory):
    """The spiking Retina, neuron by neuron as OpenPV: t = since + dt; within the absolute refractory
    period no spike and no draw; else p = base·r + stim·(exc − inh)·r·burst with r = 1 − exp(−(t − abs)/refractory)
    (at least 0), one draw u = s0/2^32, spike if u < p; since = 0 where it spiked, else t."""
    ny, nx = GSyn.shape[2], GSyn.shape[3]
    t = since + _F32(dt)
    awake = t >= _F32(abs_refractory)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        r = _F32(1) - np.exp(-(t - _F32(abs_refractory)) / _F32(refractory))
    r = np.where(r < 0, _F32(0), r).astype(_F32)
    p = _F32(prob_base) * r + (_F32(prob_stim) * (GSyn[0] - GSyn[1])) * r * _F32(burst)
    s1, s2, s3 = taus88_step(rng[1], rng[2], rng[3])
    s0 = s1 ^ s2 ^ s3
    for i, new in enumerate((s0, s1, s2, s3)):
        rng[i] = np.where(awake, new, rng[i])
    u = rng[0].astype(_F32) / _F32(4294967296.0)
    spike = awake & (u < p)
    A[:, up:up + ny, lt:lt + nx] = spike.astype(_F32)
    since[...] = np.where(spike, _F32(0), t)


def deliver_max_pool(A, G, xtab, ytab, overwrite, active_only, gate=None, x0=0, y0=0, nx_ext=0):
    """PoolingConn's maxpooling: each post neuron takes the largest pre value of its own feature over the
    pre neurons of the post tables (from -inf, or from G without ``overwrite``); with ``active_only``
    zeros do not count (OpenPV's pre-perspective walk of a sparse layer's active list). ``gate`` (float32
    like G, or None) gets the winner's global extended index ((y0 + ye)*nx_ext + x0 + xe)*nf + f, the last
    of equal values as OpenPV's ``<=``; -1 where nothing won."""
    nf = A.shape[3]
    if overwrite:
        G[...] = -np.inf
    if gate is not None:
        gate[...] = -1
    for jy in range(ytab.shape[1]):
        iey = ytab[:, jy, 0][:, None]
        for jx in range(xtab.shape[1]):
            iex = xtab[:, jx, 0][None, :]
            a = A[:, iey, iex, :]
            ok = a != 0 if active_only else np.ones(a.shape, bool)
            if gate is not None:
                win = ok & (G <= a)
                index = ((y0 + iey)[..., None] * nx_ext + (x0 + iex)[..., None]) * nf + np.arange(nf)
                gate[...] = np.where(win, np.broadcast_to(index, win.shape).astype(_F32), gate)
            np.maximum(G, np.where(ok, a, _F32(-np.inf)), out=G)


def unpool_max(A, G, gate, lt, up, g_lt, g_up, q0, x0, y0, nx_ext, margin_x, margin_y):
    """TransposePoolingConn of max pooling: each nonzero A[b, ye, xe, f] inside its global layer (its tile at
    q0 = (qx0, qy0, qnx, qny): offsets and the layer's size), in OpenPV's extended order, goes to the neuron
    the pool's winner ``gate`` names (gate extended by g_lt, g_up; global extended indices of the pooled
    layer: nx_ext wide, margins margin_x/y) when it is on G's tile (at x0, y0) and larger in magnitude."""
    nb, ny, nx, nf = G.shape
    qx0, qy0, qnx, qny = q0
    for b in range(nb):
        for ye, xe, f in zip(*np.nonzero(A[b])):
            gy, gx = ye - up + qy0, xe - lt + qx0
            if not (0 <= gy < qny and 0 <= gx < qnx):
                continue
            k = int(gate[b, g_up + ye - up, g_lt + xe - lt, f])
            if k < 0:
                continue
            px, py, pf = (k // nf) % nx_ext - margin_x - x0, k // (nf * nx_ext) - margin_y - y0, k % nf
            a = A[b, ye, xe, f]
            if 0 <= px < nx and 0 <= py < ny and abs(a) > abs(G[b, py, px, pf]):
                G[b, py, px, pf] = a



# --------------------------------------------------------------------- LIF, LIFGap

#: lif_arma's float32 constants, in order
LIF_CONSTS = ("tau", "Vrest", "Vexc", "Vinh", "VinhB", "VthRest", "deltaVth", "deltaGIB", "noiseAmpE", "noiseAmpI",
              "noiseAmpIB", "probE", "probI", "probIB", "expE", "expI", "expIB", "expVth", "dt")
GMAX = _F32(10)  # OpenPV caps the conductances at 10


def _noise(rng, g, prob, amp):
    """One of OpenPV's noise draws: every generator steps; where s0/2^32 < prob it steps again and
    g += amp * s0/2^32 (the rows of rng change in place; g is a new array)."""
    s1, s2, s3 = taus88_step(rng[1], rng[2], rng[3])
    rng[0], rng[1], rng[2], rng[3] = s1 ^ s2 ^ s3, s1, s2, s3
    hit = rng[0].astype(_F32) / _F32(4294967296.0) < prob
    s1, s2, s3 = taus88_step(rng[1], rng[2], rng[3])
    for i, new in enumerate((s1 ^ s2 ^ s3, s1, s2, s3)):
        rng[i] = np.where(hit, new, rng[i])
    return np.where(hit, g + amp * (rng[0].astype(_F32) / _F32(4294967296.0)), g).astype(_F32)


def _libm(fn, *args):
    """A float32 libm call (expf, powf, logf) as correctly rounded from double."""
    return fn(*(np.asarray(a, np.float64) for a in args)).astype(_F32)


def lif_arma(GSyn, A, V, Vth, G_E, G_I, G_IB, gap, rng, lt, up, consts, with_gap):
    """LIF's 'arma' integration, neuron by neuron in OpenPV's float32 order (facts: LIFActivityComponent).

    The conductances take this step's input (plus noise), decay over dt, and V moves towards the
    conductance-weighted reversal potentials along the ARMA weights f1, f2, f3; a neuron fires when V > Vth
    (A = 1, V = Vrest, Vth += deltaVth, G_IB += deltaGIB). with_gap (LIFGap) adds the gap input GSyn[3]
    and the gap strength ``gap``; plain LIF's final time constant uses the initial G_IB, as OpenPV's does.
    """
    (tau, Vrest, Vexc, Vinh, VinhB, VthRest, dVth, dGIB, aE, aI, aIB, pE, pI, pIB, eE, eI, eIB, eVth,
     dt) = (_F32(v) for v in consts)
    one = _F32(1)
    gE, gI, gIB = _noise(rng, GSyn[0], pE, aE), _noise(rng, GSyn[1], pI, aI), _noise(rng, GSyn[2], pIB, aIB)
    gGap, strength = (GSyn[3], gap) if with_gap else (_F32(0), _F32(0))
    GEi, GIi, GIBi = G_E + gE, G_I + gI, G_IB + gIB
    den_i = one + GEi + GIi + GIBi + strength if with_gap else one + GEi + GIi + GIBi
    tau_i = tau / den_i
    top_i = Vrest + Vexc * GEi + Vinh * GIi + VinhB * GIBi
    v_i = (top_i + gGap if with_gap else top_i) / den_i
    GEi, GIi, GIBi = np.minimum(GEi, GMAX), np.minimum(GIi, GMAX), np.minimum(GIBi, GMAX)
    GEf, GIf, GIBf = GEi * eE, GIi * eI, GIBi * eIB
    den_f = one + GEf + GIf + GIBf + strength if with_gap else one + GEf + GIf + GIBf
    tau_f = tau / (den_f if with_gap else one + GEf + GIf + GIBi)
    top_f = Vrest + Vexc * GEf + Vinh * GIf + VinhB * GIBf
    v_f = (top_f + gGap if with_gap else top_f) / den_f
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # libm's float calls, from double
        slope = (tau_f - tau_i) / dt
        f1 = np.where(slope == 0, _libm(np.exp, -dt / tau_i),
                      _libm(np.power, tau_f / tau_i, -one / slope)).astype(_F32)
        f2 = np.where(slope == -1, tau_i / dt * _libm(np.log, tau_f / tau_i + one),
                      (one - tau_i / dt * (one - f1)) / (one + slope)).astype(_F32)
    f3 = one - f1 - f2
    v = f1 * V + f2 * v_i + f3 * v_f
    th = VthRest + (Vth - VthRest) * eVth
    fired = v > th
    ny, nx = V.shape[1], V.shape[2]
    A[:, up:up + ny, lt:lt + nx] = fired.astype(_F32)
    V[...] = np.where(fired, Vrest, v)
    Vth[...] = np.where(fired, th + dVth, th)
    G_E[...], G_I[...] = GEf, GIf
    G_IB[...] = np.where(fired, GIBf + dGIB, GIBf)


def mask_activity(A, lt, up, M, m_lt, m_up, invert):
    """MaskLayer: zero A's restricted window where M is 0 (``invert``: where M is not 0). M is the mask
    layer's extended activity (margins m_lt, m_up; nf 1 or A's nf) or [1, 1, 1, nf] per feature."""
    ny, nx = A.shape[1] - 2 * up, A.shape[2] - 2 * lt
    m = M if M.shape[:3] == (1, 1, 1) else M[:, m_up:m_up + ny, m_lt:m_lt + nx]
    a = A[:, up:up + ny, lt:lt + nx]
    drop = (m != 0) if invert else (m == 0)
    a[np.broadcast_to(drop, a.shape)] = _F32(0)


def background(A, lt, up, src, s_lt, s_up, rep):
    """BackgroundLayer: A's restricted window [nb, ny, nx, (nf+1)*rep] = rep copies of "no feature is
    active" (1 or 0), then each of src's nf features repeated rep times (src extended: margins s_lt, s_up)."""
    ny, nx = A.shape[1] - 2 * up, A.shape[2] - 2 * lt
    s = src[:, s_up:s_up + ny, s_lt:s_lt + nx]
    a = A[:, up:up + ny, lt:lt + nx]
    a[..., :rep] = (s != 0).any(axis=-1, keepdims=True) == 0
    a[..., rep:] = np.repeat(s, rep, axis=-1)


def spikelet(A, lt, up, V, src, s_lt, s_up, amp):
    """GapLayer: A's restricted window = V (its original's), plus ``amp`` where the original's activity
    ``src`` (extended: margins s_lt, s_up) is positive."""
    ny, nx = V.shape[1], V.shape[2]
    fired = src[:, s_up:s_up + ny, s_lt:s_lt + nx] > 0
    A[:, up:up + ny, lt:lt + nx] = np.where(fired, V + _F32(amp), V)
