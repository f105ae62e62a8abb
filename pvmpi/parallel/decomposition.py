"""Process grid and tiles: pure arithmetic, no MPI.

Every function takes the rank (or world size) as an argument, so a serial
test can check every rank's batch slice and tile for any number of ranks
without launching MPI. This module must never import mpi4py.

The grid is OpenPV's (facts 7.1): BatchWidth (B) x NumRows (R) x NumColumns
(C), with ``rank = column + C*(row + R*batch)`` (column fastest, batch
slowest). All layers share the one R x C tiling.
"""
from dataclasses import dataclass
from math import isqrt

from pvmpi.errors import PvmpiError

_NAMES = ("BatchWidth", "NumRows", "NumColumns")


def _positive_int(value, param):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PvmpiError(f"must be a positive integer, got {value!r}", param=param)
    return value


@dataclass(frozen=True)
class Layout:
    """The process grid: batch_width x rows x columns ranks."""

    batch_width: int
    rows: int
    columns: int

    def __post_init__(self):
        for name, value in zip(_NAMES, (self.batch_width, self.rows, self.columns)):
            _positive_int(value, name)

    @property
    def size(self):
        return self.batch_width * self.rows * self.columns

    def __str__(self):
        return f"BatchWidth={self.batch_width} NumRows={self.rows} NumColumns={self.columns}"


