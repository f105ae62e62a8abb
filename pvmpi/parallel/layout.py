"""Layouts of a network over MPI ranks in one place: whether a layout fits a network (its
:class:`~pvmpi.model.shape.NetworkShape`), which one to choose for a rank count and why, how a
layout is written on a command line and named in a report. The arithmetic of one layout (tiles,
coordinates) is :mod:`pvmpi.parallel.decomposition`."""
import math

from pvmpi.errors import PvmpiError
from pvmpi.parallel.decomposition import Layout, layouts


def layout_problems(shape, b, r, c):
    """Why (b, r, c) does not fit the network: a list of reasons (empty: it fits)."""
    out = []
    if shape.nbatch % b:
        out.append(f"nbatch {shape.nbatch} is not divisible by BatchWidth {b}")
    for lay in shape.layers:
        if lay.ny % r:
            out.append(f"{lay.name} ny {lay.ny} is not divisible by NumRows {r}")
        elif r > 1 and lay.margin_y > lay.ny // r:
            out.append(f"{lay.name} tiles of {lay.ny // r} rows are narrower than its margin {lay.margin_y}")
        if lay.nx % c:
            out.append(f"{lay.name} nx {lay.nx} is not divisible by NumColumns {c}")
        elif c > 1 and lay.margin_x > lay.nx // c:
            out.append(f"{lay.name} tiles of {lay.nx // c} columns are narrower than its margin {lay.margin_x}")
    return out


def check_margins(tile, margin_x, margin_y, layout, mirror):
    """Raise the run's error when a layer's margin is wider than its tile along a split axis (or any
    axis with mirrorBCflag): its halo could not be filled from one neighbour."""
    for axis, margin, n, parts, pname in (("x", margin_x, tile.nx, layout.columns, "NumColumns"),
                                          ("y", margin_y, tile.ny, layout.rows, "NumRows")):
        if margin > n and (parts > 1 or mirror):
            hint = (f"use fewer {pname} (each tile is {n} wide in {axis})" if parts > 1
                    else f"the layer is only {n} wide in {axis}")
            raise PvmpiError(f"margin {margin} in {axis} is wider than the local tile "
                             f"({n}); the halo cannot be filled from one neighbour",
                             group=tile.name, hint=hint)


def fitting_layouts(shape, ranks):
    """Every layout of exactly ``ranks`` processes that fits the network of ``shape``."""
    return [L for L in layouts(ranks) if not layout_problems(shape, L.batch_width, L.rows, L.columns)]


