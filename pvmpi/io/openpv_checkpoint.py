"""OpenPV's checkpoint form: written by pvmpi (the default), read from pvmpi's or OpenPV's runs.

OpenPV writes one file per entry (facts §6.2, §6.3): ``<Layer>_V.pvp``,
``<Layer>_A.pvp`` and ``<Layer>_Delays.pvp`` (restricted frames, one per
global batch element, delay level slowest), ``<Conn>_W.pvp`` (weights),
``<Conn>_prev_dW.pvp`` (momentum), ``<InputLayer>_FrameNumbers.bin`` and
``timeinfo.bin``. pvmpi writes those files, the
small entries as ``.bin`` and ``.txt``, and keeps what OpenPV does not (halos,
schedules, probe state) in ``pvmpi_state.h5``, so OpenPV continues from
pvmpi's checkpoints and pvmpi from its own exactly. A checkpoint OpenPV wrote
is read by :class:`OpenPVCheckpointReader`; halos start at zero there and the
first publish refills them.
"""
import os
import shutil
import warnings

import numpy as np

from ..errors import PvmpiError
from . import pvp
from .checkpoint import (
    FORMAT_OPENPV,
    MANIFEST,
    STATE_FILE,
    CheckpointReader,
    CheckpointWriter,
    checksum,
    write_manifest,
)
from .outputs import naming

TIMEINFO = np.dtype([("t", "<f8"), ("step", "<i8")])


def openpv_file(name):
    """OpenPV's file for a pvmpi array name, and the delay level (None: not one of OpenPV's).

    ``layers/V1/V`` → ``V1_V.pvp``; ``layers/V1/Delays2`` → (``V1_Delays.pvp``, 2);
    ``connections/C/W`` → ``C_W.pvp``.
    """
    parts = name.split("/", 2)
    if len(parts) < 3:
        return None, None
    kind, obj, entry = parts
    if kind == "layers" and entry in ("V", "A", "prevDrive", "SinceLastSpike", "Vth", "G_E", "G_I", "G_IB",
                                      "gapStrength"):
        return f"{obj}_{entry}.pvp", None
    if kind == "layers" and entry.startswith("Delays") and entry[6:].isdigit():
        return f"{obj}_Delays.pvp", int(entry[6:])
    if kind == "connections" and entry in ("W", "prev_dW", "dW"):
        return f"{obj}_{entry}.pvp", None
    return None, None


def write_rand_state(path, time, frames):
    """A PVP file of taus88 generator states (OpenPV's rand_state: dense, data type 5, 16 bytes per
    neuron s0 s1 s2 s3), one frame per batch element; ``frames`` uint32 [n, ny, nx, nf, 4]."""
    n, ny, nx, nf, _ = frames.shape
    fields = pvp._activity_header(pvp.PVP_NONSPIKING_ACT_FILE_TYPE, nx, ny, nf, n)
    fields.update(datasize=16, datatype=pvp.DATATYPE_TAUS_UINT4, nbatch=n)  # header time 0, as OpenPV
    record = np.dtype([("time", "<f8"), ("data", "<u4", (ny * nx * nf * 4,))])
    body = np.zeros(n, record)
    body["time"] = time
    body["data"] = np.ascontiguousarray(frames, np.uint32).reshape(n, -1)
    with naming(path), open(path, "wb") as f:
        f.write(pvp._pack_header(fields))
        f.write(body.tobytes())


def read_rand_state(path):
    """The frames of a rand_state PVP file, uint32 [n, ny, nx, nf, 4]."""
    h = pvp.read_header(path)
    if h["datatype"] != pvp.DATATYPE_TAUS_UINT4 or h["datasize"] != 16:
        raise PvmpiError(f"not a file of random generator states (data type {h['datatype']}, "
                         f"{h['datasize']} bytes per value)", file=path)
    ny, nx, nf = h["ny"], h["nx"], h["nf"]
    record = np.dtype([("time", "<f8"), ("data", "<u4", (ny * nx * nf * 4,))])
    body = np.fromfile(path, record, offset=h["headersize"])
    return body["data"].reshape(len(body), ny, nx, nf, 4)


