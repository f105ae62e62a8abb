"""Checkpoints: global arrays, independent of the MPI layout, written atomically.

A checkpoint is a directory ``Checkpoint<step>/``. In the HDF5 form
(``checkpointFormat = "hdf5"``) it holds ``checkpoint.h5`` alone; in OpenPV's
form (the default, :mod:`pvmpi.io.openpv_checkpoint`) OpenPV's files, with the
state OpenPV does not keep in ``pvmpi_state.h5``. Every array is global — a layer's V as ``[nbatch, ny, nx, nf]``, its
activity and delay levels as the global *extended* array — so any layout
(B, R, C), and any nbatch, can restart from it. Writing is collective: every
rank calls every method in the same order; tiles are gathered to world rank
0, which writes with serial h5py (pip's h5py has no MPI driver). The
directory is written under a temporary name, fsync'ed and renamed when
complete, so a crash never leaves a checkpoint that looks complete.
"""
import hashlib
import json
import os
import shutil
import warnings

import numpy as np

from ..errors import PvmpiError
from .outputs import fsync_path, fsync_tree, naming, sync_outputs

FILE = "checkpoint.h5"  # the whole state (checkpointFormat = "hdf5")
STATE_FILE = "pvmpi_state.h5"  # what OpenPV's files do not hold (checkpointFormat = "openpv")
FORMAT = "pvmpi-checkpoint-1"
FORMAT_OPENPV = "pvmpi-openpv-checkpoint-1"
FORMATS = (FORMAT, FORMAT_OPENPV)
MANIFEST = "checksums.sha256"  # `sha256sum -c` format: every file of the checkpoint but timings
UNCHECKED = (MANIFEST, "timers.txt")  # the manifest itself; wall-clock timings, not state


def state_file(path):
    """The HDF5 file of a pvmpi checkpoint directory (either form), or None."""
    for name in (STATE_FILE, FILE):
        f = os.path.join(path, name)
        if os.path.isfile(f):
            return f
    return None


def checkpoint_name(step, final_step, width=-1):
    """``Checkpoint<step>`` zero-padded to checkpointIndexWidth, or to the digits of the final step."""
    w = width if width >= 0 else len(str(max(final_step, 0)))
    return f"Checkpoint{step:0{w}d}"


def is_complete(path):
    """A checkpoint directory whose state file says it was finished, or one OpenPV finished (it
    writes timeinfo.bin last)."""
    f = state_file(path)
    if f is None:
        return os.path.isfile(os.path.join(path, "timeinfo.bin"))
    try:
        import h5py

        with h5py.File(f, "r") as h:
            return h.attrs.get("format") in FORMATS and bool(h.attrs.get("complete", False))
    except OSError:
        return False


def file_checksum(path):
    """SHA-256 of a file's bytes, as ``sha256sum`` prints it."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_manifest(directory):
    """``checksums.sha256`` listing the files of ``directory`` but timers.txt (``sha256sum -c``
    reads it)."""
    names = sorted(n for n in os.listdir(directory)
                   if n not in UNCHECKED and os.path.isfile(os.path.join(directory, n)))
    with open(os.path.join(directory, MANIFEST), "w") as f:
        for n in names:
            f.write(f"{file_checksum(os.path.join(directory, n))}  {n}\n")


def damaged_file(directory):
    """The first file the manifest lists that is missing or no longer matches it (None: all do,
    or there is no manifest)."""
    manifest = os.path.join(directory, MANIFEST)
    if not os.path.isfile(manifest):
        return None
    with open(manifest) as f:
        for line in f:
            digest, _, name = line.rstrip("\n").partition("  ")
            p = os.path.join(directory, name)
            if not os.path.isfile(p):
                return f"{name} (missing)"
            if file_checksum(p) != digest:
                return name
    return None


def checksum(array):
    """SHA-256 of an array's bytes in C order (with its shape and type, so a reshaped copy differs)."""
    h = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


def verify_checksums(h5):
    """The first dataset of an open checkpoint file whose contents no longer match the checksum
    written with it, or None (datasets written before checksums existed pass)."""
    import h5py

    bad = []

    def visit(name, obj):
        if not bad and isinstance(obj, h5py.Dataset) and "sha256" in obj.attrs:
            if checksum(obj[...]) != obj.attrs["sha256"]:
                bad.append(name)

    h5.visititems(visit)
    return bad[0] if bad else None


