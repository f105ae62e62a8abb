"""Probe lines written a step late, so that a batch slice's tiles do not meet at every step.

A probe's values are sums over the R x C tiles of its batch slice. When a
slice spans several tiles, each sampled probe starts its reduction and its
lines wait: they are written just before the next step's guard check, after
that step's layers have updated, so a tile that finished late delays no
other by more than a step. The lines still come after the step's restore
point (the guard can cut them back) and before the next one. A checkpoint,
the end of a run, a read of a probe's values, and an adaptive time scale
(which needs the energy at the start of the next step) settle them first.
"""


#: steps between the start of a probe's reduction and the wait for it
LAG_STEPS = 1


class LaggedProbes:
    """The probes sampled in the last step whose lines wait, in the order they were sampled."""

    def __init__(self, column):
        self.on = not column.comms.one_tile
        self.column = column
        self.waiting = []  # (probe, t, step)

    def output(self, probe, t):
        """Sample ``probe`` at t: write its lines now, or start its sums and write them at :meth:`settle`."""
        if not (self.on and probe.lags):
            probe.output(t)
        elif probe.begin(t):
            self.waiting.append((probe, t, self.column.step))

    def settle(self):
        """Write the waiting lines (waiting for their sums; collective through them)."""
        waiting, self.waiting = self.waiting, []
        for probe, t, step in waiting:
            probe.write(t, step)

    def drop(self):
        """Forget the waiting lines (a run that stopped with an error: they are not written)."""
        self.waiting = []