def rand_state_tile(path, tile, nf, neurons_of, saved_nbatch=None):
    """A tile's generator states uint32 [nb, ny, nx, nf, 4] from a rand_state file: ``neurons_of(frames)``
    gives the global [nbatch, ny, nx, nf, 4] of each neuron; element g reads saved g mod the saved nbatch."""
    if not os.path.isfile(path):
        raise PvmpiError(f"the checkpoint has no {os.path.basename(path)}", file=os.path.dirname(path))
    glob = neurons_of(read_rand_state(path))
    n = saved_nbatch or len(glob)
    return np.stack([glob[(tile.kb0 + b) % n, tile.ky0:tile.ky0 + tile.ny, tile.kx0:tile.kx0 + tile.nx]
                     for b in range(tile.nb)])


def _number_text(v):
    """A number as OpenPV's .txt entries print it (C++ stream defaults: 6 significant digits)."""
    if isinstance(v, (np.floating, float)):
        return f"{float(v):g}"
    return str(int(v))


class OpenPVCheckpointWriter(CheckpointWriter):
    """Writes OpenPV's files (global restricted frames, weights, ``.bin`` entries) and keeps the
    rest in ``pvmpi_state.h5``; collective like its base, rank 0 writes."""

    state_name, format = STATE_FILE, FORMAT_OPENPV

    def __init__(self, comms, path, attrs):
        super().__init__(comms, path, attrs)
        self.time = float(attrs["time"])
        self.step = int(attrs["step"])
        self.delays = {}  # V1_Delays.pvp → {level: [nbatch, ny, nx, nf]}, written at close

    def _pvp_frames(self, fname, frames):
        """A dense activity file of restricted frames [n, ny, nx, nf], all at the checkpoint's time."""
        n, ny, nx, nf = frames.shape
        w = pvp.DenseWriter(os.path.join(self.tmp, fname), nx, ny, nf)
        w.write(self.time, frames)
        w.close()

    def restricted(self, name, local, tile, doc):
        """OpenPV's ``<L>_V.pvp`` (one global frame per batch element) for V; others as the base."""
        fname, _ = openpv_file(name)
        if fname is None:
            return super().restricted(name, local, tile, doc)
        glob = self.comms.gather_layer(np.ascontiguousarray(local), tile)
        if self.h5 is not None:
            self._pvp_frames(fname, np.ascontiguousarray(glob))

    def extended(self, name, local, tile, mx, my, doc):
        """OpenPV's file gets the restricted part; pvmpi_state.h5 the margins (zero inside)."""
        fname, level = openpv_file(name)
        if fname is None:
            return super().extended(name, local, tile, mx, my, doc)
        glob = self.comms.gather_extended(local, tile, mx, my)
        if self.h5 is None:
            return
        ny, nx = glob.shape[1] - 2 * my, glob.shape[2] - 2 * mx
        inner = glob[:, my:my + ny, mx:mx + nx].copy()
        if level is None:
            self._pvp_frames(fname, inner)
        else:
            self.delays.setdefault(fname, {})[level] = inner
        margins = glob.copy()
        margins[:, my:my + ny, mx:mx + nx] = 0
        ds = self.h5.create_dataset(name + "_margins", data=margins, compression="gzip", compression_opts=1)
        ds.attrs["description"] = f"{doc}: the halo only ({fname} holds the rest)"
        ds.attrs["sha256"] = checksum(margins)

    def rand_state(self, name, local, tile, frames_of):
        """OpenPV's ``<L>_rand_state.pvp``: the generators of the restricted neurons, local uint32 [nb, ny, nx, nf, 4],
        gathered; ``frames_of(global)`` lays them out as OpenPV's file holds them ([nbatch, nyE, nxE, nf, 4])."""
        nb, ny, nx, nf, _ = local.shape
        glob = self.comms.gather_layer(np.ascontiguousarray(local).reshape(nb, ny, nx, nf * 4), tile)
        if self.h5 is not None:
            frames = frames_of(glob.reshape(glob.shape[:3] + (nf, 4)))
            write_rand_state(os.path.join(self.tmp, f"{name.split('/')[1]}_rand_state.pvp"), self.time, frames)

    def shared(self, name, array, doc, weights_geometry=None, compressed=False):
        """Shared weights as OpenPV's ``<C>_W.pvp`` / ``_prev_dW.pvp`` (type 5; 8-bit when ``compressed``);
        other arrays in pvmpi_state.h5."""
        fname, _ = openpv_file(name)
        if fname is None or weights_geometry is None or np.ndim(array) != 5:  # not W-shaped: [dW, counts]
            return super().shared(name, array, doc)
        self.openpv_weights(name, array, weights_geometry, compressed)

    def openpv_weights(self, name, W, weights_geometry, compressed=False):
        """Write ``W`` as OpenPV's type-5 file for ``name`` (on the writing rank; 8-bit when ``compressed``,
        as writeCompressedCheckpoints asks: a continued run then starts from the rounded weights, as OpenPV's)."""
        fname, _ = openpv_file(name)
        if self.h5 is not None:
            w = pvp.WeightsWriter(os.path.join(self.tmp, fname), compressed=compressed)
            w.write(self.time, np.asarray(W, np.float32), *weights_geometry)
            w.close()

    def nonshared_weights(self, name, conn, total):
        """Write non-shared weights as OpenPV's type-3 file for ``name`` (``conn`` shapes them)."""
        fname, _ = openpv_file(name)
        if fname is not None and self.h5 is not None:
            w = pvp.WeightsWriter(os.path.join(self.tmp, fname))
            conn.write_nonshared_frame(w, self.time, total)
            w.close()

    def entry(self, obj, data, value, dtype, text=None):
        """``<obj>_<data>.bin`` (raw values) and ``.txt`` (one number per line, or ``text``)."""
        if self.h5 is None:
            return
        values = np.atleast_1d(np.asarray(value, dtype))
        base = os.path.join(self.tmp, f"{obj}_{data}")
        with naming(base + ".bin"):
            values.tofile(base + ".bin")
        with naming(base + ".txt"), open(base + ".txt", "w") as f:
            f.write(text if text is not None else "".join(_number_text(v) + "\n" for v in values.ravel()))

    def file_position(self, obj, position, data="filepos"):
        """OpenPV's two position entries of a stream (``_FileStreamRead`` and ``_FileStreamWrite``)."""
        for way in ("Read", "Write"):
            self.entry(obj, f"{data}_FileStream{way}", position, "<i8")

    def copy_file(self, path):
        """A copy of ``path`` in the checkpoint (the params echo)."""
        if self.h5 is not None and os.path.isfile(path):
            shutil.copy2(path, os.path.join(self.tmp, os.path.basename(path)))

    def _write_files(self):
        """The data stores (every delay level, level slowest) and timeinfo, OpenPV's last file."""
        for fname, levels in self.delays.items():
            self._pvp_frames(fname, np.concatenate([levels[k] for k in sorted(levels)]))
        info = np.array([(self.time, self.step)], TIMEINFO)
        info.tofile(os.path.join(self.tmp, "timeinfo.bin"))
        with open(os.path.join(self.tmp, "timeinfo.txt"), "w") as f:
            f.write(f"time = {_number_text(self.time)}\ntimestep = {self.step}\n")

    def _seal(self):
        write_manifest(self.tmp)

    def _keep_other_objects(self):
        """Also OpenPV's files of objects this network lacks (OpenPV adds files to the folder)."""
        super()._keep_other_objects()
        if os.path.isdir(self.path) and os.path.isfile(os.path.join(self.path, "timeinfo.bin")):
            for name in os.listdir(self.path):
                src = os.path.join(self.path, name)
                if name != MANIFEST and os.path.isfile(src) and not os.path.exists(os.path.join(self.tmp, name)):
                    shutil.copy2(src, os.path.join(self.tmp, name))


