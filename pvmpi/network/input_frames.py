"""The pixel pipeline of OpenPV's ImageLayer/PvpLayer, per batch element (facts 3.9b(b)).

:func:`prepare_frame` turns one decoded, feature-converted image into the
global layer-size data ``D`` and region mask ``R`` (resize, anchor, offsets,
normalisation, inversion), with every float operation rounded to float32 on
its own as OpenPV's C++ does. :func:`fill_extended` then writes one rank's
tile of it into that rank's extended activity buffer. Because the whole frame
is prepared before it is cut, the values never depend on the MPI layout.

:class:`Jitter` draws OpenPV's random shifts and flips (facts 3.9b(c)
"Jitter"); :func:`prepare_frame` applies them.
"""
import numpy as np

from pvmpi.errors import PvmpiError

F32 = np.float32
PARAMS = ("offsetAnchor", "offsetX", "offsetY", "autoResizeFlag", "aspectRatioAdjustment",
          "interpolationMethod", "inverseFlag", "normalizeLuminanceFlag", "normalizeStdDev",
          "useInputBCflag")


def parse_anchor(anchor):
    """``offsetAnchor`` -> (y letter, x letter) from {t,c,b} x {l,c,r}, either order, any case."""
    text = str(anchor).lower()
    if len(text) == 2:
        for ya, xa in ((text[0], text[1]), (text[1], text[0])):
            if ya in "tcb" and xa in "lcr":
                return ya, xa
    raise PvmpiError(f"bad offsetAnchor \"{anchor}\"", param="offsetAnchor",
                     hint="two letters, one of t/c/b and one of l/c/r, e.g. \"tl\" or \"cc\"")


def anchor_offset(letter, outer, inner):
    """Offset that places size ``inner`` inside size ``outer`` at the anchor letter."""
    if letter in "tl":
        return 0
    if letter == "c":
        return outer // 2 - inner // 2
    return outer - inner


def window(a, oy, ox, h, w):
    """The ``h x w`` window of ``a`` starting at (oy, ox); outside ``a`` is 0.

    Crop is a window with a non-negative start; grow is a window with a
    negative start. Both keep D and R aligned.
    """
    out = np.zeros((h, w) + a.shape[2:], a.dtype)
    y0, y1 = max(oy, 0), min(oy + h, a.shape[0])
    x0, x1 = max(ox, 0), min(ox + w, a.shape[1])
    if y1 > y0 and x1 > x0:
        out[y0 - oy:y1 - oy, x0 - ox:x1 - ox] = a[y0:y1, x0:x1]
    return out


def fit(a, h, w, anchor):
    """Crop or grow ``a`` to ``h x w`` around the anchor (per dimension)."""
    ya, xa = anchor
    return window(a, -anchor_offset(ya, h, a.shape[0]), -anchor_offset(xa, w, a.shape[1]),
                  h, w)


def translate(a, dx, dy):
    """Move pixel (x, y) to (x+dx, y+dy); vacated pixels become 0."""
    return window(a, -dy, -dx, a.shape[0], a.shape[1])


def cubic_weight(u):
    """Keys cubic kernel with a = -1, float32 operation by operation."""
    u = np.abs(np.asarray(u, F32))
    near = F32(1) + (u * u) * (u - F32(2))
    far = F32(4) + u * ((u * (F32(5) - u)) - F32(8))
    return np.where(u < 1, near, np.where(u < 2, far, F32(0))).astype(F32)


def _grid(n_in, n_out):
    """Align-corners source coordinates X_k = f32(d*k)."""
    d = F32(n_in - 1) / F32(n_out - 1) if n_out > 1 else F32(0)  # 1: undefined in OpenPV
    return F32(d) * np.arange(n_out, dtype=F32)


