"""The figures of ``python -m pvmpi plot``, one function per kind, each writing one PNG.

Matplotlib is imported only inside these functions, and through its
object-oriented API (``matplotlib.figure.Figure`` rendered by Agg), so
importing pvmpi needs no matplotlib and plotting never changes the pyplot
backend of the caller (a notebook, say). Every figure has a title, labelled
axes with units, and a fixed size in pixels (``size_px``) so that tests and
web pages can rely on it.
"""
import math
import warnings

import numpy as np

DPI = 100
TIME_LABEL = "simulated time (dt units)"


def _figure(width_in, height_in):
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")


def _save(fig, path):
    fig.savefig(path, dpi=DPI, facecolor="white")
    return str(path)


# --------------------------------------------------------------------------- dictionary tableau

def feature_grid(nfp):
    """(columns, rows) of the grid a kernel's nfp features are laid out in: one row up to 3, then
    near-square, so a many-feature kernel is not squashed into a thin strip."""
    if nfp <= 3:
        return nfp, 1
    fc = math.ceil(math.sqrt(nfp))
    return fc, math.ceil(nfp / fc)


def tableau_image(W, order=None, pad=1, background=np.nan):
    """The kernels of one arbor as one mosaic image, each normalised on its own.

    ``W`` is float [kernels, nyp, nxp, nfp]. Each kernel is divided by its
    own max |w| and mapped to [0, 1] with 0 at mid-gray (0.5). Colour when
    nfp == 3; otherwise a kernel's features are laid out by :func:`feature_grid`.
    Returns (image [H, W] or [H, W, 3] in [0, 1], grid columns, grid rows);
    the gaps between kernels hold ``background`` (NaN: drawn white).
    """
    W = np.asarray(W, np.float64)
    n, nyp, nxp, nfp = W.shape
    if order is not None:
        W = W[np.asarray(order)]
    scale = np.abs(W).reshape(n, -1).max(axis=1)
    scale[scale == 0] = 1.0
    K = 0.5 + 0.5 * W / scale[:, None, None, None]
    colour = nfp == 3
    if not colour:  # a kernel's features in a near-square grid (side by side for a few)
        fc, fr = feature_grid(nfp)
        F = np.full((n, fr * fc, nyp, nxp), 0.5)
        F[:, :nfp] = K.transpose(0, 3, 1, 2)
        K = F.reshape(n, fr, fc, nyp, nxp).transpose(0, 1, 3, 2, 4).reshape(n, fr * nyp, fc * nxp)
    cols = max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / cols))
    kh, kw = K.shape[1], K.shape[2]
    shape = (rows * (kh + pad) + pad, cols * (kw + pad) + pad) + ((3,) if colour else ())
    img = np.full(shape, background)
    for i in range(n):
        r, c = divmod(i, cols)
        y, x = pad + r * (kh + pad), pad + c * (kw + pad)
        img[y:y + kh, x:x + kw] = K[i]
    return img, cols, rows


