"""PVP files: OpenPV's binary format for layer activity and weights.

This module is the one place that knows the header layout (facts section 1):
readers for dense (type 4), sparse (types 6 and 2) and shared-weight (type 5)
files, writers that keep every file valid after each write, and :func:`read`,
the analysis entry point that regroups frames by batch element.

Files are little-endian raw structs; every layout below is an explicit numpy
dtype so that a frame is read or written with one call. Importing this module
does not touch MPI.
"""
from __future__ import annotations

import os
import warnings
from array import array
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from pvmpi.errors import PvmpiError
from pvmpi.io.outputs import Rewindable, naming, rewindable, track

# File types (`fileType`, facts 1.3).
PVP_FILE_TYPE = 1
PVP_ACT_FILE_TYPE = 2
PVP_WGT_FILE_TYPE = 3
PVP_NONSPIKING_ACT_FILE_TYPE = 4
PVP_KERNEL_FILE_TYPE = 5
PVP_ACT_SPARSEVALUES_FILE_TYPE = 6

# Data types (`dataType`, facts 1.4).
DATATYPE_BYTE = 1
DATATYPE_FLOAT = 3
DATATYPE_TAUS_UINT4 = 5  # random generator states (rand_state checkpoint files)

_INT_FIELDS = (
    "headersize", "numparams", "filetype", "nx", "ny", "nf", "numrecords",
    "recordsize", "datasize", "datatype", "nxprocs", "nyprocs", "nxExtended",
    "nyExtended", "kx0", "ky0", "nbatch", "nbands",
)
ACTIVITY_HEADER = np.dtype([(name, "<i4") for name in _INT_FIELDS] + [("time", "<f8")])
WEIGHT_HEADER = np.dtype(
    ACTIVITY_HEADER.descr
    + [("nxp", "<i4"), ("nyp", "<i4"), ("nfp", "<i4"),
       ("wMin", "<f4"), ("wMax", "<f4"), ("numpatches", "<i4")]
)
assert ACTIVITY_HEADER.itemsize == 80 and WEIGHT_HEADER.itemsize == 104
NBANDS_OFFSET = ACTIVITY_HEADER.fields["nbands"][1]  # 68: rewritten after each write
NBATCH_OFFSET = ACTIVITY_HEADER.fields["nbatch"][1]  # 64: the frames of one write (the batch)

SPARSE_PREFIX = np.dtype([("time", "<f8"), ("count", "<i4")])  # starts a sparse frame
SPARSE_ENTRY = np.dtype([("index", "<u4"), ("value", "<f4")])  # type 6 entry
BINARY_ENTRY = np.dtype("<u4")  # type 2 entry
_DENSE_TIME = np.dtype("<f8")


class PvpWarning(UserWarning):
    """A PVP file is readable but its header disagrees with its data."""


# --------------------------------------------------------------------------- headers

def _open(path, mode):
    """Open a file, turning OS errors into one clear user error naming it."""
    try:
        return open(path, mode)
    except FileNotFoundError:
        raise PvmpiError("file not found", file=str(path)) from None
    except OSError as exc:
        raise PvmpiError(f"cannot open file: {exc.strerror}", file=str(path)) from None


def _file_size(f):
    return os.fstat(f.fileno()).st_size


def _to_dict(record):
    return {name: record[name].item() for name in record.dtype.names}


def _pack_header(fields):
    """Header bytes from a dict of field values (missing fields are 0)."""
    dtype = WEIGHT_HEADER if fields["headersize"] == WEIGHT_HEADER.itemsize else ACTIVITY_HEADER
    rec = np.zeros(1, dtype)
    for name, value in fields.items():
        rec[name] = value
    return rec.tobytes()


def _read_header(f, path):
    """Read and validate one header at the current position of an open file."""
    raw = f.read(ACTIVITY_HEADER.itemsize)
    if len(raw) < ACTIVITY_HEADER.itemsize:
        raise PvmpiError(f"truncated PVP header ({len(raw)} of 80 bytes)", file=path)
    h = _to_dict(np.frombuffer(raw, ACTIVITY_HEADER)[0])
    size, nparams, ftype = h["headersize"], h["numparams"], h["filetype"]
    if size not in (ACTIVITY_HEADER.itemsize, WEIGHT_HEADER.itemsize):
        raise PvmpiError(f"not a PVP file: headersize {size}", file=path,
                         hint="expected 80 (activity) or 104 (weights), little-endian")
    if nparams * 4 != size:
        raise PvmpiError(f"inconsistent PVP header: numparams {nparams} but headersize {size}",
                         file=path)
    if not 1 <= ftype <= 6:
        raise PvmpiError(f"unknown PVP file type {ftype}", file=path)
    want = WEIGHT_HEADER.itemsize if ftype in (PVP_WGT_FILE_TYPE, PVP_KERNEL_FILE_TYPE) \
        else ACTIVITY_HEADER.itemsize
    if size != want:
        raise PvmpiError(f"inconsistent PVP header: file type {ftype} needs headersize {want}, "
                         f"header says {size}", file=path)
    if size == WEIGHT_HEADER.itemsize:
        extra = f.read(WEIGHT_HEADER.itemsize - ACTIVITY_HEADER.itemsize)
        if len(extra) < WEIGHT_HEADER.itemsize - ACTIVITY_HEADER.itemsize:
            raise PvmpiError("truncated PVP weight header", file=path)
        h = _to_dict(np.frombuffer(raw + extra, WEIGHT_HEADER)[0])
    return h


