"""Halo (border) exchange of an extended activity buffer (facts 7.2, 3.5).

After :meth:`HaloExchange.exchange`, each rank's extended ``A``
``[nb, ny + 2*my, nx + 2*mx, nf]`` equals its window of the *global*
extended A: the global restricted A padded at the global edges by the
boundary rule (``mirror=True``: symmetric mirror including the edge pixel,
corners mirrored both ways; ``mirror=False``: the boundary halo is left as
the caller filled it).

How: one round of non-blocking Isend/Irecv with every existing neighbour of
the 8 (N, S, E, W and the diagonals), all local batch elements in one
message; then, on ranks at a global edge, a local mirror first in x over all
rows and then in y over all columns. The x-mirror sees the north/south
halos just received, the y-mirror sees the x-halos (received or mirrored),
so the corner pieces that OpenPV's edge ranks send pre-mirrored come out
identical without extra messages, and the result equals a one-process run.

Each message goes through one contiguous buffer per neighbour
(``method="packed"``, the default, faster than MPI subarray datatypes but on
tiny strips: docs/performance.md); ``method="subarray"`` is kept so the
choice can be measured again on other networks.
"""
import numpy as np
from mpi4py import MPI
from mpi4py.util.dtlib import from_numpy_dtype

from pvmpi.parallel.layout import check_margins

# The 8 directions (dy, dx); a message sent towards d is received from -d.
_DIRECTIONS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


def _span(d, n, m):
    """(send_start, recv_start, length) along one axis of the extended buffer
    for neighbour offset ``d`` (restricted extent ``n``, margin ``m``)."""
    if d < 0:
        return m, 0, m
    if d > 0:
        return n, n + m, m
    return m, m, n


