"""Natural-looking test images made locally, for demos and tests (gray, or colour with ``--colour``).

The dead-leaves model (occluding discs with radii drawn from p(r) ~ r^-3)
is scale invariant, so its images share the statistics that matter for
sparse coding of natural images: a roughly 1/f amplitude spectrum, sharp
occlusion edges and flat regions. Colour leaves take a gray level and a
random tint, so the colour channels are correlated as in natural images. A slight blur (optics) and a little noise
(sensor) make them look less synthetic. No downloads are needed.
"""
import argparse
import json
import os
from pathlib import Path

import numpy as np

from pvmpi.errors import PvmpiError

_VERSION = 1  # bump when the images change, so cached sets are remade
_META = ".dead_leaves.json"


def _radii(rng, n, rmin, rmax):
    """Radii with density ~ r^-3 on [rmin, rmax], by inverting the CDF."""
    u = rng.random(n)
    a, b = rmin ** -2.0, rmax ** -2.0
    return (a - u * (a - b)) ** -0.5


def _blur(img, sigma):
    """Separable Gaussian blur with mirrored edges."""
    radius = max(1, int(np.ceil(3 * sigma)))
    x = np.arange(-radius, radius + 1)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    k /= k.sum()
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (radius, radius)
        p = np.pad(img, pad, mode="reflect")
        n = img.shape[axis]
        img = sum(w * np.take(p, np.arange(i, i + n), axis=axis) for i, w in enumerate(k))
    return img


def dead_leaves_image(size, rng, rmin=None, rmax=None, max_leaves=200000, colour=False):
    """One ``size x size`` uint8 dead-leaves image drawn with ``rng`` (a numpy Generator).

    Leaves are laid in batches; each pixel takes the gray level of the first
    leaf that covers it (the topmost one), until every pixel is covered.
    With ``colour`` the image is ``size x size x 3`` (RGB): each leaf's gray
    level times a tint of mean 1 per channel. Gray images do not change.
    """
    size = int(size)
    rmin = max(1.0, size / 64) if rmin is None else rmin
    rmax = size / 3 if rmax is None else rmax
    channels = 3 if colour else 1
    img = np.full((size * size, channels), -1.0)
    covered = np.zeros(size * size, bool)
    drawn = 0
    while not covered.all() and drawn < max_leaves:
        n = 256
        r = _radii(rng, n, rmin, rmax)
        cx, cy = rng.uniform(-rmax, size + rmax, (2, n))
        gray = rng.beta(2.0, 2.0, n)  # mid-grays common, extremes rarer
        if colour:
            gray = gray[:, None] * np.clip(rng.normal(1.0, 0.25, (n, 3)), 0.3, 1.7)
        else:
            gray = gray[:, None]
        drawn += n
        x0 = np.clip(np.floor(cx - r), 0, size).astype(np.int64)
        x1 = np.clip(np.ceil(cx + r) + 1, 0, size).astype(np.int64)
        y0 = np.clip(np.floor(cy - r), 0, size).astype(np.int64)
        y1 = np.clip(np.ceil(cy + r) + 1, 0, size).astype(np.int64)
        wx = x1 - x0  # clipped bounds keep x1 >= x0, y1 >= y0
        npix = wx * (y1 - y0)
        keep = npix > 0
        if not keep.any():
            continue
        leaf = np.repeat(np.flatnonzero(keep), npix[keep])  # leaf of each bounding-box pixel
        first = np.cumsum(npix[keep]) - npix[keep]
        local = np.arange(len(leaf)) - np.repeat(first, npix[keep])
        px = x0[leaf] + local % wx[leaf]
        py = y0[leaf] + local // wx[leaf]
        inside = (px + 0.5 - cx[leaf]) ** 2 + (py + 0.5 - cy[leaf]) ** 2 <= r[leaf] ** 2
        flat = (py * size + px)[inside]
        leaf = leaf[inside]
        flat, where = np.unique(flat, return_index=True)  # first (topmost) leaf per pixel
        new = ~covered[flat]
        img[flat[new]] = gray[leaf[where[new]]]
        covered[flat[new]] = True
    img[~covered] = 0.5
    img = np.stack([_blur(img[:, c].reshape(size, size), 0.6) for c in range(channels)], axis=-1)
    img += rng.normal(0.0, 0.01, img.shape)
    img = np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)
    return img if colour else img[:, :, 0]


def make_image_set(directory, count, size, seed, colour=False):
    """Write ``image_000.png ...`` and ``images.txt`` (absolute paths) into ``directory``.

    Image i depends only on (seed, i, size). An existing set made with the
    same parameters is reused; files this function did not make are never
    overwritten.
    """
    from PIL import Image

    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    digits = max(3, len(str(count - 1)))
    names = [directory / f"image_{i:0{digits}d}.png" for i in range(count)]
    listfile = directory / "images.txt"
    meta_path = directory / _META
    meta = {"count": count, "size": size, "seed": seed, "version": _VERSION}
    if colour:
        meta["colour"] = True
    if meta_path.exists():
        try:
            old = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            old = None
        if old == meta and listfile.exists() and all(p.exists() for p in names):
            return listfile
    elif listfile.exists() or any(p.exists() for p in names):
        raise PvmpiError("refusing to overwrite images not made by pvmpi", file=str(directory),
                         hint="choose an empty directory")
    meta_path.unlink(missing_ok=True)
    for i, path in enumerate(names):
        rng = np.random.default_rng(np.random.SeedSequence([seed, i]))
        tmp = path.with_name(path.name + ".tmp")
        Image.fromarray(dead_leaves_image(size, rng, colour=colour)).save(tmp, format="PNG")
        os.replace(tmp, path)
    listfile.write_text("".join(f"{p}\n" for p in names))
    meta_path.write_text(json.dumps(meta))
    return listfile


def main(argv=None):
    """``python -m pvmpi.data.dead_leaves DIR [--count N] [--size S] [--seed K] [--colour]``: print the list's path."""
    parser = argparse.ArgumentParser(prog="python -m pvmpi.data.dead_leaves",
                                     description="Write a set of dead-leaves test images.")
    parser.add_argument("directory")
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--colour", "--color", action="store_true", help="RGB images (for nf = 3)")
    args = parser.parse_args(argv)
    print(make_image_set(args.directory, args.count, args.size, args.seed, colour=args.colour))


if __name__ == "__main__":
    main()
