"""When things happen: OpenPV's update and write schedules (facts §3.3, §3.5, §4.5).

Layers, weight updaters and probe triggers all ask the same question — does
an object with period Δ, last updated at `last`, update at time t? — and the
same trigger rule: a triggered object updates when its trigger layer would
update at t + triggerOffset.
"""


def periodic_due(t, last, period, dt):
    """OpenPV's test ``|(t - last)/Δ - round(...)| * Δ < dt/2`` (Δ <= 0: never)."""
    if period <= 0:
        return False
    m = (t - last) / period
    return abs(m - round(m)) * period < dt / 2


class UpdateController:
    """The update schedule of one layer: every step, every displayPeriod, or on a trigger."""

    def __init__(self, period, dt, trigger=None, trigger_offset=0.0):
        self.period = period
        self.dt = dt
        self.last_update = dt  # OpenPV starts lastUpdateTime at dt
        self.trigger = trigger  # another UpdateController, or None
        self.trigger_offset = trigger_offset

    def due(self, t):
        """Whether the layer updates at t: when its trigger layer would at t + triggerOffset, else
        periodically from its last update."""
        if self.trigger is not None:
            return self.trigger.due(t + self.trigger_offset)
        return periodic_due(t, self.last_update, self.period, self.dt)

    def mark(self, t):
        """Record an update at t; the period counts from here."""
        self.last_update = t


class WriteSchedule:
    """writeStep / initialWriteTime: write when t >= next - slack, then next += step."""

    def __init__(self, write_step, initial_write_time, slack):
        """A negative initialWriteTime moves up by whole writeSteps to >= 0; without writes (writeStep < 0)
        OpenPV never reads it and the next write time stays 0 (both as OpenPV's checkpoints record)."""
        self.step = write_step
        self.next = initial_write_time if write_step >= 0 else 0.0
        if write_step > 0:
            while self.next < 0:
                self.next += write_step
        self.slack = slack

    def due(self, t):
        """Whether to write at t; advances the next write time, so ask once per step (writeStep 0:
        every step from initialWriteTime on, as in OpenPV; < 0: never)."""
        if self.step < 0:
            return False
        if t >= self.next - self.slack:
            self.next += self.step
            return True
        return False