def read_header(path_or_fileobj):
    """Header of a PVP file as a dict with pvtools' field names.

    A file object is read from its current position (weight files repeat the
    header before every frame) and is left just after the header.
    """
    if hasattr(path_or_fileobj, "read"):
        return _read_header(path_or_fileobj, str(getattr(path_or_fileobj, "name", "<file>")))
    with _open(path_or_fileobj, "rb") as f:
        return _read_header(f, str(path_or_fileobj))


def _activity_header(filetype, nx, ny, nf, nbands):
    """Header fields as current OpenPV writes them for an activity file."""
    dense = filetype == PVP_NONSPIKING_ACT_FILE_TYPE
    return dict(
        headersize=80, numparams=20, filetype=filetype, nx=nx, ny=ny, nf=nf, numrecords=1,
        recordsize=nx * ny * nf if dense else 0, datasize=4 if dense else 8,
        datatype=DATATYPE_FLOAT, nxprocs=1, nyprocs=1, nxExtended=nx, nyExtended=ny,
        kx0=0, ky0=0, nbatch=1, nbands=nbands, time=0.0,
    )


def _frame_index(n, count, path):
    """Normalise a (possibly negative) frame number, as Python sequences do."""
    k = int(n)
    if k < 0:
        k += count
    if not 0 <= k < count:
        raise IndexError(f"{path}: frame {n} out of range (file has {count} frames)")
    return k


#: a sparse frame names its neurons with 32-bit indices
MAX_SPARSE_NEURONS = 2 ** 32


def _memory_bytes():
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 2 ** 40


def _dense_buffer(count, num_neurons, path):
    """Zeros float32 [count, num_neurons] for expanding sparse frames, refused beyond half the memory.

    A sparse file's data do not bound its dense size (a few bytes can claim a
    huge layer), so the header's claim is checked before anything is allocated.
    """
    nbytes = 4 * count * num_neurons
    if nbytes > _memory_bytes() // 2:
        raise PvmpiError(f"expanding {count} sparse frame(s) of nx*ny*nf={num_neurons} neurons needs "
                         f"{nbytes / 2 ** 30:.1f} GiB, more than half of this machine's memory", file=path,
                         hint="read(path, sparse=True) keeps the frames sparse")
    return np.zeros((count, num_neurons), np.float32)


def _check_positive(h, names, path):
    bad = [f"{k} {h[k]}" for k in names if h[k] <= 0]
    if bad:
        raise PvmpiError(f"inconsistent PVP header: {', '.join(bad)}", file=path)


# --------------------------------------------------------------------------- activity

class _SparseScan(NamedTuple):
    offsets: np.ndarray  # byte offset of each frame
    counts: np.ndarray   # numActive of each frame
    times: np.ndarray
    end: int             # where the last whole frame ends
    tail: str | None     # why the bytes after `end` are not a frame


def _scan_sparse(f, path, filetype, num_neurons, start, file_size):
    """Walk the variable-length sparse frames once, building the offset table."""
    entry = SPARSE_ENTRY.itemsize if filetype == PVP_ACT_SPARSEVALUES_FILE_TYPE \
        else BINARY_ENTRY.itemsize
    offsets, counts, times = array("q"), array("q"), array("d")
    pos, tail = start, None
    while pos < file_size:
        k = len(offsets)
        if file_size - pos < SPARSE_PREFIX.itemsize:
            tail = f"frame {k} runs past the end of the file"
            break
        f.seek(pos)
        prefix = np.frombuffer(f.read(SPARSE_PREFIX.itemsize), SPARSE_PREFIX)[0]
        count = int(prefix["count"])
        if not 0 <= count <= num_neurons:
            raise PvmpiError(f"corrupt sparse frame {k}: numActive {count} outside "
                             f"0..nx*ny*nf={num_neurons}", file=path)
        end = pos + SPARSE_PREFIX.itemsize + count * entry
        if end > file_size:
            tail = f"frame {k} ({count} active) runs past the end of the file"
            break
        offsets.append(pos)
        counts.append(count)
        times.append(float(prefix["time"]))
        pos = end
    return _SparseScan(np.asarray(offsets, np.int64), np.asarray(counts, np.int64),
                       np.asarray(times, np.float64), pos, tail)


