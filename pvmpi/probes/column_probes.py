"""Column probes: the LCA energy and the adaptive time scales it drives (facts §5.3, §5.4).

Both are per batch element and need no communication across batch slices:
each rank holds its own batch elements' energies.
"""
import numpy as np

from .layer_probes import Probe


class ColumnEnergyProbe(Probe):
    """E_b = Σ_terms coefficient · value_b over the probes naming this one in energyProbe."""

    def __init__(self, group, run):
        super().__init__(group, run)
        self.terms = []

    def link(self, layers, probes):
        """Collect the terms: every probe whose energyProbe names this one."""
        super().link(layers, probes)
        self.terms = [p for p in probes.values() if p.group["energyProbe"] == self.name]
        self.nb = run_nb(self.run)

    def open_output(self, resume=None):
        """Open the output files; a new file starts with the header ``time,index,energy``."""
        super().open_output(resume)
        if resume is None and self.files is not None and not self.files.to_log:
            self.files.write_all("time,index,energy\n")

    needs_key = True

    def compute(self, key):
        """E_b of each local batch element at step ``key``: Σ coefficient · value_b of the terms."""
        total = np.zeros(self.nb)
        for term in self.terms:
            total += term.coefficient * term.values(key)
        return total

    def prefetch(self):
        """Start the terms' values of the current step."""
        for term in self.terms:
            term.prefetch()

    def line(self, t, b, value):
        """Time, global batch index and energy (the probe's name first when writing to the log)."""
        prefix = f'"{self.name}",' if self.files.to_log else ""
        return f"{prefix}{t:10f}, {self.run.batch_slice[0] + b}, {value:10.9f}\n"


class QuotientProbe(Probe):
    """numerator_b / denominator_b of two probes, per batch element (OpenPV's QuotientProbe).

    Sampled with the column probes at the end of each step (not at t = 0);
    a file starts with the header ``Probe_name,time,index,<message>`` and
    each line is ``"<message>",<t>,<g>,<value>`` with C++ stream defaults
    (6 significant digits, like ``%g``).
    """

    needs_key = True

    def link(self, layers, probes):
        """Find the numerator and denominator probes."""
        super().link(layers, probes)
        self.numerator = probes[self.group["numerator"]]
        self.denominator = probes[self.group["denominator"]]
        for operand in (self.numerator, self.denominator):
            if hasattr(operand, "askers"):
                operand.askers.append(self)
        self.nb = run_nb(self.run)

    @property
    def message(self):
        return self.group["message"] or ""

    def open_output(self, resume=None):
        """Open the output files; a new file starts with ``Probe_name,time,index,<message>``."""
        super().open_output(resume)
        if resume is None and self.files is not None and not self.files.to_log:
            self.files.write_all(f"Probe_name,time,index,{self.message}\n")

    def compute(self, key):
        """numerator / denominator per batch element at step ``key``, in float64 (inf or nan
        for a zero denominator, as in C++)."""
        num = np.asarray(self.numerator.values(key), np.float64)
        den = np.asarray(self.denominator.values(key), np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):  # C++ gives inf/nan as well
            return num / den

    def prefetch(self):
        """Start the numerator's and the denominator's values of the current step."""
        self.numerator.prefetch()
        self.denominator.prefetch()

    def write(self, t, step):
        """When triggered (see :meth:`~Probe.sampled`): ``"<message>",<t>,<g>,<value>`` per batch element."""
        vals = self.values(step)
        if self.files is None:
            return
        kb0 = self.run.batch_slice[0]
        for b in range(self.nb):
            self.files.write(b, f'"{self.message}",{t:.6g},{kb0 + b},{vals[b]:.6g}\n')


def run_nb(run):
    """Number of batch elements on this rank."""
    return run.batch_slice[1]