class OpenPVFormReader(CheckpointReader):
    """pvmpi's checkpoint in OpenPV's form: OpenPV's files for the arrays they hold, the rest
    (and the halos) from pvmpi_state.h5."""

    def _frames(self, fname, tile, nf, level):
        path = os.path.join(self.path, fname)
        if not os.path.isfile(path):
            raise PvmpiError(f"the checkpoint has no {fname} (made by another network?)", file=self.path)
        with pvp.ActivityFile(path) as f:
            if (f.ny, f.nx, f.nf) != (tile.ny_global, tile.nx_global, nf):
                raise PvmpiError(f"frames are {f.ny}x{f.nx}x{f.nf}, the layer is "
                                 f"{tile.ny_global}x{tile.nx_global}x{nf}", file=path,
                                 hint="the checkpoint comes from another network")
            rows = [(level or 0) * self.saved_nbatch + (tile.kb0 + b) % self.saved_nbatch
                    for b in range(tile.nb)]
            return np.stack([f.read_frame(r)[tile.ky0:tile.ky0 + tile.ny, tile.kx0:tile.kx0 + tile.nx]
                             for r in rows])

    def has(self, name):
        """Whether the checkpoint holds ``name``: OpenPV's file for it, else an entry of pvmpi_state.h5."""
        fname, _ = openpv_file(name)
        if fname is not None:
            return os.path.isfile(os.path.join(self.path, fname))
        return super().has(name)

    def restricted(self, name, tile, nf):
        """This tile's part of V (from ``<L>_V.pvp``) or another restricted array."""
        fname, _ = openpv_file(name)
        if fname is None:
            return super().restricted(name, tile, nf)
        return self._frames(fname, tile, nf, None)

    def extended(self, name, tile, nf, mx, my):
        """This tile's part of A or a delay level: OpenPV's restricted frames inside, pvmpi_state.h5's halo around."""
        fname, level = openpv_file(name)
        if fname is None:
            return super().extended(name, tile, nf, mx, my)
        out = np.array(super().extended(name + "_margins", tile, nf, mx, my))
        out[:, my:my + tile.ny, mx:mx + tile.nx] = self._frames(fname, tile, nf, level)
        return out

    def rand_state(self, name, tile, nf, neurons_of):
        """This tile's generator states from ``<L>_rand_state.pvp`` (see :func:`rand_state_tile`)."""
        return rand_state_tile(os.path.join(self.path, f"{name.split('/')[1]}_rand_state.pvp"), tile, nf,
                               neurons_of, self.saved_nbatch)

    def shared(self, name, shape=None):
        """Shared weights from OpenPV's file; non-shared ones and other arrays from pvmpi_state.h5."""
        fname, _ = openpv_file(name)
        if fname is None or name in self.h5 or not os.path.isfile(os.path.join(self.path, fname)):
            return super().shared(name, shape)  # non-shared weights: pvmpi's global array, exact
        _, W, _ = pvp.read_weights(os.path.join(self.path, fname), 0)
        if shape is not None and W.shape != tuple(shape):
            raise PvmpiError(f"weights have shape {W.shape}, the connection needs {tuple(shape)}",
                             file=os.path.join(self.path, fname),
                             hint="the checkpoint comes from another network")
        return W


