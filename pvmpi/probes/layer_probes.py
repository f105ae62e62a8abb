"""Layer probes: norms, cost functions and statistics per batch element (facts §5.2, §5.5).

Each rank sums over its restricted tile in float64; the sums of one batch
element are added over the spatial communicator, so a probe's value does not
depend on how the layer is tiled.
"""
import os
import warnings

import numpy as np

from ..errors import PvmpiError
from .output import BatchFiles, batch_file_name


class Probe:
    """A probe: optional trigger, optional energy term, text output per batch element."""

    def __init__(self, group, run):
        self.group = group
        self.name = group.name
        self.run = run
        self.coefficient = group["coefficient"]
        self.trigger = None
        self.energy = None  # the ColumnEnergyProbe this probe is a term of
        self.askers = []  # QuotientProbes reading this probe's values each time they sample
        self.files = None
        self._cache = (None, None)
        self._waiting = None  # (step, Reduction) started by prefetch and not yet read

    def link(self, layers, probes):
        """Resolve triggerLayerName to that layer's update controller, and energyProbe."""
        trig = self.group["triggerLayerName"]
        if trig is not None:
            self.trigger = layers[trig].controller
        energy = self.group["energyProbe"]
        self.energy = probes[energy] if energy is not None else None

    def open_output(self, resume=None):
        """With textOutputFlag: one output file per local batch element, or the log (facts §5.1).

        When continuing a checkpoint the files are cut back to their checkpointed positions.
        """
        if self.group["textOutputFlag"]:
            positions = None
            if resume is not None and self.group["probeOutputFile"] is not None:
                kb0, nb = self.run.batch_slice
                name = os.path.basename(batch_file_name(self.group["probeOutputFile"], "{g}"))
                positions = resume.file_positions(self.key, name, kb0, nb)
            self.files = BatchFiles(self.run, self.group["probeOutputFile"], self.name, positions)

    @property
    def key(self):
        return "probes/" + self.name

    def write_checkpoint(self, ck):
        """Where each batch element's output file stands (flushed first)."""
        if self.files is not None and self.group["probeOutputFile"] is not None:
            pos = self.files.positions()
            glob = ck.batch_values(self.key + "/file_positions",
                                   pos if pos is not None else np.zeros(self.run.batch_slice[1], np.int64),
                                   "bytes written to each batch element's output file")
            for g, p in enumerate(glob if glob is not None else ()):
                name = os.path.basename(batch_file_name(self.group["probeOutputFile"], g))
                ck.file_position(name, int(p))

    def read_checkpoint(self, rd, fresh_outputs=False):
        """Nothing here: the file positions reach :meth:`open_output` through `resume`."""

    def triggered(self, t):
        """Sample at t? Always without a trigger; else when the trigger layer would update at t + triggerOffset."""
        return self.trigger is None or self.trigger.due(t + self.group["triggerOffset"])

    def values(self, key=None):
        """Per-local-batch-element values of the state after step `key` (default: now).

        Computed once per step: probes sampled in a layer's phase and the
        energy probe summing them at the end of the step share the numbers
        (the :class:`Reduction` :meth:`prefetch` started for the step is waited for here).
        """
        key = self.run.step if key is None else key
        if self._waiting is not None and self._waiting[0] == key:
            self._cache = (key, self._waiting[1].result())
            self._waiting = None
        when, vals = self._cache
        if when != key:
            vals = self.compute(key) if self.needs_key else self.compute()
            self._cache = (key, vals)
        return vals

    needs_key = False

    def latest(self):
        """The values computed last, as OpenPV's ``getValues()`` without a time gives them.

        An AdaptiveTimeScaleProbe reads its target this way at the start of a
        step: layer probes were last sampled in the previous step (or at
        t = 0), column probes at the end of the previous step, and never before
        step 1, so then their values are 0. A run continued from a checkpoint
        recomputes them from the restored state, as OpenPV does on reading one.
        """
        if self._waiting is not None:
            return self.values(self._waiting[0])
        key, vals = self._cache
        if key is not None:
            return vals
        if self.run.step > 1:
            return self.values(self.run.step - 1)
        return np.zeros(self.run.batch_slice[1])

    def invalidate(self):
        """Forget the cached values, so that the next :meth:`values` recomputes them."""
        self._cache = (None, None)

    def compute(self):
        """Values per local batch element of the current state (given the step if `needs_key`); see values()."""
        raise NotImplementedError

    def sampled(self, t):
        """Whether the probe computes, and so writes, at t: when triggered, and — as in OpenPV,
        which keeps and prints every value asked of a probe — whenever its energy probe or a
        QuotientProbe reading it samples (after each step, so a triggered term still writes a line
        every step)."""
        if self.triggered(t):
            return True
        askers = ([self.energy] if self.energy is not None else []) + self.askers
        return self.run.step > 0 and any(a.triggered(t) for a in askers)

    def output(self, t):
        """Sample when :meth:`sampled` and write one line per local batch element b (see :meth:`line`)."""
        if self.sampled(t):
            self.write(t, self.run.step)

    #: whether :class:`~pvmpi.probes.lagged.LaggedProbes` may write this probe's lines a step late
    lags = True

    def begin(self, t):
        """Whether the probe samples at t (the current step); if so, :meth:`prefetch`."""
        if not self.sampled(t):
            return False
        self.prefetch()
        return True

    def prefetch(self):
        """Start the values of the current step, for :meth:`values` to read later (here: compute them)."""
        self.values()

    def write(self, t, step):
        """The lines of the values at ``step`` (time t), one per local batch element b."""
        vals = self.values(step)  # sampled even without text output: a time-scale probe may read it
        if self.files is None or not self.files.writes:
            return
        self.files.write_lines([self.line(t, b, v) for b, v in enumerate(np.asarray(vals).tolist())])

    def line(self, t, b, value):
        """The text written for local batch element b at time t."""
        raise NotImplementedError

    def flush(self):
        """Flush the output files, so the positions a checkpoint records are on disk."""
        if self.files is not None:
            self.files.flush()

    def close(self):
        """Close the output files."""
        if self.files is not None:
            self.files.close()