class ActivityFile:
    """An open activity file (type 4, 6 or 2) read frame by frame.

    The file stays open and only the frames asked for are read, so input
    layers can step through files larger than memory.
    """

    def __init__(self, path):
        self.path = str(path)
        self._f = _open(path, "rb")
        try:
            self._load()
        except BaseException:
            self._f.close()
            raise

    def _load(self):
        h = _read_header(self._f, self.path)
        ftype = h["filetype"]
        if ftype not in (PVP_ACT_FILE_TYPE, PVP_NONSPIKING_ACT_FILE_TYPE,
                         PVP_ACT_SPARSEVALUES_FILE_TYPE):
            raise PvmpiError(f"unsupported PVP file type {ftype} for activity", file=self.path,
                             hint="types 4 (dense), 6 (sparse values) and 2 (sparse binary) "
                                  "are supported; weights are read with read_weights")
        _check_positive(h, ("nx", "ny", "nf"), self.path)
        self.header, self.filetype = h, ftype
        self.nx, self.ny, self.nf = h["nx"], h["ny"], h["nf"]
        self.num_neurons = self.nx * self.ny * self.nf
        if ftype != PVP_NONSPIKING_ACT_FILE_TYPE and self.num_neurons > MAX_SPARSE_NEURONS:
            raise PvmpiError(f"inconsistent PVP header: nx*ny*nf = {self.num_neurons} neurons, more than a "
                             "sparse file's 32-bit indices can name", file=self.path)
        if ftype == PVP_NONSPIKING_ACT_FILE_TYPE:
            self._index_dense()
        else:
            self._index_sparse()
        if self.num_frames != h["nbands"]:
            warnings.warn(f"{self.path}: header nbands is {h['nbands']} but the file holds "
                          f"{self.num_frames} frames; using {self.num_frames}",
                          PvpWarning, stacklevel=3)

    def _index_dense(self):
        h = self.header
        if (h["datasize"], h["datatype"]) != (4, DATATYPE_FLOAT):
            raise PvmpiError(f"unsupported dense data: datasize {h['datasize']}, "
                             f"datatype {h['datatype']}", file=self.path,
                             hint="only float32 (datasize 4, datatype 3) is supported")
        self._frame_bytes = _DENSE_TIME.itemsize + 4 * self.num_neurons
        count, rem = divmod(_file_size(self._f) - ACTIVITY_HEADER.itemsize, self._frame_bytes)
        if rem:
            raise PvmpiError(f"truncated file: frame {count} runs past the end of the file",
                             file=self.path, hint=f"frames are {self._frame_bytes} bytes")
        self.num_frames = count
        self.times = np.empty(count, np.float64)
        for k in range(count):
            self._f.seek(self._dense_offset(k))
            self.times[k] = np.frombuffer(self._f.read(_DENSE_TIME.itemsize), _DENSE_TIME)[0]

    def _dense_offset(self, k):
        return ACTIVITY_HEADER.itemsize + k * self._frame_bytes

    def _index_sparse(self):
        scan = _scan_sparse(self._f, self.path, self.filetype, self.num_neurons,
                            ACTIVITY_HEADER.itemsize, _file_size(self._f))
        if scan.tail is not None:
            raise PvmpiError(f"truncated file: {scan.tail}", file=self.path)
        self._offsets, self._counts = scan.offsets, scan.counts
        self.num_frames, self.times = len(scan.offsets), scan.times

    @property
    def frame_shape(self):
        return (self.ny, self.nx, self.nf)

    def frames_before(self, position):
        """How many whole frames end at byte ``position`` (None: it is not between two frames)."""
        if self.filetype == PVP_NONSPIKING_ACT_FILE_TYPE:
            starts = [self._dense_offset(k) for k in range(self.num_frames + 1)]
        else:
            starts = list(self._offsets) + [_file_size(self._f)]
        return starts.index(position) if position in starts else None

    def __len__(self):
        return self.num_frames

    def read_frame(self, n):
        """Frame n as float32 [ny, nx, nf]; sparse frames are expanded."""
        k = _frame_index(n, self.num_frames, self.path)
        return self.read_frames(k, 1)[0]

    def read_frames(self, start, count):
        """`count` consecutive frames from `start` as float32 [count, ny, nx, nf]."""
        if count < 0 or start < 0 or start + count > self.num_frames:
            raise IndexError(f"{self.path}: frames {start}..{start + count - 1} out of range "
                             f"(file has {self.num_frames} frames)")
        if self.filetype == PVP_NONSPIKING_ACT_FILE_TYPE:
            return self._read_dense(start, count)
        out = _dense_buffer(count, self.num_neurons, self.path)
        for i in range(count):
            indices, values = self.read_frame_sparse(start + i)
            out[i, indices] = values
        return out.reshape((count,) + self.frame_shape)

    def _read_dense(self, start, count):
        """Read frames straight into the result, skipping each timestamp (no extra copy)."""
        out = np.empty((count, self.num_neurons), np.float32)
        for i in range(count):
            self._f.seek(self._dense_offset(start + i) + _DENSE_TIME.itemsize)
            if self._f.readinto(out[i]) != out[i].nbytes:
                raise PvmpiError(f"truncated file: frame {start + i} ends early", file=self.path)
        return out.reshape((count,) + self.frame_shape)

    def read_frame_sparse(self, n):
        """Frame n as (indices uint32, values float32), indices f + nf*(x + nx*y)."""
        k = _frame_index(n, self.num_frames, self.path)
        if self.filetype == PVP_NONSPIKING_ACT_FILE_TYPE:
            flat = self._read_dense(k, 1).ravel()
            indices = np.flatnonzero(flat)
            return indices.astype(np.uint32), flat[indices]
        entry = SPARSE_ENTRY if self.filetype == PVP_ACT_SPARSEVALUES_FILE_TYPE else BINARY_ENTRY
        count = int(self._counts[k])
        self._f.seek(int(self._offsets[k]) + SPARSE_PREFIX.itemsize)
        raw = self._f.read(count * entry.itemsize)
        if len(raw) != count * entry.itemsize:
            raise PvmpiError(f"truncated file: frame {k} ends early", file=self.path)
        rec = np.frombuffer(raw, entry)
        if entry is SPARSE_ENTRY:
            indices, values = rec["index"].astype(np.uint32), rec["value"].astype(np.float32)
        else:
            indices, values = rec.astype(np.uint32), np.ones(count, np.float32)
        if count and int(indices.max()) >= self.num_neurons:
            raise PvmpiError(f"corrupt sparse frame {k}: index {int(indices.max())} >= "
                             f"nx*ny*nf={self.num_neurons}", file=self.path)
        return indices, values

    def close(self):
        """Close the file; no frames can be read after it."""
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return (f"ActivityFile({self.path!r}, type {self.filetype}, "
                f"{self.ny}x{self.nx}x{self.nf}, {self.num_frames} frames)")


