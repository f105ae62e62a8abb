"""Communicators of one run and the collectives the simulator needs.

:class:`Comms` duplicates the communicator it is given (default
``COMM_WORLD``) once and derives every other communicator from that
duplicate, so pvmpi's traffic can never match a message of the caller's
code, and no other module touches ``MPI.COMM_WORLD``. Array collectives use
the buffer interface (no pickling); arrays must be C-contiguous.
"""
import numpy as np
from mpi4py import MPI

from pvmpi.parallel.decomposition import check_world, coords
from pvmpi.parallel.decomposition import tile as _tile


def first_error(comm, error):
    """The message of the first rank of ``comm`` whose ``error`` is not None, the same on every
    rank (None when no rank has one): one shared verdict, so no rank waits for one that gave up."""
    return next((e for e in comm.allgather(None if error is None else str(error)) if e is not None), None)


def _contiguous(arr, what):
    if not isinstance(arr, np.ndarray) or not arr.flags.c_contiguous:
        raise ValueError(f"{what} needs a C-contiguous numpy array")
    return arr


def _output(src, out, what):
    """``out`` checked to receive a reduction of ``src`` (a new array if None)."""
    if out is None:
        return np.empty_like(src)
    _contiguous(out, what)
    if out.shape != src.shape or out.dtype != src.dtype:
        raise ValueError(f"{what}: out {out.shape} {out.dtype} does not match {src.shape} {src.dtype}")
    if np.shares_memory(out, src):
        raise ValueError(f"{what}: out overlaps the input (reductions never work in place)")
    return out


class Pending:
    """A started non-blocking reduction and the two arrays it reads and writes.

    mpi4py's request does not keep them alive: a caller that dropped them
    before the reduction completed would let MPI write into freed memory. They
    live as long as this object, and beyond it if it is dropped unfinished.
    """

    __slots__ = ("_request", "_arrays")

    def __init__(self, request, src, out):
        self._request = request
        self._arrays = (src, out)

    def wait(self):
        """Complete the reduction: its output array holds the result."""
        self._request.Wait()
        self._arrays = None

    def __del__(self):
        if self._arrays is not None and self._request != MPI.REQUEST_NULL:
            _UNFINISHED.append((self._request, self._arrays))  # MPI may still write there


_UNFINISHED = []  # reductions dropped before completing (a run abandoned mid-flight), kept from the allocator


