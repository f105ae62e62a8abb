"""Reading an OpenPV checkpoint directory, so a running OpenPV experiment can move to pvmpi.

OpenPV writes one file per entry (facts §6.2, §6.3): ``<Layer>_V.pvp``,
``<Layer>_A.pvp`` and ``<Layer>_Delays.pvp`` (restricted frames, one per
global batch element, delay level slowest), ``<Conn>_W.pvp`` (weights),
``<Conn>_prev_dW.pvp`` (momentum), ``<InputLayer>_FrameNumbers.bin`` and
``timeinfo.bin``. This reader answers the same questions as
:class:`pvmpi.io.checkpoint.CheckpointReader` for ``initializeFromCheckpointDir``
(the objects' state; time restarts at 0). Halos start at zero: the publish
at t = 0 refills them.
"""
import os
import warnings

import numpy as np

from ..errors import PvmpiError
from . import pvp


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

    def shared(self, name, shape=None):
        """Shared weights (``<Conn>/W``, ``<Conn>/prev_dW``) from the connection's .pvp file."""
        _, W, _ = pvp.read_weights(self._file(name, ".pvp"), 0)
        if shape is not None and W.shape != tuple(shape):
            raise PvmpiError(f"weights have shape {W.shape}, the connection needs {tuple(shape)}",
                             file=self._file(name, ".pvp"))
        return W

    def attr(self, group, key, default=None):
        """The few values OpenPV keeps in .bin files; everything else keeps the run's own value."""
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
        """Probe state: OpenPV checkpoints hold none of pvmpi's, so asking for it is an error."""
        raise PvmpiError(f"an OpenPV checkpoint holds no pvmpi probe state ({name})", file=self.path)

    def close(self):
        """Nothing to close: every file is opened and closed per read."""


def open_checkpoint(path, nbatch):
    """A reader for a pvmpi checkpoint (checkpoint.h5) or an OpenPV checkpoint directory."""
    from .checkpoint import CheckpointReader

    if is_openpv_checkpoint(path) and not os.path.isfile(os.path.join(path, "checkpoint.h5")):
        return OpenPVCheckpointReader(path, nbatch)
    return CheckpointReader(path, nbatch)