def _taps(n_in, n_out):
    """Source indices and weights of the 4 bicubic taps, offsets 2, 1, 0, -1."""
    pos = _grid(n_in, n_out)
    base = np.floor(pos)
    t = pos - base
    base = base.astype(np.int64)
    taps = []
    for o in (2, 1, 0, -1):
        j = base + o
        j = np.where(j < 0, -j, np.where(j >= n_in, 2 * n_in - 1 - j, j))
        taps.append((np.clip(j, 0, n_in - 1), cubic_weight(t - F32(o))))
    return taps


def bicubic(a, h, w):
    """Resize ``a [h0, w0, f]`` to ``h x w`` exactly as OpenPV's bicubic rescale.

    Accumulates from 0 with the x offset outer and the y offset inner.
    """
    a = np.asarray(a, F32)
    xt, yt = _taps(a.shape[1], w), _taps(a.shape[0], h)
    acc = np.zeros((h, w, a.shape[2]), F32)
    for jx, wx in xt:
        cols = a[:, jx]
        for jy, wy in yt:
            acc += (wx[None, :, None] * wy[:, None, None]) * cols[jy]
    return acc


def nearest(a, h, w):
    """Nearest-neighbour resize on the same grid, source index rint(X_k)."""
    ix = np.clip(np.rint(_grid(a.shape[1], w)).astype(np.int64), 0, a.shape[1] - 1)
    iy = np.clip(np.rint(_grid(a.shape[0], h)).astype(np.int64), 0, a.shape[0] - 1)
    return a[iy][:, ix]


def normalize(d, r, luminance, std_dev, inverse):
    """Normalise and invert the valid samples (r > 0) in place, as OpenPV does."""
    valid = r > 0
    v = d[valid]  # [y][x][f] order, features pooled
    n = v.size
    if n == 0:
        return d
    if luminance and std_dev:
        total = np.cumsum(v, dtype=F32)[-1]  # sequential float32 sums, not pairwise
        sumsq = np.cumsum(v * v, dtype=F32)[-1]
        mean = F32(total / F32(n))
        v = v - mean
        var = F32(F32(sumsq / F32(n)) - F32(mean * mean))
        v = v / np.sqrt(var) if var > 0 else np.zeros_like(v)
    elif luminance:
        lo, hi = v.min(), v.max()
        if hi > lo:
            v = (v - lo) * F32(F32(1) / F32(hi - lo))
        else:
            v = np.zeros_like(v)
    if inverse:
        v = -v if luminance else F32(v.max() + v.min()) - v
    d[valid] = v
    return d


