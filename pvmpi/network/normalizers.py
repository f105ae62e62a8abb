"""Weight normalizers (``normalizeMethod``), with OpenPV's float32 rounding.

Each data patch (one kernel of shared weights) is scaled so that its L2
norm, sum or max equals ``strength``, over all arbors together unless
``normalizeArborsIndividually``.  Sums are accumulated sequentially in
float32 (arbors outer, elements in order), exactly as OpenPV does, so that
normalised random weights are bit-identical to OpenPV's (facts 3.11(g)).
That is why the sums use a float32 ``cumsum`` and never ``np.sum`` (which
adds pairwise).

OpenPV quirks kept on purpose:

* normalizeL2 with arbors together *stops* at the first patch whose sum of
  squares is <= ``minL2NormTolerated``: that patch and all later patches stay
  unnormalised (a ``break`` in OpenPV).  "Later" is OpenPV's patch order in
  one process; for non-shared weights on a tile the caller passes each
  patch's global number and the reduction that finds the global first.
  Every other case skips only the offending patch.
* normalizeL2 and normalizeMax first apply ``rMinX``/``rMinY``,
  ``nonnegativeConstraintFlag`` and ``normalize_cutoff``; normalizeSum does
  not.
* ``rMinX``/``rMinY`` act only when both exceed 0.5 and zero a centred
  *rectangle* (all features) of ``nxp - 2*ceil((nxp - floor(2*rMinX))/2)``
  columns by the like number of rows, not a disc.
* ``normalize_cutoff`` zeroes ``|w| < cutoff * max|w|`` with the max taken
  over the whole connection (all arbors and patches), not per patch.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from pvmpi.errors import PvmpiError
from pvmpi.network.paramget import get, get_f32

__all__ = ["NORMALIZE_METHODS", "normalize"]

NORMALIZE_METHODS = ("normalizeL2", "normalizeSum", "normalizeMax", "normalizeContrastZeroMean", "none")
_NONE = np.iinfo(np.int64).max  # no failing patch


def _seq_sum(x):
    """Sequential float32 sum along the last axis (OpenPV's accumulation order)."""
    if x.shape[-1] == 0:
        return np.zeros(x.shape[:-1], np.float32)
    return np.cumsum(x, axis=-1, dtype=np.float32)[..., -1]


def normalize(W, method, params=None, *, num_pre=None, num_post=None, name=None, warn=None,
              order=None, first_of_all=None):
    """Normalise weights ``W`` (float32 ``[arbors, nk, nyp, nxp, nfp]``) in place.

    ``num_pre``/``num_post`` (neuron counts of the pre and post layers) are
    needed only with ``normalizeFromPostPerspective``, which multiplies the
    target by ``num_post/num_pre``.  ``warn`` receives each warning text
    (default: :func:`warnings.warn`).  ``order`` (int64 ``[nk]``, default
    0..nk-1) numbers the patches in OpenPV's order, and ``first_of_all`` maps
    this tile's first failing number to the first over all tiles (collective;
    default: the tile is everything). Returns ``W``.
    """
    params = params or {}
    if method in (None, "", "none", "NULL"):
        return W
    if method not in NORMALIZE_METHODS:
        raise PvmpiError(f"unsupported normalizeMethod {method!r}", group=name,
                         param="normalizeMethod", hint="one of " + ", ".join(NORMALIZE_METHODS))
    if not isinstance(W, np.ndarray) or W.dtype != np.float32 or W.ndim != 5:
        raise TypeError("W must be a float32 array [arbors, nk, nyp, nxp, nfp]")
    warn = warn or (lambda msg: warnings.warn(msg, stacklevel=3))
    label = name or method

    scale = np.float32(1)
    if get(params, "normalizeFromPostPerspective", "HyPerConn"):
        if not num_pre or not num_post:
            raise PvmpiError("normalizeFromPostPerspective needs the pre and post layer sizes",
                             group=name, param="normalizeFromPostPerspective")
        scale = np.float32(num_post) / np.float32(num_pre)
    scale = scale * get_f32(params, "strength", "HyPerConn")

    if method in ("normalizeL2", "normalizeMax"):
        _preprocess(W, params)

    arbors, nk = W.shape[:2]
    individually = bool(get(params, "normalizeArborsIndividually", "HyPerConn"))
    # Patch data in accumulation order: [arbor-group, nk, elements], arbors outer.
    groups = [W[a:a + 1] for a in range(arbors)] if individually else [W]
    for gi, Wg in enumerate(groups):
        flat = np.moveaxis(Wg, 1, 0).reshape(nk, -1)  # [nk, arbors_in_group * P]
        where = f" of arbor {gi}" if individually else ""
        if method == "normalizeL2":
            tol = get_f32(params, "minL2NormTolerated", "HyPerConn")
            sumsq = _seq_sum(flat * flat)
            l2 = np.sqrt(sumsq)
            # arbors together: OpenPV tests sumsq and stops at the first failure
            bad = (np.abs(l2) <= tol) if individually else (np.abs(sumsq) <= tol)
            with np.errstate(divide="ignore"):
                mult = scale / l2
        elif method == "normalizeSum":
            tol = get_f32(params, "minSumTolerated", "HyPerConn")
            total = _seq_sum(flat)
            bad = np.abs(total) <= tol
            with np.errstate(divide="ignore"):
                mult = scale / total
        elif method == "normalizeContrastZeroMean":
            _contrast_zero_mean(flat, Wg, get_f32(params, "strength", "HyPerConn"),  # no post perspective
                                get_f32(params, "minSumTolerated", "HyPerConn"), label, where, warn)
            continue
        else:
            tol = get_f32(params, "minMaxTolerated", "HyPerConn")
            peak = np.maximum(flat.max(axis=1, initial=-np.inf), np.float32(0)).astype(np.float32)
            bad = peak <= tol
            with np.errstate(divide="ignore"):
                mult = scale / peak
        apply = ~bad
        if method == "normalizeL2" and not individually:
            numbers = np.arange(nk, dtype=np.int64) if order is None else order
            first = int(numbers[bad].min()) if bad.any() else _NONE
            if first_of_all is not None:
                first = first_of_all(first)
            apply &= numbers < first
            if bad.any():
                warn(f"{label}: sum of squares of weights in patch {first} is within "
                     f"minL2NormTolerated={float(tol)} of zero; that patch and all later "
                     f"patches are left unnormalized (OpenPV behaviour)")
        else:
            for k in np.flatnonzero(bad):
                warn(f"{label}: {method} of patch {k}{where} is within tolerance "
                     f"{float(tol)} of zero; weights in this patch unchanged")
        mult = mult.astype(np.float32)
        sel = np.flatnonzero(apply)
        if sel.size:
            Wg[:, sel] *= mult[sel][None, :, None, None, None]
    return W


def _contrast_zero_mean(flat, Wg, strength, tol, label, where, warn):
    """normalizeContrastZeroMean on one arbor group: each patch (``flat`` [nk, elements], sums in OpenPV's
    float32 order) becomes (w - mean) / (std / strength); a patch whose |sum| <= tol is left alone."""
    total = _seq_sum(flat)
    sumsq = _seq_sum(flat * flat)
    count = np.float32(flat.shape[1])
    mean = total / count
    std = np.sqrt(sumsq / count - mean * mean) / strength
    bad = np.abs(total) <= tol
    for k in np.flatnonzero(bad):
        warn(f"{label}: the sum of the weights in patch {k}{where} is within minSumTolerated={float(tol)} of "
             f"zero; weights in this patch unchanged")
    sel = np.flatnonzero(~bad)
    shape = (1, -1, 1, 1, 1)
    Wg[:, sel] = (Wg[:, sel] - mean[sel].reshape(shape)) / std[sel].reshape(shape)


def _preprocess(W, params):
    """NormalizeMultiply's steps before L2/Max: rMin box, clip negatives, cutoff."""
    rminx, rminy = get_f32(params, "rMinX", "HyPerConn"), get_f32(params, "rMinY", "HyPerConn")
    if rminx > np.float32(0.5) and rminy > np.float32(0.5):
        nyp, nxp = W.shape[2], W.shape[3]
        # a box wider than the patch (undefined in OpenPV) is clipped to the patch
        offx = max(0, math.ceil((nxp - math.floor(np.float32(2) * rminx)) / 2.0))
        offy = max(0, math.ceil((nyp - math.floor(np.float32(2) * rminy)) / 2.0))
        wx, wy = nxp - 2 * offx, nyp - 2 * offy
        if wx > 0 and wy > 0:
            W[:, :, offy:offy + wy, offx:offx + wx, :] = 0
    if get(params, "nonnegativeConstraintFlag", "HyPerConn"):
        W[W < 0] = 0
    cutoff = get_f32(params, "normalize_cutoff", "HyPerConn")
    if cutoff > 0:
        peak = np.float32(max(float(np.abs(W).max(initial=0.0)), 0.0))
        W[np.abs(W) < peak * cutoff] = 0