class LayerProbe(Probe):
    """A probe of one target layer's restricted activity (facts §5.2).

    Sampled when the target's phase writes its output. ``maskLayerName`` is
    read and not applied, as in OpenPV (docs/openpv-migration.md).
    """

    phase_probe = True  # sampled when the target layer's phase outputs

    def link(self, layers, probes):
        """Resolve targetLayer; warn that a maskLayerName changes nothing."""
        super().link(layers, probes)
        self.target = layers[self.group["targetLayer"]]
        if self.group["maskLayerName"] is not None:
            warnings.warn(f"{self.name}: maskLayerName is read and not applied, as in OpenPV: the probe "
                          f"measures the whole of '{self.target.name}' (a MaskLayer as the target masks it)",
                          stacklevel=2)

    @property
    def num_neurons(self):
        t = self.target.tile
        return t.nx_global * t.ny_global * self.target.nf

    nnz_threshold = 0.0

    def buffer(self):
        """The probed buffer and its margins: the data-store slot of the target OpenPV's norm probes hold.

        That slot was level 0 when the run began; with delays it is level (publishes since then)
        mod levels, so between its turns the probe sees an older state (docs/openpv-migration.md).
        """
        layer = self.target
        return layer.level(layer.rotations % layer.num_levels), layer.margin_x, layer.margin_y

    def local_stats(self):
        """[Σa, Σ|a|, Σa², #|a|>nnzThreshold, min, max] of this rank's tile, per batch element."""
        X, lt, up = self.buffer()
        t = self.target.tile
        if X is self.target.A:  # shared with the layer's other probes and the guard
            return self.target.activity_stats(self.nnz_threshold)
        return self.run.kernels.layer_stats(X, lt, up, t.ny, t.nx, self.nnz_threshold)

    def partials(self):
        """This tile's part of the values: sums added over the spatial ranks ([nb, k] float64) and
        maxima taken over them ([nb, m] float64, or None); here [Σa, Σ|a|, Σa², nnz] and None."""
        return self.local_stats()[:, :4], None

    def compute(self):
        """Reduce :meth:`partials` over the spatial ranks; :meth:`finish` makes the values."""
        if self.run.comms.one_tile:  # the partials are the sums (the step's most common case)
            return self.finish(*self.partials())
        return self._reduction().result()

    def _reduction(self):
        """Start the reduction of :meth:`partials` over the spatial ranks (none when the batch slice
        is one tile: its partials are the sums)."""
        comms = self.run.comms
        sums, maxs = self.partials()
        if comms.one_tile:
            return Reduction((), (sums, maxs), self.finish)
        sums = np.ascontiguousarray(sums)
        maxs = None if maxs is None else np.ascontiguousarray(maxs)
        outs = [np.empty_like(sums), None if maxs is None else np.empty_like(maxs)]
        pending = [comms.ispatial_sum(sums, outs[0])]
        if maxs is not None:
            pending.append(comms.ispatial_max(maxs, outs[1]))
        return Reduction(pending, outs, self.finish)

    def prefetch(self):
        """Start the reduction of :meth:`partials` over the spatial ranks (:meth:`values` waits for it)."""
        step = self.run.step
        if self._waiting is not None:
            if self._waiting[0] == step:
                return
            self.values(self._waiting[0])  # an older step's, never left unread
        if self._cache[0] != step:
            self._waiting = (step, self._reduction())

    def finish(self, sums, maxs):
        """The value per batch element from the global sums ([nb, 4]: Σa, Σ|a|, Σa², nnz)."""
        raise NotImplementedError

    def line(self, t, b, value):
        """OpenPV's norm-probe line; the message is not printed (only StatsProbe prints it)."""
        forms = self._line_forms
        if forms is None or len(forms) <= b:  # the constant parts, formatted once
            kb0, n = self.target.tile.kb0, self.num_neurons
            forms = self._line_forms = [f"{{:6.3f}}, {kb0 + i}, {n:8d}, {{:f}}\n" for i in range(b + 1)]
        return forms[b].format(t, value)

    _line_forms = None