def plot_tableau(W, path, title, order=None, subtitle=None):
    """The dictionary as a tableau of kernels ([kernels, nyp, nxp, nfp]); writes a PNG."""
    n, nyp, nxp, nfp = np.shape(W)
    img, cols, rows = tableau_image(W, order)
    fig = _figure(8, 8.6)
    ax = fig.add_subplot()
    colour = img.ndim == 3
    if colour:
        img = np.where(np.isnan(img), 1.0, img)
        cmap = None
    else:
        from matplotlib import colormaps

        cmap = colormaps["gray"].with_extremes(bad="white")
    im = ax.imshow(img, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title + (f"\n{subtitle}" if subtitle else ""), fontsize=11)
    fc, fr = (1, 1) if colour else feature_grid(nfp)
    kh = nyp * fr + 1
    kw = nxp * fc + 1
    step = max(1, cols // 8)
    ax.set_xticks([1 + c * kw + (kw - 1) / 2 for c in range(0, cols, step)],
                  [str(c) for c in range(0, cols, step)])
    ax.set_yticks([1 + r * kh + (kh - 1) / 2 for r in range(0, rows, step)],
                  [str(r * cols) for r in range(0, rows, step)])
    ax.set_xlabel(f"grid column (+ kernel index); each kernel {nyp}x{nxp} pixels of the post layer"
                  + ("" if colour or nfp == 1 else f", its {nfp} features in {fr} row(s) of {fc}"), fontsize=9)
    ax.set_ylabel("kernel index at the row start")
    if not colour:
        cb = fig.colorbar(im, ax=ax, shrink=0.6, ticks=[0, 0.5, 1])
        cb.ax.set_yticklabels(["-max|w|", "0", "+max|w|"])
        cb.set_label("weight, each kernel scaled by its own max |w|")
    return _save(fig, path)


def tableau_size():
    """Pixel size (width, height) of the dictionary tableau PNG."""
    return (800, 860)


# --------------------------------------------------------------------------- inputs and reconstructions

def plot_reconstructions(inputs, recons, batch_indices, path, title, names=("input", "recon"),
                         units="layer activity"):
    """Inputs above their reconstructions and the difference, one column per batch element.

    ``inputs`` and ``recons`` are [B, ny, nx, nf] of one write. A column
    shares one colour scale (±max |input|) between input and reconstruction,
    so their contrast compares honestly.
    """
    inputs, recons = np.asarray(inputs, np.float64), np.asarray(recons, np.float64)
    B = len(inputs)
    width, height = recon_figsize(B)
    fig = _figure(width, height)
    axes = fig.subplots(3, B, squeeze=False)
    colour = inputs.shape[-1] == 3
    rows = (names[0], names[1], f"{names[0]} - {names[1]}")
    last = None
    for j in range(B):
        a, r = inputs[j], recons[j]
        vmax = float(np.abs(a).max()) or 1.0
        for i, img in enumerate((a, r, a - r)):
            ax = axes[i, j]
            if colour:
                ax.imshow(np.clip(0.5 + 0.5 * img / vmax, 0, 1), interpolation="nearest")
            else:
                last = ax.imshow(img[..., 0], cmap="gray", vmin=-vmax, vmax=vmax,
                                 interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"batch element {batch_indices[j]}", fontsize=9)
            if j == 0:
                ax.set_ylabel(rows[i], fontsize=9)
    axes[2, 0].set_xlabel(f"x ({inputs.shape[2]} px)", fontsize=8)
    fig.suptitle(title, fontsize=11)
    if last is not None:
        cb = fig.colorbar(last, ax=axes, shrink=0.8, ticks=[last.norm.vmin, 0, last.norm.vmax])
        cb.ax.set_yticklabels(["-max", "0", "+max"])
        cb.set_label(f"{units}; each column scaled to its input's max |value|", fontsize=8)
    return _save(fig, path)


def recon_figsize(batch):
    """Figure size in inches of the input/reconstruction figure for ``batch`` columns."""
    return (max(6.0, 1.5 * batch + 1.5), 6.0)


def recon_size(batch):
    """Pixel size (width, height) of the input/reconstruction PNG for ``batch`` columns."""
    w, h = recon_figsize(batch)
    return (int(round(w * DPI)), int(round(h * DPI)))


# --------------------------------------------------------------------------- probe curves

PROBE_FIGSIZE = {1: (10, 4.5), 2: (10, 7.5)}


def plot_probe(times, values, batch_indices, path, title, ylabel, period=None):
    """A probe's value against time, one line per batch element, the batch mean in black.

    ``times`` and ``values`` are [batch, time]. With ``period`` (the display
    period) a second panel shows the value at the end of each period, where
    an LCA network has settled on its input: the trend across periods is
    what learning changes.
    """
    times, values = np.asarray(times, np.float64), np.asarray(values, np.float64)
    ends = _period_ends(times[0], period)
    panels = 2 if ends is not None else 1
    fig = _figure(*PROBE_FIGSIZE[panels])
    axes = fig.subplots(panels, 1, squeeze=False)[:, 0]
    many = len(values) > 10
    for k, ax in enumerate(axes):
        sel = slice(None) if k == 0 else ends
        for g, (t, v) in enumerate(zip(times, values)):
            ax.plot(t[sel], v[sel], lw=0.6 if k == 0 else 1.0, alpha=0.5 if many else 0.7,
                    marker=None if k == 0 else ".", ms=3,
                    label=None if many or k else f"batch element {batch_indices[g]}")
        with warnings.catch_warnings():  # a diverged run: all-NaN columns have no mean
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(values, axis=0)
        ax.plot(times[0][sel], mean[sel], color="black", lw=1.6 if k else 1.0,
                label="batch mean" if k == 0 else None)
        ax.set_xlabel(TIME_LABEL)
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
    finite = values[np.isfinite(values)]
    if finite.size and finite.min() > 0 and finite.max() > 10 * finite.min():
        axes[0].set_yscale("log")  # e.g. the energy: spikes at each new image, then a slow decay
    axes[0].set_title(title + ": every step", fontsize=11)
    if panels == 2:
        axes[1].set_title(f"at the end of each display period (every {period:g})", fontsize=10)
    axes[0].legend(fontsize=7, ncol=min(5, len(values) + 1), loc="upper right")
    return _save(fig, path)


def probe_size(with_periods):
    """Pixel size of a probe plot (taller with the end-of-display-period panel)."""
    w, h = PROBE_FIGSIZE[2 if with_periods else 1]
    return (int(w * DPI), int(h * DPI))


def _period_ends(t, period):
    """Indices of the samples at multiples of ``period`` (None when fewer than two)."""
    if not period or period <= 0:
        return None
    phase = np.abs(t / period - np.round(t / period))
    idx = np.flatnonzero((phase < 1e-6) & (t > 0))
    return idx if len(idx) >= 2 else None


# --------------------------------------------------------------------------- weight change

def plot_weight_change(times, rel_change, path, title, per_update=None):
    """Relative change of the dictionary against time.

    ``rel_change`` is [frames-1, kernels]: ‖W_k - W_k-1‖ / ‖W_k-1‖ per kernel
    between consecutive saved frames, plotted at ``times`` [frames-1] (the
    later frame); the kernels' median and range are shown. ``per_update``
    (times, [frames, kernels]) adds the size of the last update itself
    (MomentumConn's ``prevDelta``) relative to the weights.
    """
    fig = _figure(10, 4.5)
    ax = fig.add_subplot()
    rel_change = np.asarray(rel_change, np.float64)
    if len(rel_change):
        ax.fill_between(times, rel_change.min(axis=1), rel_change.max(axis=1), alpha=0.2,
                        color="C0", label="between saved frames: range over kernels")
        ax.plot(times, np.median(rel_change, axis=1), "o-", color="C0",
                label="between saved frames: median kernel")
    if per_update is not None:
        t, rel = per_update
        rel = np.asarray(rel, np.float64)
        ax.fill_between(t, rel.min(axis=1), rel.max(axis=1), alpha=0.2, color="C1",
                        label="one update (prevDelta): range over kernels")
        ax.plot(t, np.median(rel, axis=1), "s-", color="C1",
                label="one update (prevDelta): median kernel")
    positive = np.concatenate([rel_change.ravel()] + ([np.ravel(per_update[1])] if per_update else []))
    if positive.size and np.all(positive[np.isfinite(positive)] > 0):
        ax.set_yscale("log")
    ax.set_xlabel(TIME_LABEL)
    ax.set_ylabel("‖ΔW‖ / ‖W‖ per kernel (dimensionless)")
    ax.set_title(title, fontsize=11)
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _save(fig, path)


def weight_change_size():
    """Pixel size (width, height) of the weight-change PNG."""
    return (1000, 450)


def relative_change(frames):
    """‖W_k - W_k-1‖ / ‖W_k-1‖ per kernel for consecutive frames of [frames, kernels, ...]."""
    W = np.asarray(frames, np.float64).reshape(len(frames), np.shape(frames)[1], -1)
    if len(W) < 2:
        return np.empty((0, W.shape[1]))
    with np.errstate(all="ignore"):  # inf/NaN weights of a diverged run give NaN, not warnings
        d = np.linalg.norm(W[1:] - W[:-1], axis=2)
        base = np.linalg.norm(W[:-1], axis=2)
        return d / np.where(base > 0, base, 1.0)