# --------------------------------------------------------------------------- writers

def _as_batch(frames, shape):
    """Frames as float32 [B, ny*nx*nf], accepting one frame without its batch axis."""
    a = np.asarray(frames, dtype="<f4")
    if a.shape == shape:
        a = a[None]
    if a.ndim != 4 or a.shape[1:] != shape:
        raise ValueError(f"frames must be [B, {shape[0]}, {shape[1]}, {shape[2]}] or "
                         f"{list(shape)}, got {list(a.shape)}")
    return np.ascontiguousarray(a.reshape(a.shape[0], -1))


def _check_dims(nx, ny, nf):
    if min(nx, ny, nf) <= 0:
        raise ValueError(f"nx, ny, nf must be positive, got {nx}, {ny}, {nf}")
    return int(nx), int(ny), int(nf)


def _check_append(h, want, path):
    """Refuse to append to a file whose header describes a different layout."""
    for key, value in want.items():
        if h[key] != value:
            raise PvmpiError(f"cannot append: file has {key} {h[key]}, the writer needs {value}",
                             file=path, hint="use a new output path or remove the file")


def _drop_tail(f, path, end, why):
    """Cut an interrupted last frame so that appends continue from whole frames."""
    warnings.warn(f"{path}: {why}; removing the partial frame before appending",
                  PvpWarning, stacklevel=2)
    f.truncate(end)


class _FrameWriter(Rewindable):
    """Plumbing shared by the writers: whole frames after a header, one end offset each."""

    _header_end = 0

    def _open(self, path, append):
        """Open for writing; True when an existing file is being continued."""
        self.path = str(path)
        self._ends = array("q")
        exists = append and os.path.exists(path) and os.path.getsize(path) > 0
        self._f = track(_open(path, "r+b" if exists else "w+b"))  # a checkpoint fsyncs it first
        rewindable(self)
        return exists

    def _closing_on_error(self, step):
        """Run a setup step, closing the file if it fails (e.g. a refused append)."""
        try:
            step()
        except BaseException:
            self._f.close()
            raise

    @property
    def num_frames(self):
        return len(self._ends)

    def _place(self):
        return len(self._ends)

    @property
    def closed(self):
        return self._f.closed

    @property
    def position(self):
        """Bytes of whole frames written: where the next frame goes (OpenPV checkpoints it)."""
        return self._end()

    def _end(self):
        return self._ends[-1] if self._ends else self._header_end

    def _append(self, chunks, frame_sizes):
        """Write whole frames at the end, then fix the header, so the file stays valid."""
        self._note()
        start = self._end()
        with naming(self.path):
            self._f.seek(start)
            for chunk in chunks:
                self._f.write(chunk)
            self._ends.extend((start + np.cumsum(frame_sizes, dtype=np.int64)).tolist())
            self._frames_changed()
            self._f.flush()

    def _frames_changed(self):
        """Hook: activity files keep their frame count in nbands."""

    def truncate(self, num_frames):
        """Cut the file back to its first `num_frames` frames (for restarts)."""
        if not 0 <= num_frames <= self.num_frames:
            raise ValueError(f"{self.path}: cannot truncate {self.num_frames} frames "
                             f"to {num_frames}")
        del self._ends[num_frames:]
        self._f.truncate(self._end())
        self._frames_changed()
        self._f.seek(self._end())
        self._f.flush()

    def flush(self):
        """Flush the file (an error names it)."""
        with naming(self.path):
            self._f.flush()

    def close(self):
        """Close the file (an error names it)."""
        with naming(self.path):
            self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _ActivityWriter(_FrameWriter):
    """Activity writers: an 80-byte header whose nbands counts the frames."""

    _header_end = ACTIVITY_HEADER.itemsize
    filetype = None

    def __init__(self, path, nx, ny, nf, append=False):
        self.nx, self.ny, self.nf = _check_dims(nx, ny, nf)
        self.num_neurons = self.nx * self.ny * self.nf
        if self._open(path, append):
            self._closing_on_error(self._resume)
        else:
            self._f.write(_pack_header(_activity_header(self.filetype, self.nx, self.ny,
                                                        self.nf, 0)))
            self._f.flush()

    @property
    def frame_shape(self):
        return (self.ny, self.nx, self.nf)

    nbatch = None  # frames per write, written into the header at the first write

    def _note_batch(self, count):
        """The header's nbatch: the global batch size, as PetaVision's batch release wrote it for
        analysis scripts (frames = nbands / nbatch; OpenPV writes 1 and no reader uses it)."""
        if self.nbatch is None and count > 0:
            self.nbatch = count
            self._f.seek(NBATCH_OFFSET)
            self._f.write(np.array(count, "<i4").tobytes())

    def _resume(self):
        h = _read_header(self._f, self.path)
        _check_append(h, dict(filetype=self.filetype, nx=self.nx, ny=self.ny, nf=self.nf),
                      self.path)
        self.nbatch = h["nbatch"] if h["nbatch"] > 1 else None
        self._index_existing(_file_size(self._f))
        self._frames_changed()
        self._f.flush()

    def _frames_changed(self):
        self._f.seek(NBANDS_OFFSET)
        self._f.write(np.array(self.num_frames, "<i4").tobytes())