def is_openpv_checkpoint(path):
    """True for a directory OpenPV wrote (it holds timeinfo.bin)."""
    return os.path.isfile(os.path.join(path, "timeinfo.bin"))


class OpenPVCheckpointReader:
    """An OpenPV checkpoint directory behind the interface of pvmpi's CheckpointReader."""

    def __init__(self, path, nbatch):
        self.path = path
        self.nbatch = nbatch
        info = np.fromfile(os.path.join(path, "timeinfo.bin"), dtype=np.dtype([("t", "<f8"), ("step", "<i8")]))
        if info.size != 1:
            raise PvmpiError("timeinfo.bin is not 16 bytes (float64 time, int64 step)", file=path)
        self.time, self.step = float(info["t"][0]), int(info["step"][0])
        self.saved_nbatch = None

    def has(self, name):
        """Whether the checkpoint holds ``name``: only OpenPV's own files (it has no pvmpi_state.h5)."""
        fname, _ = openpv_file(name)
        return fname is not None and os.path.isfile(os.path.join(self.path, fname))

    def _file(self, name, suffix):
        """`layers/V1/V` → V1_V.pvp; `connections/C/W` → C_W.pvp."""
        _, obj, entry = name.split("/", 2)
        path = os.path.join(self.path, f"{obj}_{entry}{suffix}")
        if not os.path.isfile(path):
            raise PvmpiError(f"the OpenPV checkpoint has no {os.path.basename(path)}", file=self.path,
                             hint="is it a checkpoint of this network?")
        return path

    def _frames(self, path, tile, nf, level=0, per_level=None):
        """This tile's rows of `level`: frames [level*nbatch + g], g the batch element (mod the saved nbatch)."""
        with pvp.ActivityFile(path) as f:
            if (f.ny, f.nx, f.nf) != (tile.ny_global, tile.nx_global, nf):
                raise PvmpiError(f"frames are {f.ny}x{f.nx}x{f.nf}, the layer is "
                                 f"{tile.ny_global}x{tile.nx_global}x{nf}", file=path)
            per_level = per_level or f.num_frames
            self._note_nbatch(per_level)
            level = level if (level + 1) * per_level <= f.num_frames else 0  # fewer delay levels saved
            rows = [level * per_level + (tile.kb0 + b) % per_level for b in range(tile.nb)]
            return np.stack([f.read_frame(r)[tile.ky0:tile.ky0 + tile.ny, tile.kx0:tile.kx0 + tile.nx]
                             for r in rows])

    def _note_nbatch(self, n):
        if self.saved_nbatch is None:
            self.saved_nbatch = n
            if n != self.nbatch:
                warnings.warn(f"{self.path}: checkpoint has nbatch {n}, the run {self.nbatch}: "
                              f"batch element g starts from saved element g mod {n}")

    def restricted(self, name, tile, nf):
        """This tile's part of a restricted buffer (``<Layer>/V`` from ``<Layer>_V.pvp``)."""
        return self._frames(self._file(name, ".pvp"), tile, nf)

    def extended(self, name, tile, nf, mx, my):
        """This tile's part of A or a delay level, with zero halos (the t = 0 publish fills them)."""
        if "/Delays" in name:
            head, level = name.rsplit("/Delays", 1)
            with pvp.ActivityFile(self._file(head + "/A", ".pvp")) as f:
                nbatch = f.num_frames  # one A frame per batch element
            core = self._frames(self._file(head + "/Delays", ".pvp"), tile, nf, int(level), nbatch)
        else:
            core = self.restricted(name, tile, nf)
        out = np.zeros((tile.nb, tile.ny + 2 * my, tile.nx + 2 * mx, nf), np.float32)
        out[:, my:my + tile.ny, mx:mx + tile.nx] = core
        return out

    def rand_state(self, name, tile, nf, neurons_of):
        """This tile's generator states from ``<L>_rand_state.pvp`` (see :func:`rand_state_tile`)."""
        return rand_state_tile(self._file(name.rsplit("/", 1)[0] + "/rand_state", ".pvp"), tile, nf, neurons_of,
                               self.saved_nbatch)

    def shared(self, name, shape=None):
        """Shared weights (``<Conn>/W``, ``<Conn>/prev_dW``) from the connection's .pvp file."""
        _, W, _ = pvp.read_weights(self._file(name, ".pvp"), 0)
        if shape is not None and W.shape != tuple(shape):
            raise PvmpiError(f"weights have shape {W.shape}, the connection needs {tuple(shape)}",
                             file=self._file(name, ".pvp"))
        return W

    def _entry(self, obj, data, dtype):
        """The values of entry ``<obj>_<data>.bin`` (None when OpenPV wrote none)."""
        path = os.path.join(self.path, f"{obj}_{data}.bin")
        return np.fromfile(path, dtype) if os.path.isfile(path) else None

    def _weight_frames(self, obj, stream):
        """Frames of a weights output file that OpenPV's position entry for ``stream`` covers
        (frames are all alike: the checkpoint's own ``<obj>_W.pvp`` gives their size); -1: none."""
        pos = self._entry(stream, "filepos_FileStreamWrite", "<i8")
        w = os.path.join(self.path, f"{obj}_W.pvp")
        if pos is None or not os.path.isfile(w):
            return -1
        h = pvp.read_header(w)
        for datasize in (4, 1):  # float32, or writeCompressedWeights' bytes
            frame = 104 + h["nbands"] * h["numpatches"] * (8 + h["nyp"] * h["nxp"] * h["nfp"] * datasize)
            if pos[0] % frame == 0:
                return int(pos[0] // frame)
        raise PvmpiError(f"{stream}'s output position {int(pos[0])} is not a whole number of weight frames",
                         file=self.path)

    def attr(self, group, key, default=None):
        """The values OpenPV keeps in .bin entries (time, update and write times, output positions,
        frame numbers); what it keeps nowhere takes ``default``."""
        kind, _, obj = group.partition("/")
        if group == "column" and key in ("time", "step"):
            return self.time if key == "time" else self.step
        if key in ("last_update", "next_write"):
            v = self._entry(obj, "lastUpdateTime" if key == "last_update" else "nextWrite", "<f8")
            return float(v[0]) if v is not None else (default if default is not None else self.time)
        if key == "output_frames" and kind == "layers":
            v = self._entry(obj, "numframes", "<i4")
            v = self._entry(obj, "numframes_sparse", "<i4") if v is None else v
            return int(v[0]) if v is not None else -1
        if key == "output_frames":
            return self._weight_frames(obj, obj)
        if key == "prev_delta_frames":
            return self._weight_frames(obj, obj + ".prevDelta")
        if key == "timestamps_position":
            v = self._entry(obj, "TimestampState_FileStreamWrite", "<i8")
            return int(v[0]) if v is not None else 0
        if key == "num_updates":
            return 0 if default is None else default
        if key == "frame_indexer":
            path = os.path.join(self.path, f"{group.split('/', 1)[1]}_FrameNumbers.bin")
            if not os.path.isfile(path):
                raise PvmpiError(f"the OpenPV checkpoint has no {os.path.basename(path)}", file=self.path)
            return {"indices": np.fromfile(path, "<i4").tolist()}
        if key == "pending_dw":
            if os.path.isfile(os.path.join(self.path, f"{group.split('/', 1)[1]}_dW.pvp")):
                warnings.warn(f"{self.path}: the pending dW of {group.split('/', 1)[1]} "
                              "(immediateWeightUpdate = false) is not read; the next update starts afresh")
            return False
        return default

    def batch_values(self, name, kb0, nb):
        """Per-batch-element probe state: the adaptive time scales (``<probe>_timescaleinfo``)."""
        _, obj, entry = name.split("/", 2)
        v = self._entry(obj, entry, "<f8")
        if v is None:
            raise PvmpiError(f"the OpenPV checkpoint has no {obj}_{entry}.bin", file=self.path,
                             hint="is it a checkpoint of this network?")
        v = v.reshape(-1, 3)
        return np.stack([v[(kb0 + b) % len(v)] for b in range(nb)])

    def file_positions(self, key, file_name, kb0, nb):
        """Where each batch element's output file ``file_name`` (``{g}``: the element) stood."""
        out = []
        for g in range(kb0, kb0 + nb):
            v = self._entry(file_name.format(g=g), "filepos_FileStreamWrite", "<i8")
            if v is None:
                raise PvmpiError(f"the OpenPV checkpoint has no position of {file_name.format(g=g)}",
                                 file=self.path, hint="is it a checkpoint of this network?")
            out.append(int(v[0]))
        return np.array(out, np.int64)

    def close(self):
        """Nothing to close: every file is opened and closed per read."""


def open_checkpoint(path, nbatch):
    """A reader for a pvmpi checkpoint (either form) or a checkpoint directory OpenPV wrote."""
    from .checkpoint import FILE

    if os.path.isfile(os.path.join(path, STATE_FILE)):
        return OpenPVFormReader(path, nbatch)
    if is_openpv_checkpoint(path) and not os.path.isfile(os.path.join(path, FILE)):
        return OpenPVCheckpointReader(path, nbatch)
    return CheckpointReader(path, nbatch)


def checkpoint_writer(form):
    """The writer class of ``checkpointFormat`` ("openpv" or "hdf5")."""
    return OpenPVCheckpointWriter if form == "openpv" else CheckpointWriter