class HaloExchange:
    """Fills the halo of one layer's extended A on this rank.

    Build it once per layer (it precomputes neighbours and datatypes) and
    call :meth:`exchange` after each publish, or :meth:`start` / :meth:`wait`
    to overlap the messages with other work (``A``'s restricted region must
    not change in between). Call :meth:`free` when done.
    """

    def __init__(self, comms, tile, nf, margin_x, margin_y, mirror, dtype=np.float32,
                 method="packed"):
        if method not in ("subarray", "packed"):
            raise ValueError(f"method must be 'subarray' or 'packed', not {method!r}")
        if min(margin_x, margin_y) < 0 or nf < 1:
            raise ValueError("margins must be >= 0 and nf >= 1")
        check_margins(tile, margin_x, margin_y, comms.layout, mirror)
        R, C = comms.layout.rows, comms.layout.columns
        self.tile, self.nf, self.mx, self.my = tile, nf, margin_x, margin_y
        self.mirror, self.method = bool(mirror), method
        self.dtype = np.dtype(dtype)
        self.shape = tile.extended_shape(nf, margin_x, margin_y)
        self._comm = comms.spatial
        row, col = comms.row, comms.column
        self._edges = (row == 0, row == R - 1, col == 0, col == C - 1)
        self._requests = []
        self._pending = None
        self._types = []
        # per neighbour: (peer, send_tag, recv_tag, then datatypes or slices + buffers)
        self._peers = []
        nb, ny, nx = tile.nb, tile.ny, tile.nx
        mpi_type = from_numpy_dtype(self.dtype)
        for dy, dx in _DIRECTIONS:
            if (dy and not margin_y) or (dx and not margin_x):
                continue
            r, c = row + dy, col + dx
            if not (0 <= r < R and 0 <= c < C):
                continue
            peer = self._comm.Get_cart_rank((r, c))
            ys, yr, h = _span(dy, ny, margin_y)
            xs, xr, w = _span(dx, nx, margin_x)
            send_idx = (slice(None), slice(ys, ys + h), slice(xs, xs + w), slice(None))
            recv_idx = (slice(None), slice(yr, yr + h), slice(xr, xr + w), slice(None))
            send_tag = _DIRECTIONS.index((dy, dx))
            recv_tag = _DIRECTIONS.index((-dy, -dx))
            if method == "subarray":
                sub = (nb, h, w, nf)
                stype = mpi_type.Create_subarray(self.shape, sub, (0, ys, xs, 0)).Commit()
                rtype = mpi_type.Create_subarray(self.shape, sub, (0, yr, xr, 0)).Commit()
                self._types += [stype, rtype]
                self._peers.append((peer, send_tag, recv_tag, stype, rtype))
            else:
                sbuf = np.empty((nb, h, w, nf), self.dtype)
                rbuf = np.empty((nb, h, w, nf), self.dtype)
                self._peers.append((peer, send_tag, recv_tag, send_idx, recv_idx, sbuf, rbuf))

    def _check(self, A):
        if (not isinstance(A, np.ndarray) or A.shape != self.shape or A.dtype != self.dtype
                or not A.flags.c_contiguous):
            raise ValueError(f"{self.tile.name}: halo exchange needs a C-contiguous {self.dtype} "
                             f"array of shape {self.shape}, got "
                             f"{getattr(A, 'dtype', type(A))} {getattr(A, 'shape', '')}")

    def start(self, A):
        """Post the receives and sends for ``A`` (no mirroring yet)."""
        self._check(A)
        if self._pending is not None:
            raise RuntimeError(f"{self.tile.name}: start() called twice without wait()")
        self._pending = A
        reqs = []
        comm = self._comm
        if self.method == "subarray":
            for peer, stag, rtag, stype, rtype in self._peers:
                reqs.append(comm.Irecv([A, 1, rtype], source=peer, tag=rtag))
            for peer, stag, rtag, stype, rtype in self._peers:
                reqs.append(comm.Isend([A, 1, stype], dest=peer, tag=stag))
        else:
            for peer, stag, rtag, sidx, ridx, sbuf, rbuf in self._peers:
                reqs.append(comm.Irecv(rbuf, source=peer, tag=rtag))
            for peer, stag, rtag, sidx, ridx, sbuf, rbuf in self._peers:
                np.copyto(sbuf, A[sidx])
                reqs.append(comm.Isend(sbuf, dest=peer, tag=stag))
        self._requests = reqs

    def wait(self):
        """Complete the messages, then apply the boundary rule; returns A."""
        A = self._pending
        if A is None:
            raise RuntimeError(f"{self.tile.name}: wait() without start()")
        if self._requests:
            MPI.Request.Waitall(self._requests)
        self._requests = []
        self._unpack(A)
        if self.mirror:
            self._mirror(A)
        self._pending = None
        return A

    def _unpack(self, A):
        if self.method == "packed":
            for peer, stag, rtag, sidx, ridx, sbuf, rbuf in self._peers:
                A[ridx] = rbuf

    def exchange(self, A):
        """Fill the halo of ``A`` in place (start + wait); returns A. A tile with no neighbour and
        no mirrored edge has nothing to fill: its halo keeps what the caller wrote there."""
        if not self._peers and not self.mirror:
            self._check(A)
            return A
        self.start(A)
        return self.wait()

    def _mirror(self, A):
        # x first over all rows, then y over all columns: see the module doc.
        top, bottom, left, right = self._edges
        mx, my, nx, ny = self.mx, self.my, self.tile.nx, self.tile.ny
        if mx:
            if left:
                A[:, :, :mx] = A[:, :, mx:2 * mx][:, :, ::-1]
            if right:
                A[:, :, mx + nx:] = A[:, :, nx:mx + nx][:, :, ::-1]
        if my:
            if top:
                A[:, :my] = A[:, my:2 * my][:, ::-1]
            if bottom:
                A[:, my + ny:] = A[:, ny:my + ny][:, ::-1]

    def free(self):
        """Release the committed datatypes (idempotent)."""
        for t in self._types:
            t.Free()
        self._types = []
        self._peers = []