def why_unusable(path):
    """Why checkpoint directory ``path`` cannot be continued from (None: it can)."""
    f = state_file(path)
    damaged = damaged_file(path)
    if f is None:
        if damaged:  # pvmpi's, without its state file
            return f"damaged: {damaged} does not match {MANIFEST}"
        if os.path.isfile(os.path.join(path, "timeinfo.bin")):
            return None  # OpenPV's own: it writes timeinfo.bin last
        return f"no {STATE_FILE}, {FILE} or timeinfo.bin"
    try:
        import h5py

        with h5py.File(f, "r") as h:
            if h.attrs.get("format") not in FORMATS:
                return f"not a pvmpi checkpoint (format {h.attrs.get('format')!r})"
            if not bool(h.attrs.get("complete", False)):
                return "written only in part (never marked complete)"
            if h.attrs.get("format") == FORMAT_OPENPV and not os.path.isfile(os.path.join(path, MANIFEST)):
                return f"damaged: its {MANIFEST} is missing, so its files cannot be verified"
            bad = verify_checksums(h)
            if bad:
                return f"damaged: {bad} does not match its checksum"
    except OSError as e:
        return f"unreadable ({e})"
    if damaged:
        return f"damaged: {damaged} does not match {MANIFEST}"
    return None


def saved_nbatch(path):
    """The nbatch of the run that wrote checkpoint ``path`` (None where unknown)."""
    try:
        import h5py

        with h5py.File(state_file(path) or os.path.join(path, FILE), "r") as h:
            return int(h.attrs["nbatch"]) if "nbatch" in h.attrs else None
    except (OSError, ValueError):
        return None


def saved_config(path):
    """``{group: {"class": ..., param: value}}`` of the parameters the checkpointed run was given
    (None for a checkpoint without it: OpenPV's, or an older pvmpi one)."""
    try:
        import h5py

        with h5py.File(state_file(path) or os.path.join(path, FILE), "r") as h:
            text = h.attrs.get("config")
        return json.loads(text) if text else None
    except (OSError, ValueError):
        return None


def newest_usable_checkpoint(directory):
    """The newest Checkpoint<step> under ``directory`` that can be continued from (complete and
    matching its checksums), and ``[(name, why)]`` of the newer ones passed over, and of the
    checkpoints interrupted while being written."""
    if not os.path.isdir(directory):
        return None, []
    steps = sorted((int(n[10:]), n) for n in os.listdir(directory)
                   if n.startswith("Checkpoint") and n[10:].isdigit())
    passed = [(n, "interrupted while being written") for n in sorted(os.listdir(directory))
              if n.endswith(".incomplete")]
    for _, name in reversed(steps):
        why = why_unusable(os.path.join(directory, name))
        if why is None:
            return os.path.join(directory, name), passed
        passed.append((name, why))
    return None, passed


def newest_checkpoint(directory):
    """The complete Checkpoint<step> with the highest step under `directory`, or None."""
    if not os.path.isdir(directory):
        return None
    best = None
    for name in os.listdir(directory):
        if not name.startswith("Checkpoint") or not name[10:].isdigit():
            continue
        path = os.path.join(directory, name)
        if is_complete(path) and (best is None or int(name[10:]) > best[0]):
            best = (int(name[10:]), path)
    return best[1] if best else None