def halo_values(shape, r, c):
    """Values one rank sends per halo exchange of every layer (edges only; margins of at least 1)."""
    total = 0
    for lay in shape.layers:
        if c > 1:
            total += 2 * max(lay.margin_x, 1) * (lay.ny // r) * lay.nf
        if r > 1:
            total += 2 * max(lay.margin_y, 1) * (lay.nx // c) * lay.nf
    return total


def fitting_rank_counts(shape, around, limit=6):
    """Rank counts near ``around`` for which some layout fits (for hints)."""
    found = [k for k in range(1, 4 * around + 1) if fitting_layouts(shape, k)]
    found.sort(key=lambda k: (abs(k - around), k))
    return sorted(found[:limit])


def plan_layout(shape, ranks, batch_width=None, rows=None, columns=None):
    """The layout for ``ranks`` ranks and the reasons for it: ``(Layout, [lines])``.

    Given values (command line, else the config's) are kept. Among the layouts
    that fit: the largest BatchWidth, then the fewest halo values per rank, then
    more rows than columns (a row split exchanges contiguous strips).
    """
    if isinstance(ranks, bool) or not isinstance(ranks, int) or ranks < 1:
        raise PvmpiError(f"the number of ranks must be a positive integer, got {ranks!r}", param="-n")
    given = tuple(v if v is not None else f for v, f in zip((batch_width, rows, columns), shape.fixed))
    names = ("BatchWidth", "NumRows", "NumColumns")
    candidates, rejected = [], []
    for L in layouts(ranks):
        values = (L.batch_width, L.rows, L.columns)
        if any(g is not None and g != v for g, v in zip(given, values)):
            continue
        problems = layout_problems(shape, *values)
        (rejected if problems else candidates).append((L, problems))
    if not candidates:
        fixed = ", ".join(f"{n}={g}" for n, g in zip(names, given) if g is not None)
        why = "; ".join(f"{L.batch_width}x{L.rows}x{L.columns}: {p[0]}" for L, p in rejected[:4]) or \
            f"BatchWidth x NumRows x NumColumns must equal {ranks}"
        counts = fitting_rank_counts(shape, ranks)
        raise PvmpiError(f"no layout of {ranks} rank(s){' with ' + fixed if fixed else ''} fits the network"
                         + (f" ({why})" if why else ""),
                         param="-n", hint=f"rank counts that fit: {', '.join(map(str, counts))}" if counts
                         else "change nbatch or the layer sizes")

    def key(item):
        L = item[0]
        return (-L.batch_width, halo_values(shape, L.rows, L.columns), -L.rows)

    best = min(candidates, key=key)[0]
    B, R, C = best.batch_width, best.rows, best.columns
    lines = [f"layout BatchWidth={B} NumRows={R} NumColumns={C} for {ranks} rank(s):"]
    nb = shape.nbatch
    if ranks == 1:
        lines.append(f"  one rank: the whole batch ({nb} element(s)) and the whole image, no MPI traffic")
    elif given[0] is not None:
        lines.append(f"  BatchWidth={B} as given; each slice holds {nb // B} of the {nb} batch elements")
    elif given[1] is not None or given[2] is not None:
        spatial = " x ".join(f"{n}={g}" for n, g in zip(names[1:], given[1:]) if g is not None)
        lines.append(f"  BatchWidth={B}: the largest that fits beside {spatial} as given; each slice holds "
                     f"{nb // B} of the {nb} batch elements")
    elif B == ranks:
        lines.append(f"  batch split: nbatch {nb} is divisible by {ranks}, so each rank holds {nb // B} "
                     f"batch element(s) of the whole image — no halo exchange, only the dW all-reduce")
    else:
        g = math.gcd(nb, ranks)
        if B == g and B > 1:
            lines.append(f"  batch split first, as far as nbatch allows: BatchWidth={B} is the largest divisor of "
                         f"{ranks} that divides nbatch {nb}; each slice holds {nb // B} batch element(s)")
        elif B == g:
            lines.append(f"  no batch split: no divisor of {ranks} above 1 divides nbatch {nb}")
        else:
            blocked = next((p for L, p in rejected if L.batch_width == g), ["it does not fit"])[0]
            lines.append(f"  BatchWidth={g} (the largest divisor of {ranks} that divides nbatch {nb}) leaves no "
                         f"tiling that fits ({blocked}); BatchWidth={B} is the largest that does")
    if R * C > 1:
        biggest = max(shape.layers, key=lambda lay: lay.nx * lay.ny) if shape.layers else None
        tile = f"{biggest.ny // R}x{biggest.nx // C} tiles of {biggest.name} ({biggest.ny}x{biggest.nx})" \
            if biggest else "tiles"
        how = "as given" if given[1] is not None or given[2] is not None else \
            "the fewest halo values per rank" + (", rows before columns (contiguous strips)" if R >= C else "")
        lines.append(f"  then {R * C} spatial tiles per batch slice, {R} row(s) x {C} column(s): {tile}; "
                     f"{how}; about {halo_values(shape, R, C)} halo values per rank per exchange")
    others = [L for L, _ in candidates if L != best]
    if others:
        lines.append("  other layouts that fit: " + ", ".join(f"{L.batch_width}x{L.rows}x{L.columns}"
                                                              for L in others[:5]))
    return Layout(B, R, C), lines


def parse_layout(text, param="--layout", threads=False):
    """'auto' (or nothing) -> None; 'B,R,C' or 'BxRxC' -> (B, R, C); with ``threads`` also
    'B,R,C:T' -> (B, R, C, T or None)."""
    if text in (None, "", "auto"):
        return None
    spec, _, t = text.partition(":") if threads else (text, "", "")
    try:
        values = tuple(int(v) for v in spec.replace("x", ",").split(","))
        t = int(t) if t else None
    except ValueError:
        values = ()
    form = "B,R,C or B,R,C:T" if threads else "'auto' or B,R,C"
    if len(values) != 3 or min(values) < 1 or (t is not None and t < 1):
        raise PvmpiError(f"layout {text!r} is not {form} (positive integers)", param=param)
    return values + (t,) if threads else values


def layout_kind(b, r, c):
    """How a layout splits the network: serial, batch, rows, columns or mixed."""
    if r == c == 1:
        return "batch" if b > 1 else "serial"
    if b == 1 and c == 1:
        return "rows"
    if b == 1 and r == 1:
        return "columns"
    return "mixed"


def layout_name(b, r, c):
    """Short name of a layout, e.g. 'B=2xR=2' ('1x1x1' for one rank)."""
    parts = [f"B={b}"] * (b > 1) + [f"R={r}"] * (r > 1) + [f"C={c}"] * (c > 1)
    return "x".join(parts) or "1x1x1"
