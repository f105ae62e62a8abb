"""When and where checkpoints are written, and the signals that ask for one (facts §2.3, §6.1).

Every rank takes the same decision: the step and time modes are pure
arithmetic on shared values, and the wall-clock mode, signals and requests
travel as bits of an int in the numerical guard's reductions, OR-ed over the
ranks — so a SIGUSR2 that reaches a single rank still stops every rank at the
same step.
"""
import os
import shutil
import signal
import time

from ..errors import PvmpiError
from ..io.checkpoint import checkpoint_name

CLOCK_UNITS = {"s": 1, "sec": 1, "second": 1, "seconds": 1, "m": 60, "min": 60, "minute": 60,
               "minutes": 60, "h": 3600, "hr": 3600, "hour": 3600, "hours": 3600, "d": 86400,
               "day": 86400, "days": 86400}

#: a step's flags, bits of an int: OR-ed over the ranks by the guard's reductions
CHECKPOINT_NOW, STOP, CLOCK_DUE = 1, 2, 4
FLAG_BITS = 3


class Signals:
    """SIGUSR1: checkpoint and go on; SIGUSR2, SIGTERM or SIGINT (Ctrl-C): checkpoint and stop after
    this step. A second Ctrl-C interrupts at once (KeyboardInterrupt)."""

    def __init__(self):
        self.raised = 0  # the flags set since the last take
        self.previous = {}
        self.interrupted = False  # a Ctrl-C arrived: the run ends with exit status 130

    def install(self):
        """Catch the signals (idempotent): from the very start of a run, so none is lost in start-up."""
        if self.previous:
            return
        self.raised = 0
        handlers = {signal.SIGUSR1: CHECKPOINT_NOW, signal.SIGUSR2: STOP, signal.SIGTERM: STOP}
        for sig, flag in handlers.items():
            self.previous[sig] = signal.signal(sig, lambda s, f, flag=flag: self._set(flag))
        self.previous[signal.SIGINT] = signal.signal(signal.SIGINT, self._interrupt)

    def _set(self, flag):
        self.raised |= flag

    def _interrupt(self, signum, frame):
        if self.interrupted:  # the second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.interrupted = True
        self._set(STOP)

    def uninstall(self):
        """Put back the handlers :meth:`install` replaced; the run calls it when it ends."""
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous = {}

    def take(self, clock_due):
        """This rank's raised flags (and CLOCK_DUE if its checkpoint clock is due), an int, cleared locally.

        The guard ORs them over all ranks in its reductions (see
        :class:`~pvmpi.network.guard.NumericGuard`), so a signal to any rank
        stops every rank at the same step.
        """
        # no call between the read and the clear, so no handler runs there (CPython runs them at calls
        # and loops): a signal is taken now or at the next step, never lost
        raised, self.raised = self.raised, 0
        return raised | CLOCK_DUE if clock_due else raised


SIGNALS = Signals()  # one per process: the command line installs it before anything else


class CheckpointSchedule:
    """checkpointWrite*, checkpointIndexWidth, deleteOlderCheckpoints, lastCheckpointDir."""

    def __init__(self, column):
        g = column.model.column
        self.enabled = g["checkpointWrite"]
        self.directory = g["checkpointWriteDir"]
        self.mode = g["checkpointWriteTriggerMode"].lower()
        self.step_interval = g["checkpointWriteStepInterval"]
        self.time_interval = g["checkpointWriteTimeInterval"]
        self.width = g["checkpointIndexWidth"]
        self.keep = g["numCheckpointsKept"] if g["deleteOlderCheckpoints"] else 0
        self.last_dir = g["lastCheckpointDir"]
        self.final_step = column.final_step
        self.next_time = 0.0
        self.clock_started = time.monotonic()
        self.clock_interval = None
        self.written = []  # scheduled checkpoints, oldest first, for deleteOlderCheckpoints
        if self.enabled and self.mode == "clock":
            unit = CLOCK_UNITS.get(g["checkpointWriteClockUnit"].lower())
            if unit is None or g["checkpointWriteClockInterval"] is None:
                raise PvmpiError("clock checkpoints need checkpointWriteClockInterval and a unit of "
                                 f"{', '.join(sorted(set(CLOCK_UNITS)))}", group=g.name,
                                 param="checkpointWriteClockUnit")
            self.clock_interval = g["checkpointWriteClockInterval"] * unit
        if self.enabled and self.mode not in ("step", "time", "clock"):
            raise PvmpiError(f"unknown checkpointWriteTriggerMode '{g['checkpointWriteTriggerMode']}'",
                             group=g.name, param="checkpointWriteTriggerMode")
        if self.keep < 0 or (g["deleteOlderCheckpoints"] and self.keep == 0):
            raise PvmpiError("must be > 0", group=g.name, param="numCheckpointsKept")

    def path(self, step):
        """Directory of the checkpoint of ``step`` in checkpointWriteDir (``Checkpoint<step>``)."""
        return os.path.join(self.directory, checkpoint_name(step, self.final_step, self.width))

    def due(self, step, t, dt):
        """Scheduled at the start of a step (step 0 included) in step and time modes."""
        if not self.enabled:
            return False
        if self.mode == "step":
            return step % self.step_interval == 0
        if self.mode == "time" and t >= self.next_time - dt / 2:
            while self.next_time <= t + dt / 2:
                self.next_time += self.time_interval
            return True
        return False

    def clock_due(self):
        """Whether checkpointWriteClockInterval of wall-clock time has passed (the clock then
        restarts); this rank's view, OR-ed over the ranks by :meth:`Signals.exchange`."""
        if self.clock_interval is None:
            return False
        if time.monotonic() - self.clock_started >= self.clock_interval:
            self.clock_started = time.monotonic()
            return True
        return False

    def skips(self, path, read_from):
        """Whether writing checkpoint ``path`` is skipped because the run was read from it: OpenPV
        compares ``checkpointWriteDir + "/Checkpoint<step>"`` with the directory read as strings
        (so with a checkpointWriteDir ending in '/' it rewrites it), and always writes
        lastCheckpointDir (facts §6.1)."""
        if not self.enabled or read_from is None or os.path.normpath(os.path.dirname(path)) != os.path.normpath(self.directory):
            return False
        return f"{self.directory}/{os.path.basename(path)}" == str(read_from)

    def final_path(self, step):
        """Where the end-of-run checkpoint goes: the one of ``step`` in checkpointWriteDir
        when checkpointWrite is on, else lastCheckpointDir (None: nowhere)."""
        if self.enabled:
            return self.path(step)
        return self.last_dir

    def record(self, path, is_root):
        """Remember a scheduled checkpoint; delete the oldest beyond numCheckpointsKept."""
        if path in self.written:
            self.written.remove(path)
        self.written.append(path)
        while self.keep and len(self.written) > self.keep:
            old = self.written.pop(0)
            if is_root and os.path.isdir(old):
                shutil.rmtree(old)
