"""The numerical guard: a run stops at the first step whose state is not finite.

Every step, after the layers have updated and before anything of that step
is written, the guard looks at the per-batch-element sums of each updated
layer's activity — the sums the layer's probes use anyway, so the check costs
one vectorised pass at most. A float64 sum of float32 values is finite exactly
when every value is, so a NaN or Inf anywhere is found. With
``errorOnNotANumber`` the membrane potentials are checked too: a
thresholded layer turns a NaN in V into A = 0, which hides it from A's sums
(a layer whose A is its V needs no second look).

All ranks decide together, so the error is raised on every rank alike: the
outputs of the previous step are complete, and no checkpoint of the poisoned
state is written. The decision travels in the step's only collective (one
small MAX all-reduce when there is more than one rank), which also carries
the run's signal and checkpoint-clock flags.
"""
import numpy as np

from ..errors import PvmpiError

_NONE = np.iinfo(np.int64).max


class NumericGuard:
    """Checks the layers updated in a step; raises PvmpiError naming layer, batch element and step."""

    def __init__(self, column):
        self.column = column
        self.check_v = bool(column.model.column["errorOnNotANumber"])
        self.layers = list(column.layers.values())
        self.index = {layer.name: i for i, layer in enumerate(self.layers)}
        self.nbatch = int(column.model.column["nbatch"])
        self.flags = np.zeros(0, np.int64)  # the step's OR-ed flags (see check)

    def _sums(self, layer):
        yield 0, layer.activity_stats()[:, 0]
        if self.check_v and layer.has_v and not layer.a_is_v:
            yield 1, layer.membrane_sums()

    def check(self, updated, flags=None):
        """Raise on every rank if any rank's updated layers hold a NaN or an Inf.

        ``flags`` (int64, optional): this rank's flags to OR over all ranks in
        the same all-reduce; the result is left in ``self.flags``.
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
        comms = self.column.comms
        if comms.size > 1:
            buf = comms.allreduce_max(buf)
        self.flags = buf[1:]
        if -buf[0] != _NONE:
            self._raise(int(-buf[0]))

    def _raise(self, code):
        col = self.column
        b = code % self.nbatch
        layer = self.layers[code // self.nbatch // 2]
        what = "membrane potential V" if (code // self.nbatch) % 2 else "activity A"
        raise PvmpiError(f"{what} is not finite (NaN or Inf) at t = {col.t:g} (step {col.step}), "
                         f"batch element {b}", group=layer.name,
                         hint="the run stopped before writing this step; outputs and checkpoints of the "
                              "steps before are intact")
