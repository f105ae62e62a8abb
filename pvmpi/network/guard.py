"""The numerical guard: a run stops at the first step whose state is not finite.

Every step, after the layers have updated and before anything of that step
is written, the guard looks at the per-batch-element sums of each updated
layer's activity — sums that the pass writing A, or the layer's stats that its
probes use anyway, give (:meth:`Layer.activity_sums`), so the check itself
costs no pass over A. A float64 sum of float32 values is finite exactly
when every value is, so a NaN or Inf anywhere is found. With
``errorOnNotANumber`` the membrane potentials are checked too: a
thresholded layer turns a NaN in V into A = 0, which hides it from A's sums
(a layer whose A is its V needs no second look).

All ranks decide together, so the error is raised on every rank alike: the
outputs of the steps before are complete, and no checkpoint of the poisoned
state is written. The decision travels in one small MAX reduction, which
also carries the run's signal and checkpoint-clock flags. With more than one
rank it is non-blocking: step k's reduction is started when its layers have
updated and read during step k + SLACK_STEPS, so no rank waits for the slowest
at every step. Step k's outputs are written meanwhile and cut back to where they stood
(:func:`~pvmpi.io.outputs.restore_points`) if its verdict is bad (lines a
probe without probeOutputFile printed to the terminal stay); a checkpoint
settles the verdict first, so it never holds an unverified state.
"""
from collections import deque

import numpy as np

from ..errors import PvmpiError
from ..io.outputs import cut_back, restore_points

_NONE = np.iinfo(np.int64).max
#: steps a rank may run ahead of a verdict: a rank descheduled for up to this many steps delays no other
SLACK_STEPS = 4


class NumericGuard:
    """Checks the layers updated in a step; raises PvmpiError naming layer, batch element and step."""

    def __init__(self, column):
        self.column = column
        self.check_v = bool(column.model.column["errorOnNotANumber"])
        self.layers = list(column.layers.values())
        self.index = {layer.name: i for i, layer in enumerate(self.layers)}
        self.nbatch = int(column.model.column["nbatch"])
        self.flags = np.zeros(0, np.int64)  # the settled verdicts' OR-ed flags (see check, take_flags)
        # (request, result, t, step, output restore points, input) of each unsettled step, oldest first
        self.pending = deque()

    def _sums(self, layer):
        yield 0, layer.activity_sums()
        if self.check_v and layer.has_v and not layer.a_is_v:
            yield 1, layer.membrane_sums()

    def check(self, updated, flags=None):
        """Look at the layers updated this step; raise on every rank if any rank's hold a NaN or Inf.

        ``flags`` (int64, optional): this rank's flags, OR-ed over all ranks in
        the same reduction and added to ``self.flags`` once it completes. On one
        rank the verdict is immediate; on more, this step's reduction starts and
        the verdict of the step SLACK_STEPS before is settled (see the module docstring).
        """
        code = _NONE
        for layer in updated:
            for what, sums in self._sums(layer):
                bad = np.flatnonzero(~np.isfinite(sums))
                if bad.size:
                    b = layer.tile.kb0 + int(bad[0])
                    code = min(code, (2 * self.index[layer.name] + what) * self.nbatch + b)
                    break
        buf = np.empty(1 + (0 if flags is None else len(flags)), np.int64)
        buf[0] = -code  # MAX of -code is the MIN of code
        buf[1:] = 0 if flags is None else flags
        col = self.column
        if col.comms.size == 1:
            self._decide(buf, col.t, col.step)
            return
        out = np.empty_like(buf)
        self.pending.append((col.comms.iallreduce_max(buf, out), out, col.t, col.step, restore_points(), buf))
        while len(self.pending) > SLACK_STEPS:
            self._settle(self.pending.popleft())

    def settle(self):
        """Wait for every pending verdict (collective): before a checkpoint, at the end of a run."""
        while self.pending:
            self._settle(self.pending.popleft())

    def take_flags(self):
        """The flags of the verdicts settled since the last call, OR-ed (then cleared)."""
        flags, self.flags = self.flags, np.zeros_like(self.flags)
        return flags

    def _settle(self, pending):
        request, buf, t, step, points, _ = pending
        self.column.timers.call("wait", request.wait)  # the slowest rank's lag, not the check's own cost
        if -buf[0] != _NONE:
            cut_back(points)  # that step's outputs, and any after it
            while self.pending:  # every rank started the later ones: complete them before raising
                self.pending.popleft()[0].wait()
        self._decide(buf, t, step)

    def _decide(self, buf, t, step):
        flags = buf[1:]
        self.flags = flags.copy() if self.flags.shape != flags.shape else self.flags | flags
        if -buf[0] != _NONE:
            self._raise(int(-buf[0]), t, step)

    def _raise(self, code, t, step):
        b = code % self.nbatch
        layer = self.layers[code // self.nbatch // 2]
        what = "membrane potential V" if (code // self.nbatch) % 2 else "activity A"
        raise PvmpiError(f"{what} is not finite (NaN or Inf) at t = {t:g} (step {step}), "
                         f"batch element {b}", group=layer.name,
                         hint="the run stopped before writing this step; outputs and checkpoints of the "
                              "steps before are intact")
