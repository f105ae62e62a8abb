"""Image decoding and feature conversion against the rules of facts 3.9b(a)."""
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from pvmpi.errors import PvmpiError
from pvmpi.io.images import convert_features, load_image, read_image_list

F32 = np.float32
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4),
         (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


# --- a small PNG writer, with every row filter, for synthetic test files -------------

def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _pack(sub, depth):
    h, w, c = sub.shape
    flat = sub.reshape(h, w * c).astype(np.int64)
    if depth == 16:
        return flat.astype(">u2").view(np.uint8).reshape(h, -1).astype(np.int64), 2 * c
    if depth == 8:
        return flat, c
    per = 8 // depth
    flat = np.pad(flat, ((0, 0), (0, (-flat.shape[1]) % per)))
    groups = flat.reshape(h, -1, per)
    shifts = 8 - depth * (np.arange(per) + 1)
    return (groups << shifts).sum(axis=2), 1


def _filter(rows, bpp, rng, max_kind):
    out, prev = [], np.zeros(rows.shape[1], np.int64)
    for row in rows:
        kind = int(rng.integers(0, max_kind + 1))
        a = np.concatenate([np.zeros(bpp, np.int64), row[:-bpp]])
        c = np.concatenate([np.zeros(bpp, np.int64), prev[:-bpp]])
        b = prev
        p = a + b - c
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        pred = [0 * a, a, b, (a + b) // 2, paeth][kind]
        out.append(bytes([kind]) + ((row - pred) % 256).astype(np.uint8).tobytes())
        prev = row
    return b"".join(out)


def png_bytes(samples, color, depth, *, palette=None, trns=None, interlace=0, seed=0,
              max_kind=4):
    """Encode int samples [h, w, c] as PNG with random row filters 0..max_kind."""
    rng = np.random.default_rng(seed)
    h, w, _ = samples.shape
    if interlace:
        subs = [samples[y0::dy, x0::dx] for x0, y0, dx, dy in ADAM7]
        subs = [s for s in subs if s.size]
    else:
        subs = [samples]
    body = b""
    for sub in subs:
        rows, bpp = _pack(sub, depth)
        body += _filter(rows, bpp, rng, max_kind)
    out = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color,
                                                              0, 0, interlace))
    if palette is not None:
        out += _chunk(b"PLTE", np.asarray(palette, np.uint8).tobytes())
    if trns is not None:
        out += _chunk(b"tRNS", trns)
    half = len(body) // 2  # two IDAT chunks, to test concatenation
    z = zlib.compress(body)
    out += _chunk(b"IDAT", z[:half]) + _chunk(b"IDAT", z[half:]) + _chunk(b"IEND", b"")
    return out


def write(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def from16(s):
    return np.asarray(s, np.uint16).astype(F32) / F32(65535)


def pillow_values(path):
    im = Image.open(path)
    a = np.asarray(im.convert("L") if im.mode == "1" else im)
    if a.ndim == 2:
        a = a[..., None]
    if a.dtype == np.uint8:
        a = a.astype(np.uint32) * 257
    return a.astype(F32) / F32(65535)


# --- decoding --------------------------------------------------------------------------

def test_openpv_test_images_match_pillow(openpv_tests):
    files = sorted(openpv_tests.rglob("*.png"))
    assert len(files) > 100
    for f in files:
        got = load_image(f)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, pillow_values(f), err_msg=str(f))
    assert load_image(openpv_tests / "BatchMethodTest/input/images/0.png").shape[2] == 1


@pytest.mark.parametrize("max_kind", [2, 4])  # 2: the None/Sub/Up-only fast path
@pytest.mark.parametrize("interlace", [0, 1])
@pytest.mark.parametrize("color", [0, 2, 4, 6])
def test_8bit_all_filters_match_pillow(tmp_path, color, interlace, max_kind):
    rng = np.random.default_rng(color + 10 * interlace)
    s = rng.integers(0, 256, (13, 11, CHANNELS[color]))
    s[:4] //= 16  # smooth-ish rows make filters matter in both directions
    p = write(tmp_path, "a.png", png_bytes(s, color, 8, interlace=interlace, seed=color,
                                           max_kind=max_kind))
    got = load_image(p)
    np.testing.assert_array_equal(got, pillow_values(p))
    np.testing.assert_array_equal(got, from16(s * 257))


