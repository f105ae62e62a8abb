"""The ImageLayer pixel pipeline against the recipes of facts 3.9b(b)."""
import numpy as np
import pytest

from pvmpi.errors import PvmpiError
from pvmpi.network.input_frames import fill_extended, prepare_frame

F32 = np.float32
OPENPV_DEFAULTS = {"offsetAnchor": "tl", "offsetX": 0, "offsetY": 0, "autoResizeFlag": False,
                   "aspectRatioAdjustment": "crop", "interpolationMethod": "bicubic",
                   "inverseFlag": False, "normalizeLuminanceFlag": False,
                   "normalizeStdDev": True, "useInputBCflag": False}
ANCHORS = ["tl", "tc", "tr", "cl", "cc", "cr", "bl", "bc", "br"]


def prep(img, nx, ny, mx=0, my=0, **params):
    return prepare_frame(np.asarray(img, F32), nx_global=nx, ny_global=ny, margin_x=mx,
                         margin_y=my, params={**OPENPV_DEFAULTS, **params})


def ids(h, w, nf=1):
    """An image whose samples are 1, 2, 3, ... (so every pixel is recognisable)."""
    return (np.arange(h * w * nf, dtype=F32) + 1).reshape(h, w, nf)


def place(letter, outer, inner):
    return {"t": 0, "l": 0, "c": outer // 2 - inner // 2, "b": outer - inner,
            "r": outer - inner}[letter]


# --- geometry ---------------------------------------------------------------------------

@pytest.mark.parametrize("anchor", ANCHORS)
def test_grow_and_crop_around_each_anchor(anchor):
    img = ids(5, 7)
    spelled = anchor[::-1].upper() if anchor[1] != "c" else anchor  # either order, any case
    d, r = prep(img, 12, 9, offsetAnchor=spelled)
    oy, ox = place(anchor[0], 9, 5), place(anchor[1], 12, 7)
    want = np.zeros((9, 12, 1), F32)
    want[oy:oy + 5, ox:ox + 7] = img
    np.testing.assert_array_equal(d, want)
    np.testing.assert_array_equal(r, (want > 0).astype(F32))
    big = ids(11, 13)
    d, r = prep(big, 6, 4, offsetAnchor=anchor)
    oy, ox = place(anchor[0], 11, 4), place(anchor[1], 13, 6)
    np.testing.assert_array_equal(d, big[oy:oy + 4, ox:ox + 6])
    assert (r == 1).all()
    d, _ = prep(ids(11, 4), 6, 4, offsetAnchor=anchor)  # crop in y, grow in x
    assert d.shape == (4, 6, 1)
    ox = place(anchor[1], 6, 4)
    oy = place(anchor[0], 11, 4)
    np.testing.assert_array_equal(d[:, ox:ox + 4], ids(11, 4)[oy:oy + 4])


def test_offset_signs():
    img = ids(10, 12, 2)
    d, r = prep(img, 6, 5, offsetX=3, offsetY=2)
    np.testing.assert_array_equal(d, img[2:7, 3:9])  # pixel (x, y) shows (x+3, y+2)
    assert (r == 1).all()
    d, r = prep(img, 6, 5, offsetX=-2, offsetY=-1)  # picture moves right and down
    assert (d[:1] == 0).all() and (d[:, :2] == 0).all() and (r[:1] == 0).all()
    np.testing.assert_array_equal(d[1:, 2:], img[:4, :4])
    # translation happens on the grown image, before the final crop
    d, r = prep(ids(10, 12), 4, 4, offsetAnchor="cc", offsetX=5)
    np.testing.assert_array_equal(d, np.pad(ids(10, 12)[3:7, 9:12], ((0, 0), (0, 1), (0, 0))))
    assert r[:, 3].sum() == 0 and r[:, :3].min() == 1


def test_use_input_bc_targets_the_extended_size():
    img = ids(20, 20)
    d, r = prep(img, 8, 6, mx=2, my=1, useInputBCflag=True, offsetAnchor="cc")
    assert d.shape == (8, 12, 1)
    np.testing.assert_array_equal(d, img[6:14, 4:16])


# --- resampling -------------------------------------------------------------------------

def k_scalar(u):
    u = abs(F32(u))
    if u < 1:
        return F32(F32(1) + F32(F32(u * u) * F32(u - F32(2))))
    if u < 2:
        return F32(F32(4) + F32(u * F32(F32(u * F32(F32(5) - u)) - F32(8))))
    return F32(0)