class L2NormProbe(LayerProbe):
    """(Σa²)^(exponent/2) per batch element: the Euclidean norm with the default exponent 1."""

    def finish(self, sums, maxs):
        """Raise Σa² to the power exponent/2."""
        return sums[:, 2] ** (self.group["exponent"] / 2.0)


class L1NormProbe(LayerProbe):
    """Σ|a| per batch element."""

    def finish(self, sums, maxs):
        """Pick Σ|a|."""
        return sums[:, 1]


class L0NormProbe(LayerProbe):
    """Number of activities with |a| > nnzThreshold, per batch element."""

    @property
    def nnz_threshold(self):
        return self.group["nnzThreshold"]

    def finish(self, sums, maxs):
        """Pick the count above nnzThreshold."""
        return sums[:, 3]


def target_vthresh(probe):
    """The target layer's VThresh as OpenPV's LCA probes read it: a float32 widened to double."""
    return float(np.float32(probe.target.group["VThresh"]))


class L1NormLCAProbe(L1NormProbe):
    """L1 norm whose energy coefficient is the target's VThresh: the sparsity term of the LCA energy."""

    def link(self, layers, probes):
        """Set the coefficient to the target layer's VThresh."""
        super().link(layers, probes)
        self.coefficient = target_vthresh(self)


class L0NormLCAProbe(L0NormProbe):
    """L0 norm whose energy coefficient is VThresh²/2: the sparsity term of hard-threshold LCA.

    As in OpenPV it counts the activities above the target's VThresh (its own nnzThreshold
    is not read)."""

    def link(self, layers, probes):
        """Set the coefficient to VThresh²/2 of the target layer."""
        super().link(layers, probes)
        self.coefficient = target_vthresh(self) ** 2 / 2

    @property
    def nnz_threshold(self):
        return target_vthresh(self)


class FirmThresholdCostFnProbe(LayerProbe):
    """Σ c(a), the firm-threshold cost with its own VThresh and VWidth, per batch element (facts §5.2)."""

    def threshold_plus_width(self):
        """w = VThresh + VWidth: the probe's own parameters (0 unless given, as in OpenPV)."""
        return self.group["VThresh"] + self.group["VWidth"]

    def partials(self):
        """c(a) = |a|(1 − |a|/(2w)) where |a| < w = VThresh + VWidth, else w/2.

        Summed in float64 over this tile by the backend's kernel where the layer lives (then over
        the spatial ranks).
        """
        X, lt, up = self.buffer()
        t = self.target.tile
        sums = self.run.kernels.firm_threshold_cost(X, lt, up, t.ny, t.nx, self.threshold_plus_width())
        return sums, None

    def finish(self, sums, maxs):
        """The cost summed over the spatial ranks."""
        return sums


class FirmThresholdCostFnLCAProbe(FirmThresholdCostFnProbe):
    """Firm-threshold cost with the target's VThresh and VWidth, and the target's VThresh as its
    energy coefficient (its own VThresh and VWidth are not read, as in OpenPV)."""

    def link(self, layers, probes):
        """Set the coefficient to the target layer's VThresh."""
        super().link(layers, probes)
        self.coefficient = target_vthresh(self)

    def threshold_plus_width(self):
        """w from the target layer's VThresh and VWidth."""
        return self.target.group["VThresh"] + self.target.group["VWidth"]