class Jitter:
    """OpenPV's input jitter: a random shift and optional mirror flips per global batch element.

    Active when ``jitterChangeInterval`` J > 0; the draws change at every
    frame load where ``rint(t/dt)`` is a multiple of the interval, J steps
    (unit "timestep") or J*displayPeriod steps (unit "displayPeriod").
    One ``std::mt19937`` seeded with the layer's ``randomSeed`` alone draws,
    for each global batch element in turn: shiftX = -maxShiftX +
    g() % (2*maxShiftX+1), shiftY likewise (drawn even when the maximum is
    0), then, if enabled, flipX (inverted if xFlipToggle, else g() % 100 > 50,
    a 49 % chance), then flipY. Flips start false.

    OpenPV draws on the root of each I/O block for that block's batch
    elements; pvmpi writes global files (one block), and every rank draws
    the same numbers for all elements, so any layout gives the same frames.
    """

    def __init__(self, *, nbatch, interval, unit, display_period, max_shift_x, max_shift_y,
                 x_flip_enabled, y_flip_enabled, x_flip_toggle, y_flip_toggle, seed):
        from .batch_indexer import mt19937

        steps = int(interval)
        if str(unit).lower() == "displayperiod":
            steps *= int(round(display_period))  # OpenPV's displayPeriod is an int
        self.interval = steps  # <= 0: no jitter
        self.max_x, self.max_y = int(max_shift_x), int(max_shift_y)
        self.flip_enabled = (bool(x_flip_enabled), bool(y_flip_enabled))
        self.flip_toggle = (bool(x_flip_toggle), bool(y_flip_toggle))
        self.rng = mt19937(int(seed) & 0xFFFFFFFF)
        self.shift_x = np.zeros(nbatch, np.int64)
        self.shift_y = np.zeros(nbatch, np.int64)
        self.flip_x = np.zeros(nbatch, bool)
        self.flip_y = np.zeros(nbatch, bool)

    @classmethod
    def from_params(cls, params, nbatch, seed):
        """A Jitter from an input layer's params (jitterChangeInterval, maxShiftX, xFlipEnabled, ...)."""
        return cls(nbatch=nbatch, interval=params["jitterChangeInterval"],
                   unit=params["jitterChangeIntervalUnit"], display_period=params["displayPeriod"],
                   max_shift_x=params["maxShiftX"], max_shift_y=params["maxShiftY"],
                   x_flip_enabled=params["xFlipEnabled"], y_flip_enabled=params["yFlipEnabled"],
                   x_flip_toggle=params["xFlipToggle"], y_flip_toggle=params["yFlipToggle"], seed=seed)

    @property
    def active(self):
        return self.interval > 0

    def due(self, t, dt):
        """Whether new shifts and flips are drawn at t: jitter on and rint(t/dt) a multiple of the interval."""
        return self.active and int(np.rint(t / dt)) % self.interval == 0

    def load(self, t, dt):
        """Called at every frame load (t = 0 and each update): draw anew when due."""
        if not self.due(t, dt):
            return
        g = self.rng
        for b in range(len(self.shift_x)):
            self.shift_x[b] = g() % (2 * self.max_x + 1) - self.max_x
            self.shift_y[b] = g() % (2 * self.max_y + 1) - self.max_y
            for flips, enabled, toggle in ((self.flip_x, self.flip_enabled[0], self.flip_toggle[0]),
                                           (self.flip_y, self.flip_enabled[1], self.flip_toggle[1])):
                if enabled:
                    flips[b] = not flips[b] if toggle else g() % 100 > 50

    def of(self, g):
        """Keyword arguments of :func:`prepare_frame` for global batch element g."""
        return {"jitter_x": int(self.shift_x[g]), "jitter_y": int(self.shift_y[g]),
                "flip_x": bool(self.flip_x[g]), "flip_y": bool(self.flip_y[g])}

    def state(self):
        """The generator's state and every element's shifts and flips, as JSON-able values for a checkpoint."""
        return {"rng": self.rng.state(), "shift_x": self.shift_x.tolist(), "shift_y": self.shift_y.tolist(),
                "flip_x": self.flip_x.tolist(), "flip_y": self.flip_y.tolist()}

    def set_state(self, state):
        """Restore :meth:`state`; with another nbatch, element g takes saved element g mod n."""
        self.rng.set_state(state["rng"])
        for name in ("shift_x", "shift_y", "flip_x", "flip_y"):
            saved = np.asarray(state[name])
            mine = getattr(self, name)
            mine[...] = saved[np.arange(len(mine)) % len(saved)]