def bicubic_scalar(src, h2, w2):
    """Straight from the formulas, one float32 scalar operation at a time."""
    h, w, nf = src.shape
    dx, dy = F32(F32(w - 1) / F32(w2 - 1)), F32(F32(h - 1) / F32(h2 - 1))
    out = np.zeros((h2, w2, nf), F32)

    def mirror(j, n):
        return -j if j < 0 else (2 * n - 1 - j if j >= n else j)

    for ky in range(h2):
        yk = F32(dy * F32(ky))
        iy = int(np.floor(yk))
        ty = F32(yk - F32(iy))
        for kx in range(w2):
            xk = F32(dx * F32(kx))
            ix = int(np.floor(xk))
            tx = F32(xk - F32(ix))
            for f in range(nf):
                acc = F32(0)
                for ox in (2, 1, 0, -1):
                    wx = k_scalar(F32(tx - F32(ox)))
                    for oy in (2, 1, 0, -1):
                        wy = k_scalar(F32(ty - F32(oy)))
                        p = src[mirror(iy + oy, h), mirror(ix + ox, w), f]
                        acc = F32(acc + F32(F32(wx * wy) * p))
                out[ky, kx, f] = acc
    return out


@pytest.mark.parametrize("shape, target, aspect", [
    ((7, 9), (11, 14), "crop"), ((9, 7), (4, 4), "pad"), ((6, 10), (13, 5), "crop"),
])
def test_bicubic_matches_scalar_formulas(shape, target, aspect):
    rng = np.random.default_rng(sum(shape))
    img = rng.random(shape + (2,)).astype(F32)
    H, W = target
    d, r = prep(img, W, H, autoResizeFlag=True, aspectRatioAdjustment=aspect)
    rx, ry = F32(W) / F32(shape[1]), F32(H) / F32(shape[0])
    s = max(rx, ry) if aspect == "crop" else min(rx, ry)
    h2, w2 = int(np.rint(F32(s * F32(shape[0])))), int(np.rint(F32(s * F32(shape[1]))))
    full = bicubic_scalar(img, h2, w2)
    want = np.zeros((max(H, h2), max(W, w2), 2), F32)
    want[:h2, :w2] = full
    np.testing.assert_array_equal(d, want[:H, :W])
    valid = r[:h2, :w2]
    assert valid.min() > 0.9 and (r[h2:] == 0).all() and (r[:, w2:] == 0).all()


def test_bicubic_overshoots_and_edges_differ():
    img = np.zeros((4, 6, 1), F32)
    img[:, 3:] = 1
    d, _ = prep(img, 11, 7, autoResizeFlag=True)
    assert d.max() > 1 and d.min() < 0  # a = -1 rings at a step edge
    np.testing.assert_array_equal(d, bicubic_scalar(img, 7, 11))


def test_resize_rounds_half_to_even_and_nearest_neighbour():
    img = ids(5, 2)
    # s = min(5/2, 20/5) = 2.5; 2.5 * 5 = 12.5 -> 12 rows (half to even), 5 columns
    _, r = prep(img, 5, 20, autoResizeFlag=True, aspectRatioAdjustment="pad",
                interpolationMethod="nearestNeighbor")
    assert r[:, 0].sum() == 12 and (r[:12] == 1).all()
    d, _ = prep(ids(3, 4), 7, 5, autoResizeFlag=True, interpolationMethod="nearestNeighbor")
    xs = np.rint(F32(F32(3) / F32(6)) * np.arange(7, dtype=F32)).astype(int)  # 0 0 1 2 2 2 3
    ys = np.rint(F32(F32(2) / F32(4)) * np.arange(5, dtype=F32)).astype(int)  # 0 0 1 2 2
    assert xs.tolist() == [0, 0, 1, 2, 2, 2, 3] and ys.tolist() == [0, 0, 1, 2, 2]
    np.testing.assert_array_equal(d, ids(3, 4)[ys][:, xs])


def test_autoresize_then_anchor_then_offset():
    img = np.random.default_rng(2).random((8, 8, 1)).astype(F32)
    d, r = prep(img, 16, 12, autoResizeFlag=True, offsetAnchor="bc", offsetX=1, offsetY=-2)
    full = bicubic_scalar(img, 16, 16)[4:16]  # crop mode, bottom anchor
    np.testing.assert_array_equal(d[2:, :15], full[:10, 1:])
    assert (r[:2] == 0).all() and (r[:, 15] == 0).all()


# --- normalisation and inversion --------------------------------------------------------

def std_recipe(v):
    s = q = F32(0)
    for x in v:
        s = F32(s + x)
        q = F32(q + F32(x * x))
    n = F32(len(v))
    mean = F32(s / n)
    var = F32(F32(q / n) - F32(mean * mean))
    c = np.array([F32(x - mean) for x in v], F32)
    return np.array([F32(x / np.sqrt(var)) for x in c], F32) if var > 0 else 0 * c


def test_std_normalisation_recipe_over_valid_samples():
    img = np.random.default_rng(4).random((6, 7, 3)).astype(F32) * F32(0.7)
    d, r = prep(img, 9, 8, offsetAnchor="cc", normalizeLuminanceFlag=True)
    valid = r > 0
    np.testing.assert_array_equal(d[valid], std_recipe(img.ravel()))
    assert (d[~valid] == 0).all()
    v64 = img.astype(float).ravel()
    assert not np.array_equal(d[valid], ((v64 - v64.mean()) / v64.std()).astype(F32))