class StatsProbe(LayerProbe):
    """N, Total, Min, Avg, Max, sigma, nnz of A or V (facts §5.5)."""

    @property
    def nnz_threshold(self):
        return self.group["nnzThreshold"]

    def buffer(self):
        """A (the latest published state, whatever the delays) or V, with its margins."""
        buf = self.group["buffer"].lower()
        layer = self.target
        if buf in ("activity", "a"):
            return layer.A, layer.margin_x, layer.margin_y
        if buf in ("membranepotential", "v"):
            if not layer.has_v:
                raise PvmpiError(f"layer '{layer.name}' has no membrane potential", group=self.name,
                                 param="buffer")
            return layer.V, 0, 0
        raise PvmpiError(f"'{self.group['buffer']}' is not Activity/A or MembranePotential/V",
                         group=self.name, param="buffer")

    def partials(self):
        """[Σa, Σ|a|, Σa², nnz] to add and [−min, max] to take the maximum of, per batch element."""
        local = self.local_stats()
        return local[:, :4], np.stack([-local[:, 4], local[:, 5]], axis=1)

    def finish(self, sums, maxs):
        """[Total, Min, Avg, Max, sigma, nnz] per batch element."""
        n = self.num_neurons
        avg = sums[:, 0] / n
        sigma = np.sqrt(np.maximum(sums[:, 2] / n - avg * avg, 0.0))
        return np.stack([sums[:, 0], -maxs[:, 0], avg, maxs[:, 1], sigma, sums[:, 3]], axis=1)

    def line(self, t, b, v):
        """OpenPV's stats line; the activity of a sparse layer is a spike rate: its average is
        printed per second (x 1000, dt in ms) and marked so."""
        g = self.target.tile.kb0 + b
        msg = f"{self.group['message']}:" if self.group["message"] else ""  # OpenPV: no message, no colon
        hertz = self.buffer()[0] is self.target.A and self.target.group["sparseLayer"]
        avg = f"{v[2] * 1000.0:f} Hz (/dt ms)" if hertz else f"{v[2]:f}"
        return (f"{msg}t=={t:6.1f} b=={g} N=={self.num_neurons} Total=={v[0]:f} Min=={v[1]:f} "
                f"Avg=={avg} Max=={v[3]:f} sigma=={v[4]:f} nnz=={int(v[5])}\n")


class RequireAllZeroActivityProbe(StatsProbe):
    """Records the first time the target's activity is not zero; fails the run (OpenPV's test probe)."""

    lags = False  # immediateExitOnFailure stops the run at the probe's own step

    def __init__(self, group, run):
        super().__init__(group, run)
        self.first_nonzero = None

    def output(self, t):
        vals = self.values()
        if self.first_nonzero is None and np.any(vals[:, 5] > 0):
            self.first_nonzero = t
            if self.group["immediateExitOnFailure"]:
                raise PvmpiError(f"RequireAllZeroActivityProbe: layer '{self.target.name}' has nonzero "
                                 f"activity at t = {t:g}", group=self.name)
        super().output(t)

    def write_checkpoint(self, ck):
        super().write_checkpoint(ck)
        ck.attrs(self.key, first_nonzero=-1.0 if self.first_nonzero is None else self.first_nonzero)

    def read_checkpoint(self, rd, fresh_outputs=False):
        """Restore when activity was first nonzero, so a continued run still fails."""
        v = rd.attr(self.key, "first_nonzero", -1.0)
        self.first_nonzero = None if v < 0 else v

    def failure(self):
        """The failure message if activity was ever nonzero, else None: as in OpenPV, the run then
        ends with a failure whatever exitOnFailure says (which only chooses an abort over it)."""
        if self.first_nonzero is not None:
            return (f"layer '{self.target.name}' had nonzero activity (first at t = {self.first_nonzero:g})")
        return None


class Reduction:
    """A probe's :meth:`~LayerProbe.partials` on their way over the spatial ranks; :meth:`result`
    waits for them and makes the values."""

    __slots__ = ("pending", "outs", "finish")

    def __init__(self, pending, outs, finish):
        self.pending, self.outs, self.finish = pending, outs, finish

    def result(self):
        """The probe's values, once every reduction has completed."""
        for p in self.pending:
            p.wait()
        return self.finish(*self.outs)


LAYER_PROBE_CLASSES = {
    "L2NormProbe": L2NormProbe,
    "L1NormProbe": L1NormProbe,
    "L0NormProbe": L0NormProbe,
    "L1NormLCAProbe": L1NormLCAProbe,
    "L0NormLCAProbe": L0NormLCAProbe,
    "FirmThresholdCostFnProbe": FirmThresholdCostFnProbe,
    "FirmThresholdCostFnLCAProbe": FirmThresholdCostFnLCAProbe,
    "StatsProbe": StatsProbe,
    "RequireAllZeroActivityProbe": RequireAllZeroActivityProbe,
}