class DenseWriter(_ActivityWriter):
    """Writes dense activity (type 4), as OpenPV writes layer output and checkpoints."""

    filetype = PVP_NONSPIKING_ACT_FILE_TYPE

    def _frame_record(self):
        return np.dtype([("time", "<f8"), ("data", "<f4", (self.num_neurons,))])

    def _index_existing(self, size):
        frame_bytes = self._frame_record().itemsize
        count, rem = divmod(size - self._header_end, frame_bytes)
        end = self._header_end + count * frame_bytes
        if rem:
            _drop_tail(self._f, self.path, end, f"frame {count} runs past the end of the file")
        self._ends.extend(range(self._header_end + frame_bytes, end + 1, frame_bytes))

    def write(self, time, frames):
        """Append the frames of one write ([B, ny, nx, nf] or [ny, nx, nf]), all at `time`."""
        data = _as_batch(frames, self.frame_shape)
        self._note_batch(len(data))
        stamp = np.array(time, _DENSE_TIME).tobytes()
        chunks = [part for row in data for part in (stamp, row)]
        self._append(chunks, [self._frame_record().itemsize] * len(data))


def _clean_active(indices, values, num_neurons):
    """An active list in file order: increasing unique indices, zeros dropped."""
    idx = np.asarray(indices).astype(np.int64).ravel()
    val = np.asarray(values, dtype=np.float32).ravel()
    if idx.shape != val.shape:
        raise ValueError(f"{idx.size} indices but {val.size} values")
    if idx.size and (idx.min() < 0 or idx.max() >= num_neurons):
        raise ValueError(f"sparse index outside 0..{num_neurons - 1}")
    order = np.argsort(idx, kind="stable")
    idx, val = idx[order], val[order]
    if np.any(np.diff(idx) == 0):
        raise ValueError("repeated index in a sparse frame")
    keep = val != 0
    return idx[keep], val[keep]


class SparseWriter(_ActivityWriter):
    """Writes sparse-values activity (type 6): only the nonzero values of each frame."""

    filetype = PVP_ACT_SPARSEVALUES_FILE_TYPE

    def _index_existing(self, size):
        scan = _scan_sparse(self._f, self.path, self.filetype, self.num_neurons,
                            self._header_end, size)
        if scan.tail is not None:
            _drop_tail(self._f, self.path, scan.end, scan.tail)
        ends = scan.offsets + SPARSE_PREFIX.itemsize + scan.counts * SPARSE_ENTRY.itemsize
        self._ends.extend(ends.tolist())

    def write(self, time, frames):
        """Append the frames of one write ([B, ny, nx, nf] or [ny, nx, nf]), all at `time`."""
        data = _as_batch(frames, self.frame_shape)
        active = []
        for row in data:
            idx = np.flatnonzero(row)
            active.append((idx, row[idx]))
        self._write_lists(time, active)

    def write_sparse(self, time, active):
        """Append one frame per (indices, values) pair, all at `time`."""
        self._write_lists(time, [_clean_active(i, v, self.num_neurons) for i, v in active])

    def write_sorted(self, time, active):
        """Append one frame per (indices, values) pair already in file order, all at `time`.

        For lists a kernel made (increasing unique indices in range, no zero
        values): appended as they are, without write_sparse's sort and checks.
        """
        self._write_lists(time, active)

    def _write_lists(self, time, active):
        self._note_batch(len(active))
        chunks, sizes = [], []
        for idx, val in active:
            prefix = np.array([(time, len(idx))], SPARSE_PREFIX)
            entries = np.empty(len(idx), SPARSE_ENTRY)
            entries["index"] = idx
            entries["value"] = val
            chunks += [prefix, entries]
            sizes.append(prefix.nbytes + entries.nbytes)
        self._append(chunks, sizes)


# --------------------------------------------------------------------------- weights

class _WeightsLayout(NamedTuple):
    arbors: int
    patches: int
    nyp: int
    nxp: int
    nfp: int
    compressed: bool
    frame_bytes: int


_PATCH_HEADER_BYTES = 8


def _patch_record(nyp, nxp, nfp, compressed):
    """One stored patch: the 8-byte patch header, then its values in [y][x][f] order."""
    return np.dtype([("nx", "<u2"), ("ny", "<u2"), ("offset", "<u4"),
                     ("w", "u1" if compressed else "<f4", (nyp, nxp, nfp))])


