"""Pre→post index geometry of connections, one axis at a time (facts 4.1).

OpenPV connects a pre layer to a post layer whose sizes differ by a power of
two along each axis.  Everything the kernels need about that mapping is
three integers per axis — post start of pre neuron ``i`` is
``(mul*i + off) // div`` (floor) — plus the kernel count and the margin the
pre layer must carry.  This module computes them, the post-perspective
tables, and the weights of a TransposeConn.  Pure numpy; works on local
(tile) sizes because tile origins are multiples of every ratio.
"""
from dataclasses import dataclass

import numpy as np

from pvmpi.errors import PvmpiError

__all__ = ["AxisMap", "axis_map", "post_table", "transpose_weights"]


@dataclass(frozen=True)
class AxisMap:
    """The pre→post map of a connection along one axis.

    ``start(i)`` is the first post index reached by restricted pre index
    ``i`` (``i`` may lie in the margin: negative or ``>= n_pre``); the patch
    covers ``patch`` consecutive post indices from there.  ``n_kernels`` is
    the number of distinct shared-weight kernels along the axis, ``margin``
    the pre margin needed so that every post neuron sees all its inputs, and
    ``patch_post`` the number of pre neurons feeding one post neuron (the
    patch size of the transpose).
    """

    n_pre: int
    n_post: int
    patch: int
    mul: int
    off: int
    div: int
    n_kernels: int
    margin: int
    patch_post: int

    @property
    def kind(self):
        """'one-to-one', 'one-to-many' or 'many-to-one'."""
        if self.n_pre == self.n_post:
            return "one-to-one"
        return "one-to-many" if self.n_post > self.n_pre else "many-to-one"

    def start(self, i):
        """First post index of restricted pre index ``i`` (int or int array)."""
        return (self.mul * i + self.off) // self.div

    def kernel(self, ie, pre_margin):
        """Kernel index along the axis of extended pre index ``ie``."""
        return (ie - pre_margin) % self.n_kernels


def _power_of_two(n):
    return n >= 1 and (n & (n - 1)) == 0


