"""The timers report: where a run's wall time went, like OpenPV's ``timers.txt``.

The column's :class:`~pvmpi.network.timers.Timers` hold this rank's exclusive
seconds per ``phase:object`` (deliver, update, publish, halo, io, learn,
allreduce, probes, ...). :func:`format_timers` gathers every rank's timers
to rank 0 and tabulates them per phase, per layer and per connection, each
with the maximum and the mean over ranks (the maximum is what the run
waited for; a mean well below it means imbalance). :func:`write_timers`
writes the table to a file. Both are collective: call them on every rank.

Example (two ranks)::

    pvmpi timers: exclusive wall-clock seconds per rank; max and mean over 2 rank(s)
    run: 2400 steps to t = 2400; layout BatchWidth 2 x NumRows 1 x NumColumns 1

    per phase                                  max s      mean s   % timed     calls
      deliver                                 10.412      10.233      48.1      7200
      ...
      total timed                             21.305      21.270     100.0
"""
import os

from .outputs import write_atomic

# the order phases are listed in; phases not named here follow, alphabetically
PHASE_ORDER = ("deliver", "update", "publish", "halo", "learn", "allreduce", "guard", "wait", "io", "probes",
               "checkpoint")


def gather_timers(column, elapsed=None):
    """Every rank's timers as a list of dicts on world rank 0 (None elsewhere). Collective."""
    local = {"totals": dict(column.timers.totals), "counts": dict(column.timers.counts),
             "elapsed": elapsed}
    return column.comms.gather(local, root=0)


def _phase_key(phase):
    return (PHASE_ORDER.index(phase), "") if phase in PHASE_ORDER else (len(PHASE_ORDER), phase)


def _reduce(per_rank, key_of):
    """{key: (max, mean, calls)} of the per-rank sums of the timers mapped to each key.

    ``key_of(name)`` gives the key a timer adds to, or None to skip it.
    Summing on each rank first and reducing afterwards keeps max and mean
    meaningful for totals (the max of a sum is not the sum of maxima).
    """
    sums, calls = {}, {}
    n = len(per_rank)
    for r, rank in enumerate(per_rank):
        for name, seconds in rank["totals"].items():
            key = key_of(name)
            if key is None:
                continue
            sums.setdefault(key, [0.0] * n)[r] += seconds
            calls[key] = max(calls.get(key, 0), rank["counts"].get(name, 0))
    return {key: (max(v), sum(v) / n, calls[key]) for key, v in sums.items()}


def _split(name):
    phase, _, obj = name.partition(":")
    return phase, obj or None


def format_table(per_rank, layers=(), connections=(), header_lines=()):
    """The report from gathered per-rank timers (see :func:`gather_timers`); no MPI needed."""
    n = len(per_rank)
    layers, connections = list(layers), list(connections)
    by_phase = _reduce(per_rank, lambda name: _split(name)[0])
    total = _reduce(per_rank, lambda name: "total")
    total_max, total_mean = total.get("total", (0.0, 0.0, 0))[:2]

    def pct(mean):
        return f"{100 * mean / total_mean:9.1f}" if total_mean > 0 else f"{'-':>9}"

    def row(label, stat, with_pct=True, width=38):
        mx, mean, calls = stat
        return (f"  {label:<{width}} {mx:10.3f}  {mean:10.3f} "
                + (pct(mean) if with_pct else " " * 9) + (f" {calls:9d}" if calls else ""))

    head = f"{'':<40} {'max s':>10}  {'mean s':>10} {'% timed':>9} {'calls':>9}"
    lines = [f"pvmpi timers: exclusive wall-clock seconds per rank; max and mean over {n} rank(s)"]
    lines += list(header_lines)
    lines += ["", "per phase" + head[9:]]
    for phase in sorted(by_phase, key=_phase_key):
        lines.append(row(phase, by_phase[phase]))
    lines.append(row("total timed", (total_max, total_mean, 0)))
    elapsed = [r.get("elapsed") for r in per_rank]
    if all(e is not None for e in elapsed):
        untimed = [e - sum(r["totals"].values()) for e, r in zip(elapsed, per_rank)]
        lines.append(row("not in a timer (loop, start-up)", (max(untimed), sum(untimed) / n, 0),
                         with_pct=False))
        lines.append(row("run (wall clock)", (max(elapsed), sum(elapsed) / n, 0), with_pct=False))

    for title, names in (("per layer", layers), ("per connection", connections)):
        stats = _reduce(per_rank, lambda name: _split(name) if _split(name)[1] in names else None)
        if not stats:
            continue
        totals = _reduce(per_rank, lambda name: _split(name)[1] if _split(name)[1] in names else None)
        lines += ["", title + head[len(title):]]
        for obj in names:
            phases = sorted((p for p, o in stats if o == obj), key=_phase_key)
            if not phases:
                continue
            for phase in phases:
                lines.append(row(f"{obj:<28} {phase}", stats[(phase, obj)]))
            lines.append(row(f"{obj:<28} total", totals[obj][:2] + (0,)))
    others = _reduce(per_rank, lambda name: name if _split(name)[1] is not None
                     and _split(name)[1] not in layers + connections else None)
    if others:
        lines += ["", "other timers" + head[12:]]
        for name in sorted(others):
            lines.append(row(name, others[name]))
    return "\n".join(line.rstrip() for line in lines) + "\n"


def format_timers(column, elapsed=None):
    """The timers report of a column, as text on world rank 0 (None elsewhere). Collective.

    ``elapsed`` (this rank's wall-clock seconds for the run) adds the time
    spent outside any timer.
    """
    per_rank = gather_timers(column, elapsed)
    if per_rank is None:
        return None
    lay = column.comms.layout
    header = [f"run: {column.step} steps to t = {column.t:g}; layout BatchWidth {lay.batch_width} "
              f"x NumRows {lay.rows} x NumColumns {lay.columns}"]
    return format_table(per_rank, column.layers.keys(), column.connections.keys(), header)


def write_timers(path, column, elapsed=None):
    """Write the timers report to ``path`` (world rank 0 writes; every rank calls). Collective.

    The file is written under a temporary name, fsync'ed and renamed when complete.
    Returns the text on rank 0, None elsewhere.
    """
    text = format_timers(column, elapsed)
    if text is None:
        return None
    path = str(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_atomic(path, text)
    return text
