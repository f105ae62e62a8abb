"""Image files as OpenPV's ImageLayer sees them (facts 3.9b(a)).

OpenPV reads every image with stb_image's 16-bit loader, keeping the file's
own channel count, and scales each 16-bit sample ``s`` to ``f32(s)/65535``.
To get those values bit for bit, PNG is decoded here by hand (zlib, the five
row filters, Adam7, then stb's expansion rules): Pillow reduces 16-bit colour
to 8 bits, ignores tRNS keys and leaves palettes unexpanded.

Other formats (JPEG, BMP, GIF, TGA, PNM, PSD) go through Pillow as 8-bit
data times 257, with stb's channel counts (BMP gives 3 or 4 channels, GIF and
PSD 4). A colour JPEG can differ from stb's own decoder by up to 2/255 per
sample; gray JPEG and the lossless formats agree.
"""
import struct
import zlib
from pathlib import Path

import numpy as np

from pvmpi.errors import PvmpiError

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# (channels in the file, allowed bit depths) per PNG colour type
_COLOR_TYPES = {0: (1, (1, 2, 4, 8, 16)), 2: (3, (8, 16)), 3: (1, (1, 2, 4, 8)),
                4: (2, (8, 16)), 6: (4, (8, 16))}
# stb scales low-bit gray (not palette indices) up to 8 bits by these factors
_DEPTH_SCALE = {1: 0xFF, 2: 0x55, 4: 0x11, 8: 0x01}
# Adam7 passes: x origin, y origin, x spacing, y spacing
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4),
          (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
_GRAY_WEIGHTS = (np.float32(0.30), np.float32(0.59), np.float32(0.11))


def load_image(path):
    """Read an image file as OpenPV does: float32 ``[h, w, c]`` in [0, 1]."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PvmpiError(f"cannot read image: {exc.strerror or exc}", file=str(path),
                         hint="check inputPath and the paths in the image list") from None
    if raw.startswith(_PNG_SIGNATURE):
        samples = _plain_8bit_png(raw) if _is_plain_8bit_png(raw) else None
        if samples is None:
            samples = decode_png16(raw, str(path))
    else:
        samples = _decode_with_pillow(path)
    return samples.astype(np.float32) / np.float32(65535.0)


def _is_plain_8bit_png(raw):
    """8-bit gray, gray+alpha, RGB or RGBA without tRNS: Pillow's bytes are exactly stb's (×257).

    Those, the common case, skip the slower hand decoder, which stays the truth
    for 16-bit, low-bit, palette and tRNS images.
    """
    if len(raw) < 33 or raw[12:16] != b"IHDR" or raw[24] != 8 or raw[25] not in (0, 2, 4, 6):
        return False
    pos = 8
    while pos + 8 <= len(raw):
        length = int.from_bytes(raw[pos:pos + 4], "big")
        kind = raw[pos + 4:pos + 8]
        if kind == b"tRNS":
            return False
        if kind == b"IDAT":  # tRNS must come before the image data
            return True
        pos += 12 + length
    return False


def _plain_8bit_png(raw):
    """uint16 [h, w, c] samples (v·257) through Pillow, or None if Pillow disagrees on the layout."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(raw)) as im:
            if im.mode not in ("L", "LA", "RGB", "RGBA"):
                return None
            a = np.asarray(im)
    except Exception:  # let the hand decoder report what is wrong with the file
        return None
    a = a.reshape(a.shape[0], a.shape[1], -1).astype(np.uint16)
    return a * np.uint16(257)


def decode_png16(raw, name="<png>"):
    """Decode PNG bytes to stb's 16-bit samples: uint16 ``[h, w, c]``."""
    if not raw.startswith(_PNG_SIGNATURE):
        raise PvmpiError("not a PNG file", file=name)
    ihdr, palette, trns, idat = None, None, None, []
    pos = len(_PNG_SIGNATURE)
    while pos + 8 <= len(raw):
        length, ctype = struct.unpack(">I4s", raw[pos:pos + 8])
        body = raw[pos + 8:pos + 8 + length]
        if len(body) < length:
            raise PvmpiError("truncated PNG chunk", file=name)
        pos += 12 + length  # CRC is not checked, like stb
        if ctype == b"IHDR":
            if len(body) != 13:
                raise PvmpiError("bad PNG IHDR chunk", file=name)
            ihdr = struct.unpack(">IIBBBBB", body)
        elif ihdr is None:
            raise PvmpiError("PNG does not start with IHDR", file=name)
        elif ctype == b"PLTE":
            palette = np.frombuffer(body, np.uint8)
            if len(palette) % 3 or not 0 < len(palette) <= 768:
                raise PvmpiError("bad PNG palette", file=name)
            palette = palette.reshape(-1, 3)
        elif ctype == b"tRNS":
            trns = body
        elif ctype == b"IDAT":
            idat.append(body)
        elif ctype == b"IEND":
            break
        elif not ctype[0] & 0x20:  # an unknown critical chunk
            raise PvmpiError(f"unsupported PNG chunk {ctype.decode('latin-1')}", file=name)
    if ihdr is None or not idat:
        raise PvmpiError("PNG has no image data", file=name)
    width, height, depth, color, comp, filt, interlace = ihdr
    if color not in _COLOR_TYPES or depth not in _COLOR_TYPES[color][1]:
        raise PvmpiError(f"bad PNG colour type {color} with bit depth {depth}", file=name)
    if comp != 0 or filt != 0 or interlace > 1 or width == 0 or height == 0:
        raise PvmpiError("bad PNG header", file=name)
    if color == 3 and palette is None:
        raise PvmpiError("palette PNG without PLTE chunk", file=name)
    try:
        data = zlib.decompressobj().decompress(b"".join(idat))
    except zlib.error as exc:
        raise PvmpiError(f"corrupt PNG image data ({exc})", file=name) from None
    nchan = _COLOR_TYPES[color][0]
    data = np.frombuffer(data, np.uint8)
    if interlace:
        values = np.zeros((height, width, nchan), np.uint16)
        used = 0
        for x0, y0, dx, dy in _ADAM7:
            pw, ph = (width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy
            if pw and ph:
                part, n = _scanlines(data[used:], pw, ph, nchan, depth, name)
                values[y0::dy, x0::dx] = part
                used += n
    else:
        values, _ = _scanlines(data, width, height, nchan, depth, name)
    return _expand(values, color, depth, palette, trns, name)


def _scanlines(data, width, height, nchan, depth, name):
    """Unfilter one (sub)image; return its samples and the bytes it used."""
    bpp = max(1, nchan * depth // 8)
    stride = (width * nchan * depth + 7) // 8
    nbytes = height * (stride + 1)
    if len(data) < nbytes:
        raise PvmpiError("not enough PNG pixel data", file=name)
    rows = data[:nbytes].reshape(height, stride + 1)
    kinds = rows[:, 0]
    if kinds.max() > 4:
        raise PvmpiError(f"bad PNG row filter {int(kinds.max())}", file=name)
    out = _unfilter(rows[:, 1:].reshape(height, stride // bpp, bpp).astype(np.int32), kinds)
    out = out.reshape(height, stride)
    if depth == 16:
        samples = (out[:, 0::2] << 8) | out[:, 1::2]
    elif depth == 8:
        samples = out
    else:
        bits = np.unpackbits(out.astype(np.uint8), axis=1).reshape(height, -1, depth)
        samples = bits @ (1 << np.arange(depth - 1, -1, -1))
    samples = samples[:, :width * nchan].reshape(height, width, nchan)
    return samples.astype(np.uint16), nbytes


def _unfilter(f, kinds):
    """Undo PNG row filters on ``f[row, pixel, byte]``.

    Pixel (y, x) depends on its left, upper and upper-left neighbours, so all
    pixels on one anti-diagonal can be reconstructed together: h + w steps,
    each vectorised, whatever mix of filters the rows use.
    """
    h, w, _ = f.shape
    if kinds.max() <= 2:  # None/Sub/Up only: one cumulative sum per row
        out = np.empty_like(f)
        prev = np.zeros_like(f[0])
        for y in range(h):
            row = f[y] + prev if kinds[y] == 2 else f[y]
            out[y] = (np.cumsum(row, axis=0) if kinds[y] == 1 else row) & 0xFF
            prev = out[y]
        return out
    rec = np.zeros((h + 1, w + 1, f.shape[2]), np.int32)  # zero top row, left column
    for d in range(h + w - 1):
        ys = np.arange(max(0, d - w + 1), min(h, d + 1))
        xs = d - ys
        a, b, c = rec[ys + 1, xs], rec[ys, xs + 1], rec[ys, xs]
        kind = kinds[ys][:, None]
        p = a + b - c
        pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        pred = np.select([kind == 1, kind == 2, kind == 3, kind == 4],
                         [a, b, (a + b) >> 1, paeth], 0)
        rec[ys + 1, xs + 1] = (f[ys, xs] + pred) & 0xFF
    return rec[1:, 1:]


def _expand(values, color, depth, palette, trns, name):
    """Apply stb's rules: scale to 16 bits, expand palettes, add tRNS alpha."""
    if color == 3:
        index = values[..., 0]
        if index.max() >= len(palette):
            raise PvmpiError("PNG palette index out of range", file=name)
        table = palette.astype(np.uint16)
        if trns is not None:
            alpha = np.full((len(palette), 1), 255, np.uint16)
            ntr = min(len(trns), len(palette))
            alpha[:ntr, 0] = np.frombuffer(trns[:ntr], np.uint8)
            table = np.concatenate([table, alpha], axis=1)
        return table[index] * np.uint16(257)
    if trns is not None and color in (4, 6):
        raise PvmpiError("PNG has both an alpha channel and tRNS", file=name)
    if depth == 16:
        out = values
    else:
        out = values * np.uint16(_DEPTH_SCALE[depth] * 257)
    if trns is None:
        return out
    nchan = values.shape[2]
    if len(trns) < 2 * nchan:
        raise PvmpiError("bad PNG tRNS chunk", file=name)
    key = np.array(struct.unpack(f">{nchan}H", trns[:2 * nchan]), np.int64)
    if depth < 16:  # stb keeps the low byte of the key and scales it like a sample
        key = ((key & 0xFF) * _DEPTH_SCALE[depth]) & 0xFF
        match = np.all(values * _DEPTH_SCALE[depth] == key, axis=2)
    else:
        match = np.all(values == key, axis=2)
    alpha = np.where(match, 0, 65535).astype(np.uint16)[..., None]
    return np.concatenate([out, alpha], axis=2)


def _decode_with_pillow(path):
    """Non-PNG formats: 8-bit samples times 257, with stb's channel counts."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            fmt = im.format
            im.load()
    except Exception as exc:  # Pillow raises many types for unreadable files
        raise PvmpiError(f"cannot decode image ({exc})", file=str(path)) from None
    mode = im.mode
    if mode == "I" or mode.startswith("I;16"):  # 16-bit PNM data: stb keeps 16 bits
        arr = np.clip(np.asarray(im), 0, 65535).astype(np.uint16)
        return arr[..., None] if arr.ndim == 2 else arr
    has_alpha = mode in ("LA", "RGBA", "PA") or "transparency" in im.info
    if fmt in ("GIF", "PSD"):
        im = im.convert("RGBA")
    elif fmt == "BMP":
        im = im.convert("RGBA" if has_alpha else "RGB")
    elif mode == "1":
        im = im.convert("L")
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        im = im.convert("RGBA" if has_alpha else "RGB")
    arr = np.asarray(im).astype(np.uint16)
    if arr.ndim == 2:
        arr = arr[..., None]
    return arr * np.uint16(257)


def convert_features(img, nf):
    """Convert ``[h, w, c]`` to ``nf`` features exactly as OpenPV does.

    Gray is ``0.30f*R + 0.59f*G + 0.11f*B`` with each float32 operation
    rounded on its own; computing it in double disagrees in many pixels.
    """
    img = np.asarray(img, dtype=np.float32)
    c = img.shape[2]
    if c == nf:
        return img
    if nf not in (1, 2, 3, 4) or c not in (1, 2, 3, 4):
        raise PvmpiError(f"cannot convert an image with {c} channels to nf={nf}",
                         param="nf", hint="ImageLayer supports nf = 1, 2, 3 or 4")
    if c >= 3:
        w0, w1, w2 = _GRAY_WEIGHTS
        gray = (img[..., 0] * w0 + img[..., 1] * w1) + img[..., 2] * w2
    else:
        gray = img[..., 0]
    one = np.ones_like(gray)
    if nf == 1:
        chans = [gray]
    elif nf == 2:
        chans = [gray, img[..., 3] if c == 4 else one]
    elif nf == 3:
        chans = [gray, gray, gray] if c < 3 else [img[..., 0], img[..., 1], img[..., 2]]
    else:
        alpha = img[..., 1] if c == 2 else one
        chans = [gray, gray, gray, alpha] if c < 3 else [img[..., 0], img[..., 1],
                                                          img[..., 2], one]
    return np.stack(chans, axis=2).astype(np.float32, copy=False)


def read_image_list(path):
    """Read an image list: one path per line, trimmed, blank lines skipped.

    Relative paths are returned as written; OpenPV opens them relative to the
    working directory, not to the list file.
    """
    try:
        text = Path(path).read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as exc:
        raise PvmpiError(f"cannot read image list: {exc.strerror or exc}", file=str(path),
                         param="inputPath") from None
    names = [line.strip() for line in text.splitlines()]
    names = [n for n in names if n]
    if not names:
        raise PvmpiError("image list is empty", file=str(path), param="inputPath")
    return names