def prepare_frame(data, *, nx_global, ny_global, margin_x, margin_y, params, jitter_x=0, jitter_y=0,
                  flip_x=False, flip_y=False):
    """Global target-size data D and region mask R (float32) of one frame.

    ``data`` is the decoded ``[h, w, nf]`` image (already feature-converted),
    ``params`` the ImageLayer parameters named as in OpenPV (see ``PARAMS``;
    all are required, defaults live in the model schema). With
    ``useInputBCflag`` the result has the extended size, margins included.
    ``jitter_x``/``jitter_y`` add to the translation (-offsetX + jitter_x,
    -offsetY + jitter_y); ``flip_x``/``flip_y`` mirror the fitted frame.
    """
    missing = [p for p in PARAMS if p not in params]
    if missing:
        raise KeyError(f"prepare_frame needs the parameters {missing}")
    anchor = parse_anchor(params["offsetAnchor"])
    method = str(params["interpolationMethod"])
    if method.lower() not in ("bicubic", "nearestneighbor"):
        raise PvmpiError(f"unknown interpolationMethod \"{method}\"",
                         param="interpolationMethod", hint="use bicubic or nearestNeighbor")
    aspect = str(params["aspectRatioAdjustment"])
    if aspect.lower() not in ("crop", "pad"):
        raise PvmpiError(f"unknown aspectRatioAdjustment \"{aspect}\"",
                         param="aspectRatioAdjustment", hint="use crop or pad")
    use_bc = bool(params["useInputBCflag"])
    W = nx_global + (2 * margin_x if use_bc else 0)
    H = ny_global + (2 * margin_y if use_bc else 0)
    d = np.asarray(data, F32)
    if d.ndim == 2:
        d = d[..., None]
    r = np.ones_like(d)
    dx, dy = -int(params["offsetX"]) + int(jitter_x), -int(params["offsetY"]) + int(jitter_y)
    if params["autoResizeFlag"]:
        h, w = d.shape[:2]
        rx, ry = F32(W) / F32(w), F32(H) / F32(h)
        s = max(rx, ry) if aspect.lower() == "crop" else min(rx, ry)
        w2, h2 = int(np.rint(F32(s * F32(w)))), int(np.rint(F32(s * F32(h))))
        resize = bicubic if method.lower() == "bicubic" else nearest
        d, r = resize(d, h2, w2), resize(r, h2, w2)
        d, r = fit(d, H, W, anchor), fit(r, H, W, anchor)
        d, r = translate(d, dx, dy), translate(r, dx, dy)
    else:
        h, w = max(d.shape[0], H), max(d.shape[1], W)
        d, r = fit(d, h, w, anchor), fit(r, h, w, anchor)
        d, r = translate(d, dx, dy), translate(r, dx, dy)
        d, r = fit(d, H, W, anchor), fit(r, H, W, anchor)
    if flip_x or flip_y:
        axes = tuple(a for a, on in ((1, flip_x), (0, flip_y)) if on)
        d, r = np.flip(d, axes), np.flip(r, axes)
    d = normalize(d, r, bool(params["normalizeLuminanceFlag"]), bool(params["normalizeStdDev"]),
                  bool(params["inverseFlag"]))
    return d, r


def fill_extended(A_b, D, R, *, pad_value, margin_x, margin_y, use_input_bc, x0, y0):
    """Write one batch element's extended activity tile from the global D, R.

    The tile covers global restricted columns x0.. and rows y0..; the whole
    buffer gets ``pad_value`` first, then the valid samples are copied into
    the restricted part, or over the whole tile with ``use_input_bc`` (D then
    has the extended global size, so the tile's window starts at (y0, x0)).
    """
    A_b[...] = pad_value
    dst, d, r = tile_window(A_b, D, R, margin_x=margin_x, margin_y=margin_y, use_input_bc=use_input_bc,
                            x0=x0, y0=y0)
    np.copyto(dst, d, where=r > 0)
    return A_b


def tile_window(A_b, D, R, *, margin_x, margin_y, use_input_bc, x0, y0):
    """The part of one batch element's extended tile a frame covers, and the frame's D and R there:
    the restricted part, or the whole tile with ``use_input_bc`` (D, R then of the extended global size)."""
    ny = A_b.shape[0] - 2 * margin_y
    nx = A_b.shape[1] - 2 * margin_x
    if use_input_bc:
        dst = A_b
        src = (slice(y0, y0 + ny + 2 * margin_y), slice(x0, x0 + nx + 2 * margin_x))
    else:
        dst = A_b[margin_y:margin_y + ny, margin_x:margin_x + nx]
        src = (slice(y0, y0 + ny), slice(x0, x0 + nx))
    d, r = D[src], R[src]
    if d.shape != dst.shape:
        raise ValueError(f"tile {dst.shape} at ({y0}, {x0}) does not fit the frame {D.shape}")
    return dst, d, r