def _patch_bytes(nyp, nxp, nfp, compressed):
    """Bytes of one stored patch, by arithmetic: a header's sizes may be absurd, a dtype of them fails."""
    return _PATCH_HEADER_BYTES + nyp * nxp * nfp * (1 if compressed else 4)


def _weights_layout(h, path):
    """Frame geometry from the fields OpenPV keeps right (numpatches, nxp..), not nx*ny*nf."""
    if h["filetype"] not in (PVP_WGT_FILE_TYPE, PVP_KERNEL_FILE_TYPE):
        raise PvmpiError(f"not a weights file: PVP file type {h['filetype']}", file=path,
                         hint="activity files are read with ActivityFile")
    kind = (h["datasize"], h["datatype"])
    if kind not in ((4, DATATYPE_FLOAT), (1, DATATYPE_BYTE)):
        raise PvmpiError(f"unsupported weight data: datasize {kind[0]}, datatype {kind[1]}",
                         file=path, hint="float32 (4, 3) or compressed uint8 (1, 1)")
    _check_positive(h, ("nbands", "numpatches", "nxp", "nyp", "nfp"), path)
    compressed = kind[0] == 1
    patch = _patch_bytes(h["nyp"], h["nxp"], h["nfp"], compressed)
    frame_bytes = WEIGHT_HEADER.itemsize + h["nbands"] * h["numpatches"] * patch
    return _WeightsLayout(h["nbands"], h["numpatches"], h["nyp"], h["nxp"], h["nfp"],
                          compressed, frame_bytes)


def _count_weight_frames(size, layout, path):
    count, rem = divmod(size, layout.frame_bytes)
    if rem:
        raise PvmpiError(f"truncated file: {size} bytes is not a whole number of "
                         f"{layout.frame_bytes}-byte weight frames", file=path)
    return count


def _decode(q, wmin, wmax):
    """Compressed uint8 weights back to float32: wMin + (wMax-wMin)*q/255."""
    span = np.float32(wmax) - np.float32(wmin)
    return np.float32(wmin) + span * (q.astype(np.float32) / np.float32(255))


def _encode(w, wmin, wmax):
    """float32 weights to uint8, rounding to nearest as OpenPV's shared-weight writer."""
    span = float(wmax) - float(wmin)
    if span <= 0:
        return np.zeros(w.shape, np.uint8)
    q = np.floor(255.0 * (w.astype(np.float64) - float(wmin)) / span + 0.5)
    return np.clip(q, 0, 255).astype(np.uint8)


def _read_weight_frame(f, path, layout, k):
    """(time, W [arbors, patches, nyp, nxp, nfp], header) of frame k of an open file."""
    f.seek(k * layout.frame_bytes)
    h = _read_header(f, path)
    if _weights_layout(h, path) != layout:
        raise PvmpiError(f"corrupt weights file: frame {k} header differs from frame 0",
                         file=path)
    patch = _patch_record(layout.nyp, layout.nxp, layout.nfp, layout.compressed)
    count = layout.arbors * layout.patches
    raw = f.read(count * patch.itemsize)
    if len(raw) != count * patch.itemsize:
        raise PvmpiError(f"truncated file: weight frame {k} ends early", file=path)
    w = np.frombuffer(raw, patch)["w"]
    w = _decode(w, h["wMin"], h["wMax"]) if layout.compressed else w.astype(np.float32)
    shape = (layout.arbors, layout.patches, layout.nyp, layout.nxp, layout.nfp)
    return h["time"], w.reshape(shape), h


def _open_weights(path):
    """Open a weights file: (file, first header, layout, frame count)."""
    f = _open(path, "rb")
    try:
        h = _read_header(f, str(path))
        layout = _weights_layout(h, str(path))
        return f, h, layout, _count_weight_frames(_file_size(f), layout, str(path))
    except BaseException:
        f.close()
        raise


def weights_num_frames(path):
    """Number of frames in a weights file (nbands there counts arbors, not frames)."""
    f, _, _, count = _open_weights(path)
    f.close()
    return count


def read_weights(path, frame=0):
    """(time, W float32 [numArbors, numPatches, nyp, nxp, nfp], header) of one frame."""
    f, _, layout, count = _open_weights(path)
    with f:
        return _read_weight_frame(f, str(path), layout, _frame_index(frame, count, path))