@pytest.mark.parametrize("color", [0, 2, 4, 6])
def test_16bit_is_kept_exactly(tmp_path, color):
    s = np.random.default_rng(3).integers(0, 65536, (9, 10, CHANNELS[color]))
    for interlace in (0, 1):
        p = write(tmp_path, "a.png", png_bytes(s, color, 16, interlace=interlace))
        np.testing.assert_array_equal(load_image(p), from16(s))
    if color == 0:  # Pillow keeps 16-bit gray (I;16) too
        np.testing.assert_array_equal(load_image(p), pillow_values(p))


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_low_bit_gray_is_scaled_to_8_bits(tmp_path, depth):
    s = np.random.default_rng(depth).integers(0, 1 << depth, (7, 13, 1))
    scale = 255 // ((1 << depth) - 1)
    for interlace in (0, 1):
        p = write(tmp_path, "a.png", png_bytes(s, 0, depth, interlace=interlace))
        np.testing.assert_array_equal(load_image(p), from16(s * scale * 257))
        np.testing.assert_array_equal(load_image(p), pillow_values(p))


@pytest.mark.parametrize("depth", [2, 8])
def test_palette_with_and_without_trns(tmp_path, depth):
    rng = np.random.default_rng(depth)
    npal = 1 << depth if depth < 8 else 20
    pal = rng.integers(0, 256, (npal, 3))
    idx = rng.integers(0, npal, (6, 9, 1))
    p = write(tmp_path, "p.png", png_bytes(idx, 3, depth, palette=pal))
    np.testing.assert_array_equal(load_image(p), from16(pal[idx[..., 0]] * 257))
    alpha = rng.integers(0, 256, npal - 1)  # shorter than the palette: last entry opaque
    p = write(tmp_path, "t.png", png_bytes(idx, 3, depth, palette=pal,
                                            trns=alpha.astype(np.uint8).tobytes()))
    rgba = np.concatenate([pal, np.append(alpha, 255)[:, None]], axis=1)
    got = load_image(p)
    assert got.shape == (6, 9, 4)
    np.testing.assert_array_equal(got, from16(rgba[idx[..., 0]] * 257))


def test_trns_keys_add_alpha(tmp_path):
    rng = np.random.default_rng(5)
    gray = rng.integers(0, 4, (5, 6, 1))
    p = write(tmp_path, "g8.png", png_bytes(gray * 60, 0, 8, trns=struct.pack(">H", 120)))
    got = load_image(p)
    assert got.shape == (5, 6, 2)
    np.testing.assert_array_equal(got[..., 0], from16(gray[..., 0] * 60 * 257))
    np.testing.assert_array_equal(got[..., 1], np.where(gray[..., 0] == 2, F32(0), F32(1)))
    p = write(tmp_path, "g2.png", png_bytes(gray, 0, 2, trns=struct.pack(">H", 1)))
    np.testing.assert_array_equal(load_image(p)[..., 1], (gray[..., 0] != 1).astype(F32))
    rgb = rng.integers(0, 2, (5, 6, 3)) * 200
    key = (200, 0, 200)
    is_key = np.all(rgb == key, axis=2)
    p = write(tmp_path, "c8.png", png_bytes(rgb, 2, 8, trns=struct.pack(">3H", *key)))
    got = load_image(p)
    assert got.shape == (5, 6, 4)
    np.testing.assert_array_equal(got[..., :3], from16(rgb * 257))
    np.testing.assert_array_equal(got[..., 3], (~is_key).astype(F32))
    rgb16 = rgb * 300
    p = write(tmp_path, "c16.png", png_bytes(rgb16, 2, 16,
                                             trns=struct.pack(">3H", *(k * 300 for k in key))))
    got = load_image(p)
    np.testing.assert_array_equal(got[..., :3], from16(rgb16))
    np.testing.assert_array_equal(got[..., 3], (~is_key).astype(F32))


def test_other_formats_through_pillow(tmp_path):
    gray = np.random.default_rng(1).integers(0, 256, (8, 10)).astype(np.uint8)
    Image.fromarray(gray).save(tmp_path / "g.bmp")
    got = load_image(tmp_path / "g.bmp")
    assert got.shape == (8, 10, 3)  # stb reads every BMP as RGB(A)
    np.testing.assert_array_equal(got, from16(np.repeat(gray[..., None], 3, 2).astype(int) * 257))
    (tmp_path / "t16.pgm").write_bytes(b"P5\n2 2\n65535\n\x01\x02\x03\x04\xff\xff\x00\x10")
    np.testing.assert_array_equal(load_image(tmp_path / "t16.pgm")[..., 0],
                                  from16([[258, 772], [65535, 16]]))
    Image.fromarray(gray).save(tmp_path / "g.jpg", quality=95)
    got = load_image(tmp_path / "g.jpg")
    assert got.shape == (8, 10, 1)
    assert np.abs(got[..., 0] - gray / 255).max() < 0.1


