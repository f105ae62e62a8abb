"""Halo exchange of a layer whose activity lives on the GPU.

The same messages as :class:`~pvmpi.parallel.halo.HaloExchange` (one per
existing neighbour of the 8, all local batch elements in one buffer, then the
mirror boundary x first, y second), but the strips are packed and unpacked
by CUDA kernels on the device: only the strips cross to the host. With a
CUDA-aware MPI (detected by :func:`~pvmpi.parallel.devices.cuda_aware_mpi`)
the device buffers go to MPI directly and nothing crosses; otherwise — the
default, and the case of the pip MPICH wheel — they are staged through host
buffers allocated once.
"""
import numpy as np

from .devices import cuda_aware_mpi
from .halo import HaloExchange


class DeviceHaloExchange(HaloExchange):
    """Fills the halo of a device array ``A`` (``[nb, ny + 2*my, nx + 2*mx, nf]``) in place."""

    def __init__(self, comms, tile, nf, margin_x, margin_y, mirror, kernels, cuda_aware=None):
        super().__init__(comms, tile, nf, margin_x, margin_y, mirror, method="packed")
        from numba import cuda

        self.kernels = kernels
        self.cuda_aware = cuda_aware_mpi(comms.spatial) if cuda_aware is None else bool(cuda_aware)
        self._device_buffers = [(cuda.device_array(sbuf.shape, sbuf.dtype),
                                 cuda.device_array(rbuf.shape, rbuf.dtype))
                                for _, _, _, _, _, sbuf, rbuf in self._peers]

    def _check(self, A):
        if (not hasattr(A, "copy_to_host") or tuple(A.shape) != self.shape
                or np.dtype(A.dtype) != self.dtype):
            raise ValueError(f"{self.tile.name}: device halo exchange needs a {self.dtype} device array "
                             f"of shape {self.shape}, got {getattr(A, 'dtype', type(A))} "
                             f"{getattr(A, 'shape', '')}")

    def start(self, A):
        """Pack each strip on the device and post the messages (no mirroring yet)."""
        from numba import cuda

        self._check(A)
        if self._pending is not None:
            raise RuntimeError(f"{self.tile.name}: start() called twice without wait()")
        self._pending = A
        comm, reqs = self._comm, []
        pairs = list(zip(self._peers, self._device_buffers))
        for (peer, stag, rtag, sidx, ridx, sbuf, rbuf), (dsend, drecv) in pairs:
            reqs.append(comm.Irecv(drecv if self.cuda_aware else rbuf, source=peer, tag=rtag))
        for (peer, stag, rtag, sidx, ridx, sbuf, rbuf), (dsend, drecv) in pairs:
            self.kernels.pack_halo(A, dsend, sidx[1].start, sidx[2].start)
            if self.cuda_aware:
                cuda.synchronize()  # the kernel has filled the buffer before MPI reads it
                reqs.append(comm.Isend(dsend, dest=peer, tag=stag))
            else:
                dsend.copy_to_host(sbuf)
                reqs.append(comm.Isend(sbuf, dest=peer, tag=stag))
        self._requests = reqs

    def _unpack(self, A):
        """The received strips into A's halo, on the device."""
        for (peer, stag, rtag, sidx, ridx, sbuf, rbuf), (dsend, drecv) in zip(self._peers,
                                                                               self._device_buffers):
            if not self.cuda_aware:
                drecv.copy_to_device(rbuf)
            self.kernels.unpack_halo(A, drecv, ridx[1].start, ridx[2].start)

    def _mirror(self, A):
        self.kernels.mirror_halo(A, self.mx, self.my, self.tile.nx, self.tile.ny, self._edges)
