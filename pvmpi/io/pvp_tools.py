"""``python -m pvmpi pvp {info,to-npy,to-hdf5,from-images,diff}``: PVP files from the shell.

* ``info FILE...``: header, file type, frames, batch size (inferred from
  timestamps), time range, value range and sparsity; ``--json`` for scripts.
* ``to-npy FILE`` / ``to-hdf5 FILE``: the values as ``[writes, batch, ny, nx, nf]``
  (activity) or ``[frames, arbors, kernels, nyp, nxp, nfp]`` (weights), with
  the timestamps. Frames are streamed, so files larger than memory convert.
* ``from-images LIST -o OUT.pvp``: a dense (type 4) file whose frames are the
  listed images, read as OpenPV's ImageLayer reads them, for a PvpLayer.
* ``diff A B``: compare two files (or two output directories) value by value;
  exit status 0 when equal within ``--rtol``/``--atol``, 1 when not, 2 on an
  error; the first and the largest difference are printed.

Every function here is also usable from Python (:func:`file_info`,
:func:`diff_files`, :func:`images_to_pvp`, ...). Importing this module does
not touch MPI.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from dataclasses import dataclass, field

import numpy as np

from pvmpi.errors import PvmpiError
from pvmpi.io import pvp

FILE_TYPE_NAMES = {
    pvp.PVP_FILE_TYPE: "obsolete activity without timestamps",
    pvp.PVP_ACT_FILE_TYPE: "sparse binary activity, indices only",
    pvp.PVP_WGT_FILE_TYPE: "non-shared weights",
    pvp.PVP_NONSPIKING_ACT_FILE_TYPE: "dense activity",
    pvp.PVP_KERNEL_FILE_TYPE: "shared weights",
    pvp.PVP_ACT_SPARSEVALUES_FILE_TYPE: "sparse activity, index/value pairs",
}
WEIGHT_TYPES = (pvp.PVP_WGT_FILE_TYPE, pvp.PVP_KERNEL_FILE_TYPE)


def is_weights(header):
    """True for a weights file (PVP types 3 and 5)."""
    return header["filetype"] in WEIGHT_TYPES


# --------------------------------------------------------------------------- streaming

def iter_frames(path):
    """Yield (time, values) of every flat frame of a PVP file, in file order.

    Activity: float32 [ny, nx, nf] per frame (batch elements are separate
    frames). Weights: float32 [arbors, patches, nyp, nxp, nfp] per frame.
    """
    h = pvp.read_header(path)
    if is_weights(h):
        f, _, layout, count = pvp._open_weights(path)
        with f:
            for k in range(count):
                t, w, _ = pvp._read_weight_frame(f, str(path), layout, k)
                yield t, w
        return
    with pvp.ActivityFile(path) as af:
        for k in range(af.num_frames):
            yield af.times[k], af.read_frame(k)


class _Stats:
    """Running min, max, sum, sum of squares and nonzero count over float32 frames."""

    def __init__(self):
        self.n = self.nnz = 0
        self.total = self.sumsq = 0.0
        self.min, self.max = math.inf, -math.inf
        self.frame_fraction = []  # nonzero fraction of each frame

    def add(self, values, size=None, nnz=None):
        """Add a frame: dense values, or a sparse frame's stored values and its full size."""
        v = np.asarray(values, np.float64)
        size = v.size if size is None else size
        nnz = int(np.count_nonzero(v)) if nnz is None else nnz
        self.n += size
        self.nnz += nnz
        self.total += float(v.sum())
        self.sumsq += float(np.dot(v.ravel(), v.ravel()))
        if v.size:
            self.min = min(self.min, float(v.min()))
            self.max = max(self.max, float(v.max()))
        if size > v.size:  # sparse frame: the zeros not stored
            self.min, self.max = min(self.min, 0.0), max(self.max, 0.0)
        self.frame_fraction.append(nnz / size if size else 0.0)

    def summary(self):
        if self.n == 0:
            return None
        mean = self.total / self.n
        fr = np.asarray(self.frame_fraction)
        return {"min": self.min, "max": self.max, "mean": mean,
                "std": math.sqrt(max(self.sumsq / self.n - mean * mean, 0.0)),
                "nonzero": self.nnz, "count": self.n, "nonzero_fraction": self.nnz / self.n,
                "nonzero_fraction_min": float(fr.min()), "nonzero_fraction_max": float(fr.max())}