class AdaptiveTimeScaleProbe(Probe):
    """Per-batch-element time scale Δ_b from the decay of the energy (facts §5.4)."""

    def link(self, layers, probes):
        """Find the target energy probe; every batch element starts at timeScale baseMin,
        timeScaleMax baseMax and timeScaleTrue -1."""
        super().link(layers, probes)
        g = self.group
        self.target = probes[g["targetName"]]
        nb = run_nb(self.run)
        self.time_scale = np.full(nb, g["baseMin"])
        self.time_scale_max = np.full(nb, g["baseMax"])
        self.time_scale_true = np.full(nb, -1.0)
        self.t = None

    def adapt(self, t):
        """Called at the start of each step, after t += dt, before any layer updates."""
        g = self.group
        if self.trigger_fires(t):
            energy = np.full(len(self.time_scale), -1.0)
        else:  # the energy of the state left by the previous step
            energy = self.target.latest()  # what the target computed last (facts §5.4)
        for b in range(len(self.time_scale)):
            e_new = float(energy[b])
            e_old = self.time_scale_true[b]
            self.time_scale_true[b] = e_new
            if e_new == e_old:
                continue
            d = (e_old - e_new) / self.time_scale[b]
            if d < 0 or e_old <= 0 or e_new <= 0:
                self.time_scale[b] = g["baseMin"]
                self.time_scale_max[b] = g["baseMax"]
            else:
                self.time_scale[b] = g["tauFactor"] * e_old / d
                if self.time_scale[b] >= self.time_scale_max[b]:
                    self.time_scale[b] = self.time_scale_max[b]
                    self.time_scale_max[b] *= 1 + g["growthFactor"]
            self.knee(b)
        self.t = t

    def knee(self, b):
        """Hook on batch element b after it adapted; nothing here (KneeTimeScaleProbe bends
        timeScaleMax)."""

    def write_checkpoint(self, ck):
        """Also timeScale, timeScaleTrue and timeScaleMax per batch element
        (OpenPV's timescaleinfo)."""
        super().write_checkpoint(ck)
        state = np.stack([self.time_scale, self.time_scale_true, self.time_scale_max], axis=1)
        glob = ck.batch_values(self.key + "/timescaleinfo", state,
                               "per batch element: timeScale, timeScaleTrue, timeScaleMax (facts §5.4)")
        if glob is not None:
            t = f"{self.run.t:g}"
            ck.entry(self.name, "timescaleinfo", glob, "<f8", text="".join(
                f"batch index = {b}\ntime = {t}\ntimeScale = {v[0]:g}\ntimeScaleTrue = {v[1]:g}\n"
                f"timeScaleMax = {v[2]:g}\n" for b, v in enumerate(glob)))

    def read_checkpoint(self, rd, fresh_outputs=False):
        """Restore the time scales of this rank's batch elements."""
        kb0, nb = self.run.batch_slice
        state = rd.batch_values(self.key + "/timescaleinfo", kb0, nb)
        self.time_scale[...], self.time_scale_true[...], self.time_scale_max[...] = state.T

    def trigger_fires(self, t):
        """Whether the trigger layer updates at t + triggerOffset; then every time
        scale restarts from baseMin and baseMax. Without a trigger layer OpenPV's trigger
        reports an update at every step, so the time scale never adapts (a deliberate match,
        docs/openpv-migration.md)."""
        return self.trigger is None or self.trigger.due(t + self.group["triggerOffset"])

    def time_scales(self):
        """Δ_b per local batch element, used by HyPerLCALayer's exp_tau in place of dt."""
        return self.time_scale

    def output(self, t):
        """Write timeScale, timeScaleTrue and timeScaleMax of each batch element
        (named fields if writeTimeScaleFieldnames)."""
        if self.files is None:
            return
        kb0 = self.run.batch_slice[0]
        named = self.group["writeTimeScaleFieldnames"]
        for b in range(len(self.time_scale)):
            ts, tt, tm = self.time_scale[b], self.time_scale_true[b], self.time_scale_max[b]
            if named:
                text = (f"sim_time = {t:f}\n\tbatch = {kb0 + b}, timeScale = {ts:10.8f}, "
                        f"timeScaleTrue = {tt:10.8f}, timeScaleMax = {tm:10.8f}\n")
            else:
                text = f"{t:f}, {kb0 + b}, {ts:10.8f}, {tt:10.8f}, {tm:10.8f}\n"
            self.files.write(b, text)


class KneeTimeScaleProbe(AdaptiveTimeScaleProbe):
    """Past kneeThresh the maximum grows kneeSlope times slower."""

    def adapt(self, t):
        self.old_max = self.time_scale_max.copy()
        super().adapt(t)

    def knee(self, b):
        """Past kneeThresh, this step's growth of timeScaleMax is scaled by kneeSlope and
        timeScale capped at it."""
        g = self.group
        if self.time_scale_max[b] > g["kneeThresh"]:
            old = self.old_max[b]
            self.time_scale_max[b] = old + (self.time_scale_max[b] - old) * g["kneeSlope"]
            self.time_scale[b] = min(self.time_scale[b], self.time_scale_max[b])


COLUMN_PROBE_CLASSES = {
    "ColumnEnergyProbe": ColumnEnergyProbe,
    "QuotientProbe": QuotientProbe,
    "AdaptiveTimeScaleProbe": AdaptiveTimeScaleProbe,
    "KneeTimeScaleProbe": KneeTimeScaleProbe,
}