class Comms:
    """World, spatial (R x C Cartesian, one per batch slice) and batch
    (B ranks sharing a tile) communicators for ``layout``.

    Raises :class:`~pvmpi.errors.PvmpiError` on every rank alike when the
    communicator's size is not ``layout.size``.
    """

    def __init__(self, layout, comm=None):
        base = MPI.COMM_WORLD if comm is None else comm
        check_world(layout, base.Get_size())
        self.layout = layout
        self.world = base.Dup()
        self.rank = self.world.Get_rank()
        self.size = self.world.Get_size()
        self.batch_index, self.row, self.column = coords(self.rank, layout)
        self.is_root = self.rank == 0
        R, C = layout.rows, layout.columns
        self.one_tile = R * C == 1  # each batch slice is one tile: nothing to reduce over its ranks
        flat = self.world.Split(color=self.batch_index, key=self.column + C * self.row)
        # reorder=False keeps the Split order, so Cartesian coords == (row, column).
        self.spatial = flat.Create_cart((R, C), periods=(False, False), reorder=False)
        flat.Free()
        self.batch = self.world.Split(color=self.column + C * self.row, key=self.batch_index)
        assert tuple(self.spatial.Get_coords(self.spatial.Get_rank())) == (self.row, self.column)
        assert self.batch.Get_rank() == self.batch_index

    def tile(self, nbatch_global, ny_global, nx_global, name=None):
        """This rank's :class:`~pvmpi.parallel.decomposition.Tile` of a layer."""
        return _tile(nbatch_global, ny_global, nx_global, self.layout, self.rank, name=name)

    # ---- reductions -------------------------------------------------------
    # No reduction writes into the array it is given: each returns a new array, or fills an
    # explicit ``out`` that must not overlap the input. A probe's cached statistics, a
    # layer's sums or a dW buffer therefore never turn into already-reduced numbers.
    def _reduce(self, comm, arr, op, out, what):
        src = _contiguous(arr, what)
        out = _output(src, out, what)
        if comm.size == 1:  # one rank: nothing to add, only the copy every reduction returns
            np.copyto(out, src)
        else:
            comm.Allreduce(src, out, op=op)
        return out

    def _ireduce(self, comm, arr, out, what, op=MPI.SUM):
        src = _contiguous(arr, what)
        out = _output(src, out, what)
        if comm.size == 1:
            np.copyto(out, src)
            return Pending(MPI.REQUEST_NULL, src, out)
        return Pending(comm.Iallreduce(src, out, op=op), src, out)

    def allreduce_sum(self, arr, out=None):
        """Sum of ``arr`` over all ranks (shared-weight dW, counts), as a new array or in ``out``."""
        return self._reduce(self.world, arr, MPI.SUM, out, "allreduce_sum")

    def allreduce_max(self, arr, out=None):
        """Element-wise maximum of ``arr`` over all ranks (the guard's verdict and flags)."""
        return self._reduce(self.world, arr, MPI.MAX, out, "allreduce_max")

    def iallreduce_max(self, arr, out):
        """Start the world maximum of ``arr`` into ``out`` (the guard's verdict and flags, read a
        step later); returns a :class:`Pending`. Neither array may be touched until it completes."""
        return self._ireduce(self.world, arr, out, "iallreduce_max", MPI.MAX)

    def iallreduce_sum(self, arr, out):
        """Start the world sum of ``arr`` into ``out``; returns a :class:`Pending`.

        Neither array may be touched until its ``wait()`` returns; this
        lets dW travel while the next step computes (immediateWeightUpdate = false).
        """
        return self._ireduce(self.world, arr, out, "iallreduce_sum")

    def batch_sum(self, arr, out=None):
        """Sum of ``arr`` over the B ranks holding the same tile (non-shared dW)."""
        return self._reduce(self.batch, arr, MPI.SUM, out, "batch_sum")

    def ibatch_sum(self, arr, out):
        """Non-blocking :meth:`batch_sum` into ``out``; returns a :class:`Pending`."""
        return self._ireduce(self.batch, arr, out, "ibatch_sum")

    def spatial_sum(self, arr, out=None):
        """Sum of ``arr`` over this batch slice's R x C ranks (per-batch-element probe sums,
        e.g. ``[nb, k]`` float64)."""
        return self._reduce(self.spatial, arr, MPI.SUM, out, "spatial_sum")

    def ispatial_sum(self, arr, out):
        """Start :meth:`spatial_sum` into ``out`` (a probe's sums, read a step later); a :class:`Pending`."""
        return self._ireduce(self.spatial, arr, out, "ispatial_sum")

    def ispatial_max(self, arr, out):
        """Start :meth:`spatial_max` into ``out``; a :class:`Pending`."""
        return self._ireduce(self.spatial, arr, out, "ispatial_max", MPI.MAX)

    def spatial_min(self, arr, out=None):
        """Element-wise minimum of ``arr`` over this batch slice's ranks (StatsProbe's Min)."""
        return self._reduce(self.spatial, arr, MPI.MIN, out, "spatial_min")

    def spatial_max(self, arr, out=None):
        """Element-wise maximum of ``arr`` over this batch slice's ranks (StatsProbe's Max)."""
        return self._reduce(self.spatial, arr, MPI.MAX, out, "spatial_max")

    def any_error(self, flag):
        """True on every rank if ``flag`` is true on any: one shared decision
        about a failure, so no rank waits for a rank that gave up."""
        return bool(self.allreduce_max(np.array([1 if flag else 0], dtype=np.int32))[0])

    # ---- gathers to world rank 0 -------------------------------------------
    def gather_layer(self, local, tile):
        """Assemble restricted frames ``[nb, ny, nx, nf]`` of every rank into
        ``[nbatch_global, ny_global, nx_global, nf]`` on world rank 0 (None
        elsewhere).

        All tiles have the same shape, so one Gather in rank order yields
        ``[B, R, C, nb, ny, nx, nf]``; one transpose puts it in global order
        (none when each batch slice is one tile). On a single rank the result
        is ``local`` itself: callers consume it before the layer changes.
        """
        local = np.ascontiguousarray(local)
        if local.ndim != 4 or local.shape[:3] != (tile.nb, tile.ny, tile.nx):
            raise ValueError(f"gather_layer: local shape {local.shape} does not match "
                             f"tile {(tile.nb, tile.ny, tile.nx)} of {tile.name}")
        nf = local.shape[3]
        lay = self.layout
        if self.size == 1:
            return local
        recv = None
        if self.is_root:
            recv = np.empty((lay.batch_width, lay.rows, lay.columns) + local.shape, local.dtype)
        self.world.Gather(local, recv, root=0)
        if recv is None:
            return None
        if lay.rows == lay.columns == 1:  # batch slices in rank order are the global batch
            return recv.reshape(tile.nbatch_global, tile.ny_global, tile.nx_global, nf)
        out = np.empty((tile.nbatch_global, tile.ny_global, tile.nx_global, nf), local.dtype)
        out.reshape(lay.batch_width, tile.nb, lay.rows, tile.ny, lay.columns, tile.nx, nf)[...] = \
            recv.transpose(0, 3, 1, 4, 2, 5, 6)
        return out

    def gather_extended(self, local, tile, mx, my):
        """Assemble extended buffers ``[nb, ny + 2my, nx + 2mx, ...]`` (each tile a window of the
        global extended array; overlapping margins agree) into ``[nbatch_global, ny_global + 2my,
        nx_global + 2mx, ...]`` on world rank 0 (None elsewhere)."""
        local = np.ascontiguousarray(local)
        recv = np.empty((self.size,) + local.shape, local.dtype) if self.is_root else None
        self.world.Gather(local, recv, root=0)
        if recv is None:
            return None
        glob = np.empty((tile.nbatch_global, tile.ny_global + 2 * my, tile.nx_global + 2 * mx)
                        + local.shape[3:], local.dtype)
        for r in range(self.size):
            b, row, col = coords(r, self.layout)
            y0, x0 = row * tile.ny, col * tile.nx
            glob[b * tile.nb:(b + 1) * tile.nb, y0:y0 + tile.ny + 2 * my, x0:x0 + tile.nx + 2 * mx] = recv[r]
        return glob

    def spatial_sum_at_root(self, local):
        """Sum of ``local`` over this batch slice's ranks, on the slice's first rank (None elsewhere)."""
        local = _contiguous(np.ascontiguousarray(local), "spatial_sum_at_root")
        total = np.empty_like(local) if self.is_spatial_root else None
        self.spatial.Reduce(local, total, op=MPI.SUM, root=0)
        return total

    @property
    def is_spatial_root(self):
        """Whether this rank is its batch slice's first (row 0, column 0): it writes the slice's
        per-batch-element text (probe lines, progress numbers)."""
        return self.row == 0 and self.column == 0

    def gather_batch_values(self, local):
        """Per-batch-element values ``[nb, ...]`` of every batch slice, as
        ``[nbatch_global, ...]`` on world rank 0 (None elsewhere).

        Values are taken from the spatial root (row 0, column 0) of each slice,
        so only those B ranks take part.
        """
        if self.row != 0 or self.column != 0:
            return None
        local = np.ascontiguousarray(local)
        recv = None
        if self.is_root:
            recv = np.empty((self.layout.batch_width * local.shape[0],) + local.shape[1:],
                            local.dtype)
        self.batch.Gather(local, recv, root=0)
        return recv

    # ---- small things -------------------------------------------------------
    def allgather(self, obj):
        """A picklable object of every rank, in world rank order (small decisions: test probes'
        verdicts)."""
        return self.world.allgather(obj)

    def gather(self, obj, root=0):
        """Every rank's picklable object, in world rank order, on rank ``root`` (None elsewhere)."""
        return self.world.gather(obj, root=root)

    def first_error(self, error):
        """See :func:`first_error`, over this run's ranks."""
        return first_error(self.world, error)

    def bcast(self, obj, root=0):
        """Broadcast a picklable object from world rank ``root``."""
        return self.world.bcast(obj, root=root)

    def barrier(self):
        """Wait for every rank (e.g. before rank 0 reports a finished run)."""
        self.world.Barrier()

    def free(self):
        """Release the derived communicators and the duplicate (idempotent)."""
        for name in ("spatial", "batch", "world"):
            comm = getattr(self, name, None)
            if comm is not None and comm != MPI.COMM_NULL:
                comm.Free()
            setattr(self, name, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.free()