def _times_summary(times):
    times = np.asarray(times, np.float64)
    if times.size == 0:
        return None
    distinct = np.unique(times)
    steps = np.unique(np.diff(distinct))
    return {"first": float(times[0]), "last": float(times[-1]),
            "step": float(steps[0]) if steps.size == 1 else None}


def file_info(path):
    """Everything ``pvp info`` prints, as a JSON-friendly dict."""
    path = str(path)
    h = pvp.read_header(path)
    ftype = h["filetype"]
    info = {"path": path, "size_bytes": os.path.getsize(path), "filetype": ftype,
            "filetype_name": FILE_TYPE_NAMES.get(ftype, "unknown"), "header": h}
    stats = _Stats()
    if is_weights(h):
        f, _, layout, count = pvp._open_weights(path)
        times = np.empty(count)
        with f:
            for k in range(count):
                times[k], w, _ = pvp._read_weight_frame(f, path, layout, k)
                stats.add(w)
        info.update(kind="weights", frames=count, arbors=layout.arbors, patches=layout.patches,
                    nxp=layout.nxp, nyp=layout.nyp, nfp=layout.nfp, compressed=layout.compressed,
                    kernel_grid=[h["nx"], h["ny"], h["nf"]])
    else:
        with pvp.ActivityFile(path) as af:
            times = af.times.copy()
            n = af.num_neurons
            for k in range(af.num_frames):
                if af.filetype == pvp.PVP_NONSPIKING_ACT_FILE_TYPE:
                    stats.add(af.read_frame(k))
                else:
                    idx, val = af.read_frame_sparse(k)
                    stats.add(val, size=n, nnz=int(np.count_nonzero(val)))
            batch = pvp.infer_batch_size(times)
            info.update(kind="activity", frames=af.num_frames, nx=af.nx, ny=af.ny, nf=af.nf,
                        neurons=n, batch_size=batch, writes=af.num_frames // batch)
    info["times"] = _times_summary(times)
    info["values"] = stats.summary()
    return info


def _g(x):
    return f"{x:.6g}"


def format_info(info):
    """The human-readable form of :func:`file_info`."""
    lines = [info["path"],
             f"  file type   {info['filetype']} = {info['filetype_name']}; "
             f"{info['size_bytes']} bytes"]
    if info["kind"] == "weights":
        lines.append(f"  patches     {info['arbors']} arbor(s) x {info['patches']} kernel(s) of "
                     f"{info['nxp']} x {info['nyp']} x {info['nfp']} (nxp x nyp x nfp)"
                     + (", compressed (uint8)" if info["compressed"] else ""))
        lines.append(f"  frames      {info['frames']}")
    else:
        lines.append(f"  frame       {info['nx']} x {info['ny']} x {info['nf']} (nx x ny x nf) "
                     f"= {info['neurons']} neurons")
        lines.append(f"  frames      {info['frames']} = {info['writes']} write(s) x "
                     f"{info['batch_size']} batch element(s) (batch size inferred from timestamps)")
    t = info["times"]
    if t is not None:
        step = f" (every {_g(t['step'])})" if t["step"] is not None else ""
        lines.append(f"  times       {_g(t['first'])} .. {_g(t['last'])}{step}")
    v = info["values"]
    if v is None:
        lines.append("  values      (no frames)")
    else:
        lines.append(f"  values      min {_g(v['min'])}, max {_g(v['max'])}, mean {_g(v['mean'])}, "
                     f"std {_g(v['std'])}")
        lines.append(f"  sparsity    {100 * v['nonzero_fraction']:.3g} % nonzero "
                     f"({v['nonzero']} of {v['count']}; per frame "
                     f"{100 * v['nonzero_fraction_min']:.3g} .. {100 * v['nonzero_fraction_max']:.3g} %)")
    h = info["header"]
    lines.append("  header      " + ", ".join(f"{k} {_g(v) if isinstance(v, float) else v}"
                                             for k, v in h.items()))
    return "\n".join(lines)


# --------------------------------------------------------------------------- conversions

def _frame_slice(text):
    """'A:B' or 'A:B:S' or 'N' -> slice over writes (weights: frames)."""
    if text is None:
        return None
    parts = text.split(":")
    try:
        nums = [int(p) if p.strip() else None for p in parts]
    except ValueError:
        raise PvmpiError(f"--frames {text!r}: expected START:STOP[:STEP] or N") from None
    if len(nums) == 1:
        return slice(nums[0], nums[0] + 1 if nums[0] != -1 else None)
    if len(nums) > 3:
        raise PvmpiError(f"--frames {text!r}: expected START:STOP[:STEP] or N")
    return slice(*nums)


class _Source:
    """One PVP file seen as writes: shape, times, and values streamed one write at a time."""

    def __init__(self, path, frames=None):
        self.path = str(path)
        self.header = pvp.read_header(path)
        self.weights = is_weights(self.header)
        if self.weights:
            f, _, self.layout, count = pvp._open_weights(path)
            f.close()
            self.batch = 1
            self.item_shape = (self.layout.arbors, self.layout.patches, self.layout.nyp,
                               self.layout.nxp, self.layout.nfp)
            self.selection = pvp._selection(count, frames)
            self.times = np.empty(len(self.selection))
        else:
            with pvp.ActivityFile(path) as af:
                self.batch = pvp.infer_batch_size(af.times)
                self.item_shape = (self.batch,) + af.frame_shape
                self.selection = pvp._selection(af.num_frames // self.batch, frames)
                self.times = af.times[np.asarray(self.selection, np.int64) * self.batch]
        self.shape = (len(self.selection),) + self.item_shape

    def writes(self):
        """Yield (i, values) for each selected write (weights: frame)."""
        if self.weights:
            f, _, layout, _ = pvp._open_weights(self.path)
            with f:
                for i, k in enumerate(self.selection):
                    self.times[i], w, _ = pvp._read_weight_frame(f, self.path, layout, k)
                    yield i, w
            return
        with pvp.ActivityFile(self.path) as af:
            for i, t in enumerate(self.selection):
                yield i, af.read_frames(t * self.batch, self.batch)


def _check_output(path, force):
    if os.path.exists(path) and not force:
        raise PvmpiError("output file exists", file=str(path), hint="use --force to overwrite it")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)


def _default_output(path, suffix):
    stem = str(path)[:-4] if str(path).lower().endswith(".pvp") else str(path)
    return stem + suffix


def to_npy(path, out=None, frames=None, force=False):
    """Write the values to OUT.npy and the timestamps to OUT.time.npy; returns both paths.

    An ``.npz`` output holds ``values``, ``time``, ``batch_size``,
    ``filetype`` and the header fields (``header_<name>``) in one file.
    """
    src = _Source(path, frames)
    out = out or _default_output(path, ".npy")
    _check_output(out, force)
    if out.endswith(".npz"):
        data = pvp.read(path, frames)
        extra = {f"header_{k}": v for k, v in data.header.items()}
        np.savez(out, values=data.values, time=data.times, batch_size=data.batch_size,
                 filetype=data.filetype, **extra)
        return [out]
    times_out = out[:-4] + ".time.npy" if out.endswith(".npy") else out + ".time.npy"
    _check_output(times_out, force)
    values = np.lib.format.open_memmap(out, mode="w+", dtype=np.float32, shape=src.shape)
    for i, w in src.writes():
        values[i] = w
    values.flush()
    del values
    np.save(times_out, src.times)
    return [out, times_out]


def to_hdf5(path, out=None, frames=None, force=False, sparse=False, compression=None):
    """Write an HDF5 file: ``values`` (or, with ``sparse``, ``indptr``/``indices``/``data``),
    ``time``, and the header as attributes. Returns the output path."""
    import h5py

    src = _Source(path, frames)
    out = out or _default_output(path, ".h5")
    _check_output(out, force)
    if sparse and src.weights:
        raise PvmpiError("--sparse is for activity files, not weights", file=str(path))
    with h5py.File(out, "w") as h5:
        for k, v in src.header.items():
            h5.attrs[k] = v
        h5.attrs["source"] = os.path.abspath(str(path))
        h5.attrs["batch_size"] = src.batch
        h5.attrs["layout"] = ("[frame, arbor, kernel, nyp, nxp, nfp]" if src.weights
                              else "[write, batch, ny, nx, nf]")
        if sparse:
            data = pvp.read(path, frames, sparse=True)
            sf = data.values
            g = h5.create_group("values")
            g.attrs["shape"] = sf.shape
            g.attrs["format"] = "csr over flat frames n = write*batch + b; column f + nf*(x + nx*y)"
            g.create_dataset("indptr", data=sf.indptr)
            g.create_dataset("indices", data=sf.indices, compression=compression)
            g.create_dataset("data", data=sf.data, compression=compression)
            h5.create_dataset("time", data=data.times)
            return out
        chunks = (1,) + src.item_shape if src.shape[0] else None
        ds = h5.create_dataset("values", shape=src.shape, dtype="<f4", chunks=chunks,
                               compression=compression)
        for i, w in src.writes():
            ds[i] = w
        h5.create_dataset("time", data=src.times)
    return out


def images_to_pvp(list_path, out, nf=None, display_period=1.0, force=False):
    """Write the images of an image list as the frames of a dense PVP file.

    Images are read as OpenPV's ImageLayer reads them (values in [0, 1]) and
    converted to ``nf`` features (default: the first image's channels).
    Frame k has timestamp ``k * display_period``. All images must have the
    same size. Returns the number of frames written.
    """
    from pvmpi.io.images import convert_features, load_image, read_image_list

    names = read_image_list(list_path)
    _check_output(out, force)
    first = load_image(names[0])
    nf = first.shape[2] if nf is None else int(nf)
    ny, nx = first.shape[:2]
    try:
        with pvp.DenseWriter(out, nx, ny, nf) as writer:
            for k, name in enumerate(names):
                img = first if k == 0 else load_image(name)
                if img.shape[:2] != (ny, nx):
                    raise PvmpiError(
                        f"image is {img.shape[1]}x{img.shape[0]} but {names[0]} is {nx}x{ny}",
                        file=name, hint="all images of a PVP file must have the same size")
                try:
                    frame = convert_features(img, nf)
                except PvmpiError as e:
                    raise PvmpiError(e.what, file=name, hint=e.hint) from None
                writer.write(k * float(display_period), frame)
    except BaseException:
        if os.path.exists(out):
            os.remove(out)  # the file was ours, and is incomplete
        raise
    return len(names)


# --------------------------------------------------------------------------- diff

@dataclass
class Difference:
    """Where two frames differ: flat frame index, position in the frame, the two values."""

    frame: int
    time: float
    index: tuple
    a: float
    b: float

    @property
    def abs(self):
        if math.isnan(self.a) or math.isnan(self.b):
            return math.inf
        return abs(self.a - self.b)

    @property
    def rel(self):
        scale = max(abs(self.a), abs(self.b))
        return self.abs / scale if scale else (0.0 if self.abs == 0 else math.inf)


@dataclass
class DiffResult:
    """Outcome of comparing two PVP files."""

    path_a: str
    path_b: str
    equal: bool = True
    compared: int = 0             # values compared
    differing: int = 0            # values outside the tolerance
    first: Difference | None = None
    largest: Difference | None = None
    problems: list = field(default_factory=list)  # structural differences (shape, frames, times)
    weights: bool = False
    batch: int = 1


def _location(weights, batch, frame, index):
    """Human-readable place of a value in a file."""
    if weights:
        a, k, y, x, f = index
        return f"frame {frame}, arbor {a}, kernel {k}, y {y}, x {x}, f {f}"
    y, x, f = index
    return f"write {frame // batch}, batch element {frame % batch}, y {y}, x {x}, f {f}"


def _shape_of(path):
    h = pvp.read_header(path)
    if is_weights(h):
        f, _, layout, count = pvp._open_weights(path)
        f.close()
        return True, (layout.arbors, layout.patches, layout.nyp, layout.nxp, layout.nfp), count, h
    with pvp.ActivityFile(path) as af:
        return False, af.frame_shape, af.num_frames, h


def diff_files(path_a, path_b, rtol=1e-5, atol=1e-8):
    """Compare two PVP files value by value; returns a :class:`DiffResult`.

    Values a, b are equal when ``|a - b| <= atol + rtol * max(|a|, |b|)``
    (symmetric in A and B); NaN equals NaN. Timestamps must agree within
    the same tolerance. Dense and sparse files of one layer compare by their
    values (a note is added). The frames are streamed, one at a time.
    """
    res = DiffResult(str(path_a), str(path_b))
    wa, shape_a, na, ha = _shape_of(path_a)
    wb, shape_b, nb, hb = _shape_of(path_b)
    if wa != wb or shape_a != shape_b:
        what = lambda w, s: ("weights " if w else "activity ") + "x".join(map(str, s))  # noqa: E731
        res.problems.append(f"different shapes: {what(wa, shape_a)} vs {what(wb, shape_b)}")
        res.equal = False
        return res
    if ha["filetype"] != hb["filetype"]:
        res.problems.append(f"note: file types differ ({ha['filetype']} vs {hb['filetype']}); "
                            f"comparing values")
    if na != nb:
        res.problems.append(f"different frame counts: {na} vs {nb}; comparing the first {min(na, nb)}")
        res.equal = False
    res.weights = wa
    if not wa:
        with pvp.ActivityFile(path_a) as af:
            res.batch = pvp.infer_batch_size(af.times)
    bad_time = None
    for n, ((ta, a), (tb, b)) in enumerate(zip(iter_frames(path_a), iter_frames(path_b))):
        if bad_time is None and not abs(ta - tb) <= atol + rtol * max(abs(ta), abs(tb)):
            bad_time = f"different timestamps from frame {n} on: {ta:g} vs {tb:g}"
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        d = np.abs(a64 - b64)
        nan_a, nan_b = np.isnan(a64), np.isnan(b64)
        d[nan_a | nan_b] = np.inf
        d[nan_a & nan_b] = 0.0
        tol = atol + rtol * np.maximum(np.abs(a64), np.abs(b64))
        bad = d > tol
        res.compared += d.size
        if d.size:
            k = int(np.argmax(d))
            if res.largest is None or d.flat[k] > res.largest.abs:
                idx = np.unravel_index(k, d.shape)
                res.largest = Difference(n, float(ta), tuple(int(i) for i in idx),
                                         float(a.flat[k]), float(b.flat[k]))
        count = int(np.count_nonzero(bad))
        if count:
            res.differing += count
            res.equal = False
            if res.first is None:
                k = int(np.flatnonzero(bad)[0])
                idx = np.unravel_index(k, d.shape)
                res.first = Difference(n, float(ta), tuple(int(i) for i in idx),
                                       float(a.flat[k]), float(b.flat[k]))
    if bad_time is not None:
        res.problems.append(bad_time)
        res.equal = False
    return res


def format_diff(res, rtol, atol):
    """The report of ``pvp diff``: the verdict, then the first and the largest difference."""
    tol = f"rtol {rtol:g}, atol {atol:g}"
    lines = [f"{res.path_a} vs {res.path_b}: "
             + (f"equal within {tol}" if res.equal else f"DIFFERENT ({tol})")]
    lines += [f"  {p}" for p in res.problems]
    where = lambda d: _location(res.weights, res.batch, d.frame, d.index)  # noqa: E731
    if res.differing:
        lines.append(f"  {res.differing} of {res.compared} values differ")
    if res.first is not None:
        d = res.first
        lines.append(f"  first difference:   {where(d)} (t = {d.time:g}): {d.a!r} vs {d.b!r} "
                     f"(|diff| {d.abs:.3g}, relative {d.rel:.3g})")
    if res.largest is not None and res.largest.abs == 0:
        lines.append(f"  all {res.compared} compared values are identical")
    elif res.largest is not None:
        d = res.largest
        lines.append(f"  largest difference: {where(d)} (t = {d.time:g}): {d.a!r} vs {d.b!r} "
                     f"(|diff| {d.abs:.3g}, relative {d.rel:.3g})")
    return "\n".join(lines)


def _pvp_files(root):
    out = []
    for dirpath, _, files in os.walk(root):
        for name in files:
            if name.endswith(".pvp"):
                out.append(os.path.relpath(os.path.join(dirpath, name), root))
    return sorted(out)


def diff_paths(a, b, rtol=1e-5, atol=1e-8, out=None, quiet=False):
    """Compare two files, or every .pvp file of two directories; True when all are equal."""
    out = sys.stdout if out is None else out
    if os.path.isdir(a) and os.path.isdir(b):
        fa, fb = _pvp_files(a), _pvp_files(b)
        equal = True
        for rel in sorted(set(fa) - set(fb)):
            equal = False
            print(f"only in {a}: {rel}", file=out)
        for rel in sorted(set(fb) - set(fa)):
            equal = False
            print(f"only in {b}: {rel}", file=out)
        common = sorted(set(fa) & set(fb))
        same = 0
        for rel in common:
            res = diff_files(os.path.join(a, rel), os.path.join(b, rel), rtol, atol)
            same += res.equal
            equal &= res.equal
            if not quiet or not res.equal:
                print(format_diff(res, rtol, atol), file=out)
        print(f"{same} of {len(common)} common .pvp files equal within rtol {rtol:g}, atol {atol:g}",
              file=out)
        return equal
    for p in (a, b):
        if os.path.isdir(p):
            raise PvmpiError("is a directory (give two files or two directories)", file=p)
    res = diff_files(a, b, rtol, atol)
    if not quiet or not res.equal:
        print(format_diff(res, rtol, atol), file=out)
    return res.equal


# --------------------------------------------------------------------------- command line

def build_parser():
    """The ``python -m pvmpi pvp`` command line and its subcommands."""
    p = argparse.ArgumentParser(prog="python -m pvmpi pvp",
                                description="Inspect, convert, make and compare PVP files.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("info", help="header, frames, batch size, value range and sparsity")
    s.add_argument("files", nargs="+", metavar="FILE")
    s.add_argument("--json", action="store_true", help="print one JSON object per file")

    for name, what in (("to-npy", "a .npy file (and FILE.time.npy), or one .npz"),
                       ("to-hdf5", "an HDF5 file (datasets values and time)")):
        s = sub.add_parser(name, help=f"convert to {what}")
        s.add_argument("file", metavar="FILE")
        s.add_argument("-o", "--output", help="output path (default: FILE with a new extension)")
        s.add_argument("--frames", metavar="START:STOP[:STEP]",
                       help="only these writes (activity) or frames (weights)")
        s.add_argument("-f", "--force", action="store_true", help="overwrite an existing output")
        if name == "to-hdf5":
            s.add_argument("--sparse", action="store_true",
                           help="activity as CSR index/value arrays (indptr, indices, data)")
            s.add_argument("--gzip", action="store_true", help="compress the datasets")

    s = sub.add_parser("from-images", help="make a dense PVP file (a PvpLayer input) from images")
    s.add_argument("list", metavar="LIST", help="image list: one image path per line")
    s.add_argument("-o", "--output", required=True, metavar="OUT.pvp")
    s.add_argument("--nf", type=int, help="features: 1 gray, 3 colour, ... (default: the "
                                          "first image's channels)")
    s.add_argument("--display-period", type=float, default=1.0,
                   help="timestamp step between frames (default 1: time = frame index)")
    s.add_argument("-f", "--force", action="store_true", help="overwrite an existing output")

    s = sub.add_parser("diff", help="compare two files or two output directories "
                                    "(exit 0 equal, 1 different, 2 error)")
    s.add_argument("a", metavar="A")
    s.add_argument("b", metavar="B")
    s.add_argument("--rtol", type=float, default=1e-5, help="relative tolerance (default 1e-5)")
    s.add_argument("--atol", type=float, default=1e-8, help="absolute tolerance (default 1e-8)")
    s.add_argument("-q", "--quiet", action="store_true", help="print only differences")
    return p


def _fail(message):
    sys.stdout.flush()
    print(f"pvmpi: error: {message}", file=sys.stderr, flush=True)


def main(argv=None):
    """``python -m pvmpi pvp COMMAND``; an error exits 1 (2 for diff, whose 1 means "different")."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    error_status = 2 if args.command == "diff" else 1
    try:
        return _run(args)
    except PvmpiError as e:
        _fail(e)
        return error_status
    except IndexError as e:
        _fail(e)
        return error_status


def _run(args):
    cmd = args.command
    if cmd == "info":
        for i, path in enumerate(args.files):
            info = file_info(path)
            if args.json:
                print(json.dumps(info))
            else:
                print(("\n" if i else "") + format_info(info))
        return 0
    if cmd == "to-npy":
        for out in to_npy(args.file, args.output, _frame_slice(args.frames), args.force):
            print(f"wrote {out}")
        return 0
    if cmd == "to-hdf5":
        out = to_hdf5(args.file, args.output, _frame_slice(args.frames), args.force, args.sparse,
                      "gzip" if args.gzip else None)
        print(f"wrote {out}")
        return 0
    if cmd == "from-images":
        n = images_to_pvp(args.list, args.output, args.nf, args.display_period, args.force)
        print(f"wrote {args.output}: {n} frame(s)")
        return 0
    if cmd == "diff":
        if args.rtol < 0 or args.atol < 0:
            raise PvmpiError("--rtol and --atol must be >= 0")
        return 0 if diff_paths(args.a, args.b, args.rtol, args.atol, quiet=args.quiet) else 1
    raise AssertionError(cmd)


if __name__ == "__main__":
    sys.exit(main())