class WeightsWriter(_FrameWriter):
    """Writes shared weights (type 5); every frame carries its own 104-byte header."""

    filetype = PVP_KERNEL_FILE_TYPE

    def __init__(self, path, append=False, compressed=False):
        self.compressed = bool(compressed)
        self._layout = None  # (arbors, patches, nyp, nxp, nfp, nx, ny, nf), fixed by frame 0
        if self._open(path, append):
            self._closing_on_error(self._resume)

    def _resume(self):
        h = _read_header(self._f, self.path)
        _check_append(h, dict(filetype=self.filetype, datasize=1 if self.compressed else 4),
                      self.path)
        layout = _weights_layout(h, self.path)
        size = _file_size(self._f)
        count, rem = divmod(size, layout.frame_bytes)
        if rem:
            _drop_tail(self._f, self.path, count * layout.frame_bytes,
                       f"weight frame {count} runs past the end of the file")
        self._ends.extend(range(layout.frame_bytes, count * layout.frame_bytes + 1,
                                layout.frame_bytes))
        self._layout = tuple(layout[:5]) + (h["nx"], h["ny"], h["nf"])

    def write_nonshared(self, time, W, nx_pre, ny_pre, nf_pre, margin_x, margin_y, inside=None):
        """Append one frame of non-shared weights (type 3): W float32 [numArbors, numPatches, nyp,
        nxp, nfp], one patch per neuron of the global extended pre layer ([y][x][f] over
        (ny_pre + 2 margin_y) x (nx_pre + 2 margin_x) x nf_pre, facts §1.5); wMin and wMax over the
        elements ``inside`` the post layer (a mask broadcasting to W; default all)."""
        w = np.asarray(W, dtype="<f4")
        nxe, nye = nx_pre + 2 * margin_x, ny_pre + 2 * margin_y
        if w.ndim != 5 or w.shape[1] != nxe * nye * nf_pre:
            raise ValueError(f"non-shared W must be [arbors, {nxe * nye * nf_pre}, nyp, nxp, nfp], got {list(w.shape)}")
        if self.compressed:
            raise PvmpiError("compressed non-shared weights are not written", file=self.path,
                             hint="writeCompressedWeights = false")
        values = w[np.broadcast_to(inside, w.shape)] if inside is not None else w
        bounds = (values.min(), values.max()) if values.size else (0, 0)
        header, patches = self._frame_parts(time, w, nx_pre, ny_pre, nf_pre, filetype=PVP_WGT_FILE_TYPE,
                                            nxExtended=nxe, nyExtended=nye, wMin=bounds[0], wMax=bounds[1])
        self._append([header, patches], [len(header) + patches.nbytes])

    def write(self, time, W, nx_kernels, ny_kernels, nf_pre):
        """Append one frame of W float32 [numArbors, numPatches, nyp, nxp, nfp]."""
        w = np.asarray(W, dtype="<f4")
        if w.ndim != 5:
            raise ValueError(f"W must be [arbors, patches, nyp, nxp, nfp], got {list(w.shape)}")
        arbors, patches, nyp, nxp, nfp = w.shape
        if patches != nx_kernels * ny_kernels * nf_pre:
            raise ValueError(f"{patches} patches but nx_kernels*ny_kernels*nf_pre = "
                             f"{nx_kernels * ny_kernels * nf_pre}")
        layout = w.shape + (int(nx_kernels), int(ny_kernels), int(nf_pre))
        if self._layout is not None and layout != self._layout:
            raise PvmpiError(f"weights of shape {layout} differ from the file's {self._layout}",
                             file=self.path, hint="every frame of a weights file has one shape")
        header, patches = self._frame_parts(time, w, nx_kernels, ny_kernels, nf_pre)
        self._append([header, patches], [len(header) + patches.nbytes])
        self._layout = layout

    def _frame_parts(self, time, w, nx_kernels, ny_kernels, nf_pre, **fields):
        """The frame's header bytes (``fields`` replacing the shared-weights values) and its patch
        records."""
        arbors, patches, nyp, nxp, nfp = w.shape
        wmin = np.float32(w.min()) if w.size else np.float32(0)
        wmax = np.float32(w.max()) if w.size else np.float32(0)
        header = dict(
            headersize=104, numparams=26, filetype=self.filetype, nx=nx_kernels,
            ny=ny_kernels, nf=nf_pre, numrecords=arbors, recordsize=0,
            datasize=1 if self.compressed else 4,
            datatype=DATATYPE_BYTE if self.compressed else DATATYPE_FLOAT,
            nxprocs=1, nyprocs=1, nxExtended=nx_kernels, nyExtended=ny_kernels, kx0=0, ky0=0,
            nbatch=1, nbands=arbors, time=time, nxp=nxp, nyp=nyp, nfp=nfp,
            wMin=wmin, wMax=wmax, numpatches=patches,
        )
        header.update(fields)
        rec = np.empty(arbors * patches, _patch_record(nyp, nxp, nfp, self.compressed))
        rec["nx"], rec["ny"], rec["offset"] = nxp, nyp, 0
        values = w.reshape(arbors * patches, nyp, nxp, nfp)
        rec["w"] = _encode(values, wmin, wmax) if self.compressed else values
        return _pack_header(header), rec


# --------------------------------------------------------------------------- analysis

@dataclass
class PvpData:
    """A whole (or sliced) PVP file in memory, for analysis scripts.

    Activity: values float32 [T, B, ny, nx, nf], times [T]. Weights: values
    float32 [frames, arbors, patches, nyp, nxp, nfp], times [frames].
    """

    header: dict
    times: np.ndarray
    values: np.ndarray
    filetype: int
    batch_size: int = 1

    @property
    def time(self):
        """The timestamps, under pvtools' name (``readpvpfile(...)["time"]``)."""
        return self.times

    @property
    def is_sparse(self):
        """True when ``values`` is a :class:`SparseFrames` (``read(..., sparse=True)``)."""
        return isinstance(self.values, SparseFrames)