class CheckpointWriter:
    """Collective writer of the HDF5 form: rank 0 writes what every rank contributes."""

    state_name, format = FILE, FORMAT

    def __init__(self, comms, path, attrs):
        import h5py

        self.comms = comms
        self.path = path
        self.tmp = f"{path}.incomplete"
        self.h5 = None
        if comms.is_root:
            if os.path.exists(self.tmp):
                shutil.rmtree(self.tmp)
            os.makedirs(self.tmp)
            self.h5 = h5py.File(os.path.join(self.tmp, self.state_name), "w")
            self.h5.attrs["format"] = self.format
            self.h5.attrs["complete"] = False
            for k, v in attrs.items():
                self.h5.attrs[k] = v

    def _dataset(self, name, data, doc):
        if self.h5 is not None:
            data = np.ascontiguousarray(data)
            with naming(os.path.join(self.tmp, self.state_name)):
                ds = self.h5.create_dataset(name, data=data)
            ds.attrs["description"] = doc
            ds.attrs["sha256"] = checksum(data)  # -r and -c verify it (verify_checksums)
        return data

    def attrs(self, group, **values):
        """Small values, identical on every rank (schedules, counters, JSON state)."""
        if self.h5 is not None:
            g = self.h5.require_group(group)
            for k, v in values.items():
                g.attrs[k] = json.dumps(v) if isinstance(v, (dict, list)) else v

    def shared(self, name, array, doc, weights_geometry=None, compressed=False):
        """An array identical on every rank (shared weights, momentum, reduced dW); weights give
        ``weights_geometry`` = (nx kernels, ny kernels, pre nf) for forms that need a header, and
        ``compressed`` (writeCompressedCheckpoints) for OpenPV's form (the HDF5 form keeps float32)."""
        self._dataset(name, np.asarray(array), doc)

    def entry(self, obj, data, value, dtype, text=None):
        """OpenPV's checkpoint entry ``<obj>_<data>`` (a few numbers; ``text`` replaces the one number
        per line of its .txt): the HDF5 form keeps its state in attributes, so it writes nothing."""

    def file_position(self, obj, position, data="filepos"):
        """Where an output stream of ``obj`` stands (bytes), as OpenPV records it; see :meth:`entry`."""

    def copy_file(self, path):
        """A copy of file ``path`` in the checkpoint (OpenPV's form keeps the params echo there)."""

    def restricted(self, name, local, tile, doc):
        """A restricted layer buffer [nb, ny, nx, nf]: gathered into the global array."""
        self._dataset(name, self.comms.gather_layer(np.ascontiguousarray(local), tile), doc)

    def extended(self, name, local, tile, mx, my, doc):
        """An extended buffer: every tile is a window of the global extended array."""
        glob = self.comms.gather_extended(local, tile, mx, my)
        if glob is not None:
            self._dataset(name, glob, doc)

    def tile_sum(self, name, local, doc):
        """An array each tile contributes its own part to (zeros elsewhere): summed over batch slice 0,
        returned on the writing rank (None elsewhere)."""
        if self.comms.batch_index == 0:
            total = self.comms.spatial_sum_at_root(local)
            self._dataset(name, total, doc)
            return total if self.h5 is not None else None
        return None

    def rand_state(self, name, local, tile, frames_of):
        """Random generator states of the restricted neurons, local uint32 [nb, ny, nx, nf, 4], gathered;
        ``frames_of`` lays them out as OpenPV's rand_state file (used by the OpenPV form only)."""
        nb, ny, nx, nf, _ = local.shape
        glob = self.comms.gather_layer(np.ascontiguousarray(local).reshape(nb, ny, nx, nf * 4), tile)
        self._dataset(name, glob, "taus88 generator states [s0 s1 s2 s3] per restricted neuron")

    def openpv_weights(self, name, W, weights_geometry, compressed=False):
        """Shared weights for OpenPV's form only (its ``<conn>_dW.pvp``); see :meth:`shared`."""

    def nonshared_weights(self, name, conn, total):
        """Non-shared weights as OpenPV stores them (type 3, written by ``conn`` from the global array
        ``total`` :meth:`tile_sum` returned); the HDF5 form keeps that array only."""

    def batch_values(self, name, local, doc):
        """Per-batch-element values [nb, ...] of each batch slice → [nbatch, ...], returned on
        the writing rank (None elsewhere)."""
        glob = self.comms.gather_batch_values(np.ascontiguousarray(local))
        self._dataset(name, glob, doc)
        return glob

    def close(self):
        """Mark complete, fsync, rename: the checkpoint appears only when whole and on disk.

        Every rank first syncs its output files, so the frame counts and
        positions the checkpoint records are on disk before it is. A
        checkpoint replaced at the same path (lastCheckpointDir) is moved
        aside, not deleted, until the new one is in place.
        """
        sync_outputs()
        self.comms.barrier()
        if self.h5 is not None:
            with naming(self.tmp):
                self._keep_other_objects()
                self._write_files()
                self.h5.attrs["complete"] = True
                self.h5.close()
                self.h5 = None
                self._seal()
                fsync_tree(self.tmp)
            old = f"{self.path}.old"
            if os.path.exists(self.path):
                if os.path.exists(old):
                    shutil.rmtree(old)
                os.rename(self.path, old)
            os.rename(self.tmp, self.path)
            fsync_path(os.path.dirname(os.path.abspath(self.path)))
            if os.path.exists(old):
                shutil.rmtree(old)
        self.comms.barrier()


    def _write_files(self):
        """Hook (root): files of the form written once every object has contributed."""

    def _seal(self):
        """Hook (root): after the state file is closed, before the directory is renamed."""

    def _keep_other_objects(self):
        """A checkpoint written over a complete one keeps the entries of objects this network
        lacks: as OpenPV adds its files to a checkpoint folder, a later run of a chain can read
        state an earlier run of another network left there."""
        if not is_complete(self.path):
            return
        import h5py

        with h5py.File(state_file(self.path), "r") as old:
            for kind, group in old.items():
                if not isinstance(group, h5py.Group) or kind == "column":
                    continue
                mine = self.h5.require_group(kind)
                for name in group:
                    if name not in mine:
                        old.copy(group[name], mine, name=name)