def test_flat_image_quirk():
    d, _ = prep(np.full((32, 32, 3), 0.3, F32), 32, 32, normalizeLuminanceFlag=True)
    assert np.unique(d).size == 1
    assert abs(float(d[0, 0, 0]) - 0.0056) < 5e-5
    np.testing.assert_array_equal(d.ravel(), std_recipe(np.full(3072, F32(0.3))))


def test_min_max_by_reciprocal_and_flat():
    rng = np.random.default_rng(5)
    img = (rng.random((20, 20, 1)) * 0.6 + 0.13).astype(F32)
    d, _ = prep(img, 20, 20, normalizeLuminanceFlag=True, normalizeStdDev=False)
    lo, hi = img.min(), img.max()
    np.testing.assert_array_equal(d, (img - lo) * F32(F32(1) / F32(hi - lo)))
    assert not np.array_equal(d, (img - lo) / F32(hi - lo))
    d, _ = prep(np.full((4, 4, 1), 0.5, F32), 4, 4, normalizeLuminanceFlag=True,
                normalizeStdDev=False)
    assert (d == 0).all()


def test_inversion():
    img = np.random.default_rng(6).random((5, 5, 2)).astype(F32)
    d, r = prep(img, 7, 5, inverseFlag=True)
    lo, hi = img.min(), img.max()
    np.testing.assert_array_equal(d[:, :5], F32(hi + lo) - img)
    assert (d[:, 5:] == 0).all() and (r[:, 5:] == 0).all()  # grown pixels stay invalid
    d, _ = prep(img, 5, 5, inverseFlag=True, normalizeLuminanceFlag=True, normalizeStdDev=False)
    np.testing.assert_array_equal(d, -((img - lo) * F32(F32(1) / F32(hi - lo))))


def test_user_errors():
    with pytest.raises(PvmpiError, match="offsetAnchor"):
        prep(ids(2, 2), 2, 2, offsetAnchor="xl")
    with pytest.raises(PvmpiError, match="offsetAnchor"):
        prep(ids(2, 2), 2, 2, offsetAnchor="tt")
    with pytest.raises(PvmpiError, match="interpolationMethod"):
        prep(ids(2, 2), 2, 2, interpolationMethod="bilinear")
    with pytest.raises(PvmpiError, match="aspectRatioAdjustment"):
        prep(ids(2, 2), 2, 2, aspectRatioAdjustment="stretch")


# --- scatter into extended tiles --------------------------------------------------------

def test_pad_value_fills_halo_and_gaps():
    d, r = prep(ids(3, 3, 2), 4, 4)  # one column and one row of the layer have no image
    A = np.empty((8, 8, 2), F32)
    fill_extended(A, d, r, pad_value=-0.5, margin_x=2, margin_y=2, use_input_bc=False,
                  x0=0, y0=0)
    assert (A[:2] == -0.5).all() and (A[:, :2] == -0.5).all() and (A[5:] == -0.5).all()
    np.testing.assert_array_equal(A[2:5, 2:5], ids(3, 3, 2))


@pytest.mark.parametrize("use_bc", [False, True])
def test_two_by_two_tiles_equal_the_whole(use_bc):
    nx, ny, nf, mx, my = 12, 8, 2, 3, 2
    img = np.random.default_rng(7).random((15, 20, nf)).astype(F32)
    d, r = prep(img, nx, ny, mx, my, useInputBCflag=use_bc, offsetX=-2, offsetY=5,
                offsetAnchor="cc", normalizeLuminanceFlag=True)
    assert (r == 0).any()
    whole = np.empty((ny + 2 * my, nx + 2 * mx, nf), F32)
    fill_extended(whole, d, r, pad_value=7.0, margin_x=mx, margin_y=my, use_input_bc=use_bc,
                  x0=0, y0=0)
    lx, ly = nx // 2, ny // 2
    for row in range(2):
        for col in range(2):
            x0, y0 = col * lx, row * ly
            tile = np.empty((ly + 2 * my, lx + 2 * mx, nf), F32)
            fill_extended(tile, d, r, pad_value=7.0, margin_x=mx, margin_y=my,
                          use_input_bc=use_bc, x0=x0, y0=y0)
            inner = tile[my:my + ly, mx:mx + lx]
            np.testing.assert_array_equal(inner, whole[my + y0:my + y0 + ly, mx + x0:mx + x0 + lx])
            if use_bc:
                np.testing.assert_array_equal(tile, whole[y0:y0 + ly + 2 * my, x0:x0 + lx + 2 * mx])
            else:
                halo = np.ones(tile.shape, bool)
                halo[my:my + ly, mx:mx + lx] = False
                assert (tile[halo] == 7.0).all()
    if use_bc:
        assert (whole[:my] != 7.0).any()  # the halo really holds image data