@dataclass
class SparseFrames:
    """Activity kept sparse: the (index, value) pairs of every frame, CSR-style.

    Frames are in file order, write-major: flat frame ``n = t*B + b`` holds
    the entries ``indptr[n]:indptr[n+1]`` of ``indices`` (neuron index
    ``f + nf*(x + nx*y)``, increasing) and ``data``. ``shape`` is the dense
    shape ``(T, B, ny, nx, nf)``; :meth:`to_dense` expands it and
    :meth:`to_scipy` gives pvtools' ``csr_matrix`` ``[T*B, ny*nx*nf]``.
    """

    shape: tuple
    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray

    @property
    def num_neurons(self):
        return int(np.prod(self.shape[2:]))

    @property
    def nnz(self):
        return int(self.indptr[-1])

    def frame(self, t, b=0):
        """(indices uint32, values float32) of write t, batch element b."""
        T, B = self.shape[:2]
        t = _frame_index(t, T, "SparseFrames")
        if not 0 <= b < B:
            raise IndexError(f"batch element {b} out of range (batch size {B})")
        n = t * B + b
        lo, hi = self.indptr[n], self.indptr[n + 1]
        return self.indices[lo:hi], self.data[lo:hi]

    def active_counts(self):
        """Number of stored (nonzero) values per frame, int64 [T, B]."""
        return np.diff(self.indptr).reshape(self.shape[:2])

    def to_dense(self):
        """float32 [T, B, ny, nx, nf]."""
        out = np.zeros((int(np.prod(self.shape[:2])), self.num_neurons), np.float32)
        rows = np.repeat(np.arange(out.shape[0]), np.diff(self.indptr))
        out[rows, self.indices.astype(np.int64)] = self.data
        return out.reshape(self.shape)

    def to_scipy(self):
        """``scipy.sparse.csr_matrix`` [T*B, ny*nx*nf], as pvtools returns sparse files."""
        from scipy.sparse import csr_matrix

        n = int(np.prod(self.shape[:2]))
        return csr_matrix((self.data, self.indices.astype(np.int64), self.indptr),
                          shape=(n, self.num_neurons))


def infer_batch_size(times):
    """Batch size from runs of equal consecutive timestamps (1 if the runs differ)."""
    times = np.asarray(times)
    if times.size == 0:
        return 1
    starts = np.flatnonzero(np.r_[True, times[1:] != times[:-1]])
    runs = np.diff(np.r_[starts, times.size])
    return int(runs[0]) if np.all(runs == runs[0]) else 1


def _selection(count, frames):
    if frames is None:
        return range(count)
    if not isinstance(frames, slice):
        raise TypeError(f"frames must be a slice, got {type(frames).__name__}")
    return range(count)[frames]


def _read_activity(path, frames, sparse=False):
    with ActivityFile(path) as af:
        batch = infer_batch_size(af.times)
        sel = _selection(af.num_frames // batch, frames)
        if sparse:
            return _read_sparse(af, sel, batch)
        if len(sel) == 0:
            block = np.empty((0,) + af.frame_shape, np.float32)
        elif sel.step == 1:
            block = af.read_frames(sel.start * batch, len(sel) * batch)
        else:
            block = np.concatenate([af.read_frames(t * batch, batch) for t in sel])
        values = block.reshape((len(sel), batch) + af.frame_shape)
        times = af.times[np.asarray(sel, np.int64) * batch]
        return PvpData(af.header, times, values, af.filetype, batch)


def _read_sparse(af, sel, batch):
    """The selected writes as SparseFrames, reading only the active entries of sparse files."""
    indices, data, counts = [], [], [0]
    for t in sel:
        for b in range(batch):
            idx, val = af.read_frame_sparse(t * batch + b)
            indices.append(idx)
            data.append(val)
            counts.append(len(idx))
    values = SparseFrames(
        shape=(len(sel), batch) + af.frame_shape,
        indptr=np.cumsum(counts, dtype=np.int64),
        indices=np.concatenate(indices) if indices else np.empty(0, np.uint32),
        data=np.concatenate(data) if data else np.empty(0, np.float32))
    times = af.times[np.asarray(sel, np.int64) * batch]
    return PvpData(af.header, times, values, af.filetype, batch)


def _read_weights_file(path, frames):
    f, h, layout, count = _open_weights(path)
    with f:
        sel = _selection(count, frames)
        shape = (layout.arbors, layout.patches, layout.nyp, layout.nxp, layout.nfp)
        values = np.empty((len(sel),) + shape, np.float32)
        times = np.empty(len(sel), np.float64)
        for i, k in enumerate(sel):
            times[i], values[i], _ = _read_weight_frame(f, str(path), layout, k)
    return PvpData(h, times, values, h["filetype"], 1)


def read(path, frames=None, sparse=False):
    """Read a PVP file for analysis; `frames` (a slice) picks writes/weight frames.

    For activity files the slice counts writes (timestamps), each holding
    `batch_size` frames. With ``sparse=True`` an activity file's values come
    back as :class:`SparseFrames` (index/value pairs) instead of a dense
    array: the natural form of sparse (type 6 and 2) files.
    """
    h = read_header(path)
    if h["filetype"] in (PVP_WGT_FILE_TYPE, PVP_KERNEL_FILE_TYPE):
        if sparse:
            raise ValueError(f"{path}: sparse=True is for activity files, not weights")
        return _read_weights_file(path, frames)
    return _read_activity(path, frames, sparse)
