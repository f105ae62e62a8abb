"""Wall-clock timers per phase of the step (delivery per connection, update per layer, halo, ...).

The column and its objects add to named timers; the bench command and the
end-of-run report read them. Names are ``phase`` or ``phase:object``. Timers
nest and report exclusive time: the all-reduce inside a weight update counts
as all-reduce, not also as learning, so the phases add up to the step time.
"""
from collections import defaultdict
from time import perf_counter


class Timers:
    """Exclusive wall-clock seconds and call counts per named timer (``phase`` or ``phase:object``)."""

    def __init__(self):
        self.totals = defaultdict(float)
        self.counts = defaultdict(int)
        self._children = []  # time spent in nested timers, one entry per open timer
        self._blocks = {}

    def time(self, name):
        """Context manager timing its block under ``name`` (one object per name, made once: the
        step opens some ten of these)."""
        block = self._blocks.get(name)
        if block is None:
            block = self._blocks[name] = _Block(self, name)
        return block

    def call(self, name, fn, *args):
        """``fn(*args)`` timed under ``name``; returns its result (the bookkeeping written out here:
        the step makes some 30 of these calls)."""
        children = self._children
        children.append(0.0)
        t0 = perf_counter()
        try:
            return fn(*args)
        finally:
            elapsed = perf_counter() - t0
            self.totals[name] += elapsed - children.pop()
            self.counts[name] += 1
            if children:
                children[-1] += elapsed

    def by_phase(self):
        """Exclusive totals summed over objects: {'deliver': s, 'update': s, ...}."""
        out = defaultdict(float)
        for name, s in self.totals.items():
            out[name.split(":", 1)[0]] += s
        return dict(out)

    def reset(self):
        """Zero every total and count, e.g. after the bench's warm-up steps."""
        self.totals.clear()
        self.counts.clear()


class _Block:
    """``with timers.time(name):`` — the block's start and its nested time on the timers' stack."""

    __slots__ = ("timers", "name", "starts")

    def __init__(self, timers, name):
        self.timers, self.name, self.starts = timers, name, []

    def __enter__(self):
        self.timers._children.append(0.0)
        self.starts.append(perf_counter())

    def __exit__(self, *exc):
        elapsed = perf_counter() - self.starts.pop()
        timers = self.timers
        children = timers._children
        timers.totals[self.name] += elapsed - children.pop()
        timers.counts[self.name] += 1
        if children:
            children[-1] += elapsed