def axis_map(n_pre, n_post, patch):
    """Build the :class:`AxisMap` of one axis; raise PvmpiError if OpenPV would refuse it.

    The caller adds the connection/parameter names to the error.
    """
    n_pre, n_post, patch = int(n_pre), int(n_post), int(patch)
    if n_pre < 1 or n_post < 1:
        raise PvmpiError(f"layer sizes must be positive (pre {n_pre}, post {n_post})")
    if patch < 1:
        raise PvmpiError(f"patch size {patch} must be at least 1", hint="set nxp/nyp >= 1")
    if n_pre == n_post:
        if patch % 2 == 0:
            raise PvmpiError(
                f"patch size {patch} must be odd for a one-to-one connection (pre and post both {n_pre})",
                hint=f"use {patch - 1} or {patch + 1}",
            )
        h = (patch - 1) // 2
        return AxisMap(n_pre, n_post, patch, 1, -h, 1, 1, h, patch)
    if n_post > n_pre:
        t = n_post // n_pre
        if t * n_pre != n_post or not _power_of_two(t):
            raise PvmpiError(
                f"post size {n_post} is not a power-of-two multiple of pre size {n_pre}",
                hint="layer sizes (nxScale/nyScale) must be equal or differ by a factor 2^k",
            )
        if patch % t:
            lo = patch - patch % t
            raise PvmpiError(
                f"patch size {patch} must be a multiple of {t} for a one-to-many connection (pre {n_pre}, post {n_post})",
                hint=f"use {lo} or {lo + t}" if lo else f"use {t}",
            )
        return AxisMap(n_pre, n_post, patch, t, -((patch - t) // 2), 1, 1, (patch // t) // 2, patch // t)
    s = n_pre // n_post
    if s * n_post != n_pre or not _power_of_two(s):
        raise PvmpiError(
            f"pre size {n_pre} is not a power-of-two multiple of post size {n_post}",
            hint="layer sizes (nxScale/nyScale) must be equal or differ by a factor 2^k",
        )
    return AxisMap(n_pre, n_post, patch, 1, -(s // 2) * (patch - 1), s, s, (patch - 1) * s // 2, patch * s)


def post_table(amap, pre_margin):
    """For every post index, the pre neurons that reach it along this axis.

    Returns int32 ``[n_post, patch_post, 3]``: rows of (extended pre index
    ``ie``, patch index ``p``, kernel index along the axis), ordered by
    ``ie``, with ``start(ie - pre_margin) + p == x``.  Post-perspective
    delivery gathers through it, so each post neuron is written by one
    thread only.
    """
    pre_margin = int(pre_margin)
    if pre_margin < amap.margin:
        raise ValueError(f"pre margin {pre_margin} is smaller than the required {amap.margin}")
    ie = np.arange(amap.n_pre + 2 * pre_margin)
    x0 = amap.start(ie - pre_margin)
    p = np.arange(amap.patch)
    x = x0[:, None] + p[None, :]
    ie2 = np.broadcast_to(ie[:, None], x.shape)
    p2 = np.broadcast_to(p[None, :], x.shape)
    keep = (x >= 0) & (x < amap.n_post)
    x, ie2, p2 = x[keep], ie2[keep], p2[keep]
    order = np.lexsort((ie2, x))
    x, ie2, p2 = x[order], ie2[order], p2[order]
    if not np.all(np.bincount(x, minlength=amap.n_post) == amap.patch_post):
        raise AssertionError("post table rows are incomplete; geometry is inconsistent")
    table = np.empty((amap.n_post, amap.patch_post, 3), dtype=np.int32)
    table[..., 0] = ie2.reshape(amap.n_post, amap.patch_post)
    table[..., 1] = p2.reshape(amap.n_post, amap.patch_post)
    table[..., 2] = amap.kernel(table[..., 0], pre_margin)
    return table


def _transpose_axis(amap):
    """Index map of one axis: original (kernel, patch index) for each (transpose kernel, patch index).

    For a representative transpose-pre index ``j`` of each transpose kernel
    the transpose patch reaches original-pre index ``i = start_T(j) + q``;
    the original weight is the one of ``i`` at patch index ``j - start(i)``.
    Shared weights are translation invariant, so one representative suffices.
    """
    tmap = axis_map(amap.n_post, amap.n_pre, amap.patch_post)
    j = np.arange(tmap.n_kernels)[:, None]
    i = tmap.start(j) + np.arange(tmap.patch)[None, :]
    p = j - amap.start(i)
    if p.min() < 0 or p.max() >= amap.patch:
        raise AssertionError("transpose geometry does not invert the original")
    return tmap, i % amap.n_kernels, p


def transpose_weights(W, xmap, ymap, nf_pre):
    """Shared weights of the TransposeConn of a connection: ``w_T[b→a] = w[a→b]``.

    ``W`` is the original's ``[arbor, nk, nyp, nxp, nfp]`` with AxisMaps
    ``xmap``/``ymap``; the result is ``[arbor, nk_T, nyp_T, nxp_T, nf_pre]``
    for the transpose's own maps ``axis_map(n_post, n_pre, patch_post)``.
    """
    W = np.asarray(W)
    if W.ndim != 5:
        raise ValueError(f"W must be [arbor, kernel, nyp, nxp, nfp], got shape {W.shape}")
    narb, nk, nyp, nxp, nfp = W.shape
    if (nyp, nxp) != (ymap.patch, xmap.patch) or nk != nf_pre * xmap.n_kernels * ymap.n_kernels:
        raise ValueError(f"W shape {W.shape} does not match the axis maps and nf_pre={nf_pre}")
    txmap, kx, px = _transpose_axis(xmap)
    tymap, ky, py = _transpose_axis(ymap)
    W7 = W.reshape(narb, ymap.n_kernels, xmap.n_kernels, nf_pre, nyp, nxp, nfp)
    # Advanced indices [kyT, qy, 1, 1] and [1, 1, kxT, qx] broadcast to
    # [kyT, qy, kxT, qx]; numpy puts those dims after the arbor slice.
    ky_i, py_i = ky[:, :, None, None], py[:, :, None, None]
    kx_i, px_i = kx[None, None, :, :], px[None, None, :, :]
    g = W7[:, ky_i, kx_i, :, py_i, px_i, :]  # [kyT, qy, kxT, qx, arbor, nf_pre, nfp]
    g = np.moveaxis(g, 4, 0)  # [arbor, kyT, qy, kxT, qx, nf_pre, nfp]
    # Transpose kernel index is fb + nfp*(kxT + nkxT*kyT): order [kyT, kxT, fb].
    WT = g.transpose(0, 1, 3, 6, 2, 4, 5)  # [arbor, kyT, kxT, fb, qy, qx, fa]
    nk_t = tymap.n_kernels * txmap.n_kernels * nfp
    return np.ascontiguousarray(WT.reshape(narb, nk_t, tymap.patch, txmap.patch, nf_pre), dtype=W.dtype)