class CheckpointReader:
    """Every rank reads its own window of the global arrays."""

    def __init__(self, path, nbatch):
        import h5py

        self.path = path
        if not is_complete(path):
            raise PvmpiError("not a complete pvmpi checkpoint", file=path,
                             hint=f"expected {STATE_FILE} or {FILE} written to the end")
        self.h5 = h5py.File(state_file(path), "r")
        self.attrs = dict(self.h5.attrs)
        self.nbatch = nbatch
        self.saved_nbatch = int(self.attrs["nbatch"])
        if self.saved_nbatch != nbatch:
            warnings.warn(f"{path}: checkpoint has nbatch {self.saved_nbatch}, the run {nbatch}: "
                          f"batch element g starts from saved element g mod {self.saved_nbatch}")

    def has(self, name):
        """Whether the checkpoint holds the dataset or group ``name``."""
        return name in self.h5

    def _require(self, name):
        if name not in self.h5:
            raise PvmpiError(f"the checkpoint has no '{name}' (made by another network?)", file=self.path)
        return self.h5[name]

    def attr(self, group, key, default=None):
        """Attribute ``key`` of ``group`` (JSON text decoded, numpy scalars made Python), or
        ``default``; a missing group is an error unless a default is given."""
        if group not in self.h5:
            if default is not None:
                return default
            raise PvmpiError(f"the checkpoint has no '{group}' (made by another network?)", file=self.path)
        v = self.h5[group].attrs.get(key, default)
        if isinstance(v, str) and v[:1] in "[{":
            return json.loads(v)
        return v.item() if hasattr(v, "item") else v

    def shared(self, name, shape=None):
        """A dataset every rank reads whole (e.g. shared weights), checked against ``shape``."""
        data = self._require(name)[...]
        if shape is not None and data.shape != tuple(shape):
            raise PvmpiError(f"'{name}' has shape {data.shape}, the network needs {tuple(shape)}",
                             file=self.path, hint="the checkpoint comes from another network")
        return data

    def _batch_rows(self, tile):
        return [(tile.kb0 + b) % self.saved_nbatch for b in range(tile.nb)]

    def _check(self, name, ds, want):
        if tuple(ds.shape[1:]) != tuple(want):
            raise PvmpiError(f"'{name}' has shape {ds.shape[1:]} per batch element, the network needs "
                             f"{tuple(want)}", file=self.path, hint="the checkpoint comes from another network")

    def restricted(self, name, tile, nf):
        """This rank's tile of a restricted [nbatch, ny, nx, nf] dataset (e.g. V) for its
        batch elements; element g reads saved element g mod the saved nbatch."""
        ds = self._require(name)
        self._check(name, ds, (tile.ny_global, tile.nx_global, nf))
        return np.stack([ds[g, tile.ky0:tile.ky0 + tile.ny, tile.kx0:tile.kx0 + tile.nx]
                         for g in self._batch_rows(tile)])

    def extended(self, name, tile, nf, mx, my):
        """This rank's tile of an extended dataset (e.g. A), margins ``mx``, ``my``
        included, for its batch elements (g reads saved g mod the saved nbatch)."""
        ds = self._require(name)
        self._check(name, ds, (tile.ny_global + 2 * my, tile.nx_global + 2 * mx, nf))
        ys, xs = slice(tile.ky0, tile.ky0 + tile.ny + 2 * my), slice(tile.kx0, tile.kx0 + tile.nx + 2 * mx)
        return np.stack([ds[g, ys, xs] for g in self._batch_rows(tile)])

    def file_positions(self, key, file_name, kb0, nb):
        """Where the output files of batch elements kb0 .. kb0+nb-1 stood (bytes), as the object
        ``key`` checkpointed them; ``file_name`` (``{g}``: the element) names them in OpenPV's form."""
        return self.batch_values(key + "/file_positions", kb0, nb)

    def rand_state(self, name, tile, nf, neurons_of):
        """This tile's generator states uint32 [nb, ny, nx, nf, 4] (``neurons_of``: for OpenPV's file layout)."""
        return self.restricted(name, tile, 4 * nf).reshape(tile.nb, tile.ny, tile.nx, nf, 4)

    def batch_values(self, name, kb0, nb):
        """Per-batch-element values of global elements kb0 .. kb0+nb-1 (g reads saved g
        mod the saved nbatch)."""
        ds = self._require(name)
        return np.stack([ds[(kb0 + b) % self.saved_nbatch] for b in range(nb)])

    def close(self):
        """Close the HDF5 file."""
        self.h5.close()