def test_bad_files_are_user_errors(tmp_path):
    with pytest.raises(PvmpiError, match="cannot read image"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "junk.png").write_bytes(b"not an image at all")
    with pytest.raises(PvmpiError, match="junk.png"):
        load_image(tmp_path / "junk.png")
    good = png_bytes(np.zeros((2, 2, 1), int), 0, 8)
    with pytest.raises(PvmpiError, match="pixel data"):
        load_image(write(tmp_path, "short.png", good[:-40] + _chunk(b"IEND", b"")))


# --- features and lists ----------------------------------------------------------------

def test_gray_from_rgb_in_float32_order():
    rng = np.random.default_rng(0)
    img = from16(rng.integers(0, 256, (40, 50, 3)) * 257)
    gray = convert_features(img, 1)
    r, g, b = (img[..., i] for i in range(3))
    want = (r * F32(0.30) + g * F32(0.59)) + b * F32(0.11)
    assert gray.dtype == np.float32 and gray.shape == (40, 50, 1)
    np.testing.assert_array_equal(gray[..., 0], want)
    in_double = (0.30 * r.astype(float) + 0.59 * g + 0.11 * b).astype(F32)
    assert (in_double != gray[..., 0]).mean() > 0.05  # the order really matters


def test_feature_conversion_table():
    rng = np.random.default_rng(1)
    img = {c: from16(rng.integers(0, 65536, (3, 4, c))) for c in (1, 2, 3, 4)}
    one = np.ones((3, 4), F32)

    def gray(a):
        return (a[..., 0] * F32(0.30) + a[..., 1] * F32(0.59)) + a[..., 2] * F32(0.11)

    cases = {
        (2, 1): [img[2][..., 0]], (3, 1): [gray(img[3])], (4, 1): [gray(img[4])],
        (1, 2): [img[1][..., 0], one], (3, 2): [gray(img[3]), one],
        (4, 2): [gray(img[4]), img[4][..., 3]],
        (1, 3): [img[1][..., 0]] * 3, (2, 3): [img[2][..., 0]] * 3,
        (4, 3): [img[4][..., i] for i in range(3)],
        (1, 4): [img[1][..., 0]] * 3 + [one], (2, 4): [img[2][..., 0]] * 3 + [img[2][..., 1]],
        (3, 4): [img[3][..., i] for i in range(3)] + [one],
    }
    for (c, nf), chans in cases.items():
        np.testing.assert_array_equal(convert_features(img[c], nf), np.stack(chans, 2),
                                      err_msg=f"c={c} nf={nf}")
    assert convert_features(img[3], 3) is img[3]
    with pytest.raises(PvmpiError):
        convert_features(img[3], 5)


def test_read_image_list(openpv_tests, tmp_path, monkeypatch):
    names = read_image_list(openpv_tests / "BatchMethodTest/input/images/imagelist.txt")
    assert names == [f"input/images/{i}.png" for i in range(10)]
    monkeypatch.chdir(openpv_tests / "BatchMethodTest")  # relative to the working directory
    assert load_image(names[3]).shape == (32, 32, 1)
    (tmp_path / "l.txt").write_text("  a.png \n\n\t\nsub dir/b.png\r\nc.png")
    assert read_image_list(tmp_path / "l.txt") == ["a.png", "sub dir/b.png", "c.png"]
    with pytest.raises(PvmpiError, match="inputPath"):
        read_image_list(tmp_path / "none.txt")
    (tmp_path / "empty.txt").write_text("\n  \n")
    with pytest.raises(PvmpiError, match="empty"):
        read_image_list(tmp_path / "empty.txt")


def test_plain_8bit_fast_path_equals_the_hand_decoder(openpv_tests, tmp_path):
    """8-bit PNGs without palette or tRNS go through Pillow: the values must equal the stb-exact decoder's."""
    from PIL import Image

    from pvmpi.io.images import _is_plain_8bit_png, decode_png16

    rng = np.random.default_rng(3)
    paths = sorted(openpv_tests.rglob("*.png"))
    for mode, c in (("L", 1), ("LA", 2), ("RGB", 3), ("RGBA", 4)):
        p = tmp_path / f"x_{mode}.png"
        Image.fromarray(rng.integers(0, 256, (7, 9, c), dtype=np.uint8).squeeze(), mode).save(p)
        paths.append(p)
    fast = 0
    for p in paths:
        raw = p.read_bytes()
        fast += _is_plain_8bit_png(raw)
        want = decode_png16(raw, str(p)).astype(np.float32) / np.float32(65535.0)
        got = load_image(p)
        assert got.shape == want.shape and np.array_equal(got, want), p
    assert fast >= 4
