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
state is written. The decision travels in small MAX reductions, which also
carry the run's signal and checkpoint-clock flags. With more than one rank
they are non-blocking and batched: the verdicts of SLACK_STEPS steps travel
in one reduction, started when the block's last step has updated and read
when the next block is full, so ranks meet once per block and no rank waits
for the slowest at every step (an MPI reduction costs tens of microseconds
to start and complete, more than the check itself). The steps' outputs are
written meanwhile and cut back to where they stood
(:func:`~pvmpi.io.outputs.restore_point`) at the first step whose verdict is
bad (lines a probe without probeOutputFile printed to the terminal stay); a
checkpoint settles every verdict first, so it never holds an unverified state.
"""
import math
from collections import deque

import numpy as np

from ..errors import PvmpiError
from ..io.outputs import cut_back, forget_before, restore_point
from .checkpointing import FLAG_BITS

_NONE = np.iinfo(np.int64).max
#: steps whose verdicts travel together, and steps a rank may run ahead of a block's verdict:
#: a rank descheduled for up to this many steps delays no other
SLACK_STEPS = 4


def _finite(steps):
    """Whether every sum of ``steps`` (:meth:`NumericGuard._sums` lists) is finite, in one look: a
    total of float64 sums of float32 values is finite exactly when each is (they are far from
    overflowing), so only a step that is not pays a look at each sum."""
    every = [sums for found in steps for _, _, sums in found]
    return not every or math.isfinite(np.add.reduce(np.concatenate(every)))


class NumericGuard:
    """Checks the layers updated in a step; raises PvmpiError naming layer, batch element and step."""

    def __init__(self, column):
        self.column = column
        self.check_v = bool(column.model.column["errorOnNotANumber"])
        self.layers = list(column.layers.values())
        self.index = {layer.name: i for i, layer in enumerate(self.layers)}
        self.nbatch = int(column.model.column["nbatch"])
        self.flags = 0  # the settled verdicts' OR-ed flags (see check, take_flags)
        self.block = []  # (sums, t, step, output restore point) of this rank's steps not yet sent
        self.block_flags = 0  # their flags, OR-ed
        # (reduction, result, steps of the block) of each block sent and not settled, oldest first
        self.pending = deque()

    def _sums(self, updated):
        """[(layer, 0 for A or 1 for V, [nb] float64 sums)] of the layers updated this step: the
        sums themselves are looked at later, a block of steps at once."""
        found = [(layer, 0, layer.activity_sums()) for layer in updated]
        if self.check_v:
            found += [(layer, 1, layer.membrane_sums()) for layer in updated if layer.has_v and not layer.a_is_v]
        return found

    def _codes(self, steps):
        """Per step (a :meth:`_sums` list), the smallest code of a NaN or Inf (layer, A or V, global
        batch element), or _NONE; one look at every sum of the block when all are finite."""
        if _finite(steps):
            return [_NONE] * len(steps)
        codes = []
        for found in steps:
            code = _NONE
            for layer, what, sums in found:
                bad = np.flatnonzero(~np.isfinite(sums))
                if bad.size:
                    b = layer.tile.kb0 + int(bad[0])
                    code = min(code, (2 * self.index[layer.name] + what) * self.nbatch + b)
            codes.append(code)
        return codes

    def check(self, updated, flags=0):
        """Look at the layers updated this step; raise on every rank if any rank's hold a NaN or Inf.

        ``flags`` (an int of FLAG_BITS bits): this rank's flags, OR-ed over all ranks in
        the same reduction and added to ``self.flags`` once it completes. On one
        rank the verdict is immediate; on more, a block of SLACK_STEPS steps is
        sent at once and settled when the next one is sent (see the module docstring).
        """
        col = self.column
        found = self._sums(updated)
        if col.comms.size == 1:
            self.flags |= flags
            code = _NONE if _finite([found]) else self._codes([found])[0]
            if code != _NONE:
                self._raise(code, col.t, col.step)
            return
        self.block.append((found, col.t, col.step, restore_point()))
        self.block_flags |= flags
        if len(self.block) < SLACK_STEPS:
            return
        self._send()
        while len(self.pending) > 1:
            self._settle(self.pending.popleft())

    def _send(self):
        """Start the reduction of this rank's unsent steps (collective: every rank has the same ones)."""
        flags = self.block_flags
        codes = self._codes([found for found, *_ in self.block])
        # MAX of -code is the MIN of code; MAX of 0/1 flag bits is their OR
        buf = np.array([-code for code in codes] + [(flags >> i) & 1 for i in range(FLAG_BITS)], np.int64)
        out = np.empty_like(buf)
        self.pending.append((self.column.comms.iallreduce_max(buf, out), out,
                             [(t, step, point) for _, t, step, point in self.block]))
        self.block, self.block_flags = [], 0

    def settle(self):
        """Wait for every verdict of the steps so far (collective): before a checkpoint, at the end of a run."""
        if self.block:
            self._send()
        while self.pending:
            self._settle(self.pending.popleft())

    def take_flags(self):
        """The flags of the verdicts settled since the last call, OR-ed (then cleared)."""
        flags, self.flags = self.flags, 0
        return flags

    def _settle(self, pending):
        request, out, steps = pending
        self.column.timers.call("wait", request.wait)  # the slowest rank's lag, not the check's own cost
        n = len(steps)
        got = out.tolist()  # Python ints: numpy's small operations are slow between kernels
        bad = next((i for i in range(n) if got[i] != -_NONE), None)
        if bad is not None:
            cut_back(steps[bad][2])  # the first bad step's outputs, and any after it
            while self.pending:  # every rank started the later ones: complete them before raising
                self.pending.popleft()[0].wait()
            self.block, self.block_flags = [], 0
        else:
            forget_before(steps[-1][2] + 1)
        self.flags |= sum(bit << i for i, bit in enumerate(got[n:]))
        if bad is not None:
            t, step, _ = steps[bad]
            self._raise(-got[bad], t, step)

    def _raise(self, code, t, step):
        b = code % self.nbatch
        layer = self.layers[code // self.nbatch // 2]
        what = "membrane potential V" if (code // self.nbatch) % 2 else "activity A"
        raise PvmpiError(f"{what} is not finite (NaN or Inf) at t = {t:g} (step {step}), "
                         f"batch element {b}", group=layer.name,
                         hint="the run stopped before writing this step; outputs and checkpoints of the "
                              "steps before are intact")