def layouts(world_size):
    """Every layout using exactly ``world_size`` ranks, ordered by (B, R, C)."""
    _positive_int(world_size, "world_size")
    found = []
    for b in range(1, world_size + 1):
        if world_size % b:
            continue
        per_slice = world_size // b
        for r in range(1, per_slice + 1):
            if per_slice % r == 0:
                found.append(Layout(b, r, per_slice // r))
    return found


def choose_layout(world_size, batch_width=None, rows=None, columns=None):
    """OpenPV's defaults for the grid (facts 7.1); ``None`` means "not given".

    B defaults to 1; with only R given C = (P/B)/R, only C given R = (P/B)/C,
    neither R = floor(sqrt(P/B)) and C = (P/B)/R (integer division, as
    OpenPV). The result may use fewer ranks than ``world_size``:
    :func:`check_world` refuses that clearly.
    """
    _positive_int(world_size, "world_size")
    b = 1 if batch_width is None else _positive_int(batch_width, "BatchWidth")
    r = None if rows is None else _positive_int(rows, "NumRows")
    c = None if columns is None else _positive_int(columns, "NumColumns")
    per_slice = world_size // b
    if per_slice == 0:
        raise PvmpiError(f"BatchWidth={b} needs at least {b} MPI processes, have {world_size}",
                         param="BatchWidth", hint=f"run with at least {b} processes")
    if r is None and c is None:
        r = isqrt(per_slice)
        c = per_slice // r
    elif c is None:
        c = per_slice // r
        if c == 0:
            raise PvmpiError(f"NumRows={r} exceeds the {per_slice} processes per batch slice "
                             f"({world_size} processes, BatchWidth={b})", param="NumRows",
                             hint=f"use NumRows <= {per_slice} or more processes")
    elif r is None:
        r = per_slice // c
        if r == 0:
            raise PvmpiError(f"NumColumns={c} exceeds the {per_slice} processes per batch slice "
                             f"({world_size} processes, BatchWidth={b})", param="NumColumns",
                             hint=f"use NumColumns <= {per_slice} or more processes")
    return Layout(b, r, c)


def check_world(layout, world_size):
    """Refuse a world that is not exactly the layout's size.

    OpenPV lets surplus ranks exit with a warning; we refuse instead, because
    idle ranks in a batch job are wasted allocation and usually a typo.
    """
    if world_size == layout.size:
        return
    fits = ", ".join(str(lay) for lay in layouts(world_size)[:4])
    if world_size < layout.size:
        what = f"{layout} needs {layout.size} MPI processes, have only {world_size}"
    else:
        what = f"{layout} uses {layout.size} MPI processes, but {world_size} were started"
    raise PvmpiError(what, param="NumRows/NumColumns/BatchWidth",
                     hint=f"run with mpiexec -n {layout.size}, or with {world_size} processes "
                          f"choose e.g. {fits}")


def coords(rank, layout):
    """(batch, row, column) of ``rank``: column fastest, batch slowest."""
    if not 0 <= rank < layout.size:
        raise ValueError(f"rank {rank} outside a grid of {layout.size} ranks")
    column = rank % layout.columns
    row = (rank // layout.columns) % layout.rows
    batch = rank // (layout.columns * layout.rows)
    return batch, row, column


def rank_of(batch, row, column, layout):
    """Inverse of :func:`coords`."""
    if not (0 <= batch < layout.batch_width and 0 <= row < layout.rows
            and 0 <= column < layout.columns):
        raise ValueError(f"({batch}, {row}, {column}) outside the grid {layout}")
    return column + layout.columns * (row + layout.rows * batch)


@dataclass(frozen=True)
class Tile:
    """One rank's part of one layer: ``nb`` batch elements from ``kb0``,
    ``ny`` rows from ``ky0``, ``nx`` columns from ``kx0`` (OpenPV's PVLayerLoc)."""

    name: str
    nb: int
    kb0: int
    ny: int
    ky0: int
    nx: int
    kx0: int
    nbatch_global: int
    ny_global: int
    nx_global: int

    @property
    def batch_slice(self):
        return slice(self.kb0, self.kb0 + self.nb)

    @property
    def y_slice(self):
        return slice(self.ky0, self.ky0 + self.ny)

    @property
    def x_slice(self):
        return slice(self.kx0, self.kx0 + self.nx)

    def restricted_shape(self, nf):
        """``[nb, ny, nx, nf]``: the tile without halo (V, GSyn)."""
        return (self.nb, self.ny, self.nx, nf)

    def extended_shape(self, nf, margin_x, margin_y):
        """``[nb, ny + 2 margin_y, nx + 2 margin_x, nf]``: the tile with its halo (A)."""
        return (self.nb, self.ny + 2 * margin_y, self.nx + 2 * margin_x, nf)


def _fitting_layouts(world_size, nbatch, ny, nx):
    return [lay for lay in layouts(world_size)
            if nbatch % lay.batch_width == 0 and ny % lay.rows == 0 and nx % lay.columns == 0]


def tile(nbatch_global, ny_global, nx_global, layout, rank, name=None):
    """This rank's tile of a layer; any non-divisibility is the user's error."""
    label = name if name is not None else "layer"
    for quantity, value in (("nbatch", nbatch_global), ("ny", ny_global), ("nx", nx_global)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise PvmpiError(f"{quantity} must be a positive integer, got {value!r}", group=name)
    checks = (("nbatch", nbatch_global, "BatchWidth", layout.batch_width),
              ("ny", ny_global, "NumRows", layout.rows),
              ("nx", nx_global, "NumColumns", layout.columns))
    for quantity, value, pname, parts in checks:
        if value % parts:
            fits = _fitting_layouts(layout.size, nbatch_global, ny_global, nx_global)
            if fits:
                hint = f"with {layout.size} processes these fit {label}: " + "; ".join(
                    str(lay) for lay in fits[:4])
            else:
                hint = (f"no layout of {layout.size} processes divides "
                        f"nbatch={nbatch_global}, ny={ny_global}, nx={nx_global}; "
                        "change the layer size, nbatch or the number of processes")
            raise PvmpiError(f"{quantity}={value} is not divisible by {pname}={parts}",
                             group=name, hint=hint)
    batch, row, column = coords(rank, layout)
    nb = nbatch_global // layout.batch_width
    ny = ny_global // layout.rows
    nx = nx_global // layout.columns
    return Tile(name=label, nb=nb, kb0=nb * batch, ny=ny, ky0=ny * row, nx=nx, kx0=nx * column,
                nbatch_global=nbatch_global, ny_global=ny_global, nx_global=nx_global)
