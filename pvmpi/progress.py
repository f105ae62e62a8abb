"""Progress of a run: a live bar on a terminal, plain periodic lines otherwise.

:class:`Progress` is called by the column after every step, on every rank.
At the steps where it reports, every rank takes part in one small world
all-reduce (mean energy over the global batch, active fraction of the sparse
layer); only rank 0 prints. Whether a bar or lines are printed is decided
once by rank 0 and broadcast, so all ranks reduce at the same steps.

* On a terminal (rank 0's stream is a TTY, and tqdm is installed): a tqdm bar
  with step, simulated time, steps/s and ETA; the energy and active
  fraction beside it are refreshed about 100 times per run and at every
  ``progressInterval``.
* Otherwise (SLURM logs, pipes): exactly one line per ``progressInterval`` of
  simulated time, plus one at the end when ``stopTime`` is not a multiple
  of it, e.g.::

      time==400  step 400/2400 (17%)  98.1 steps/s  ETA 20 s  energy 231.376  active 3.12%
"""
import math
import sys
import time

import numpy as np

BAR, LINES = "bar", "lines"


def _format_duration(seconds):
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    m, s = divmod(seconds, 60)
    if m < 60:
        return f"{m}:{s:02d}"
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}"


class Progress:
    """Reports step, simulated time, steps/s, ETA, mean energy and active fraction.

    ``Progress(column)`` on every rank; then ``progress(column)`` after every
    step (the column does it when ``column.progress`` is set). ``mode``
    (``"bar"`` or ``"lines"``) and ``stream`` override the choice made from
    the column's ``writeProgressToErr`` and whether rank 0's stream is a
    terminal.
    """

    def __init__(self, column, mode=None, stream=None):
        col = column.model.column
        self.comms = column.comms
        self.is_root = self.comms.is_root
        self.stream = stream if stream is not None else (sys.stderr if col["writeProgressToErr"]
                                                         else sys.stdout)
        self.interval = col["progressInterval"]
        self.next = None  # set at the first step: a run continued from a checkpoint starts late
        self.dt = column.dt
        self.stop_time = column.stop_time
        self.final_step = column.final_step
        self.mode = self.comms.bcast(self._choose_mode(mode) if self.is_root else None)
        # the bar's numbers: ~100 refreshes per run (a collective, so a fixed step cadence)
        self.stats_every = max(1, math.ceil(self.final_step / 100))
        self.sparse_layer, self.l0_probe = _active_source(column)
        self.bar = None

    def _start(self, column):
        """At the first step (of this run, maybe continued): where the intervals and the rate start."""
        before = column.t - self.dt  # the time the run (re)started from
        self.next = (math.floor(before / self.interval + 1e-9) + 1) * self.interval
        self.t0 = time.perf_counter()
        self.step0 = column.step  # rates count the steps after this first one
        self.last_time, self.last_step = self.t0, self.step0
        if self.mode == BAR and self.is_root:
            from tqdm import tqdm

            self.bar = tqdm(total=self.final_step, initial=self.step0, unit="step",
                            file=self.stream, dynamic_ncols=True, mininterval=0.25)

    def _choose_mode(self, mode):
        if mode is not None:
            if mode not in (BAR, LINES):
                raise ValueError(f"progress mode must be {BAR!r} or {LINES!r}, got {mode!r}")
            return mode if mode == LINES or _have_tqdm() else LINES
        isatty = getattr(self.stream, "isatty", None)
        try:
            tty = bool(isatty and isatty())
        except ValueError:  # a closed stream
            tty = False
        return BAR if tty and _have_tqdm() else LINES

    # ------------------------------------------------------------ the per-step call
    def __call__(self, column):
        if self.next is None:
            self._start(column)
        final = column.t >= self.stop_time - self.dt / 2
        due = column.t >= self.next - self.dt / 2
        if due:
            while self.next <= column.t + self.dt / 2:
                self.next += self.interval
        if self.mode == LINES:
            if due or final:
                self._line(column, *self.reduce(column))
            return
        if due or final or column.step % self.stats_every == 0:
            energy, active = self.reduce(column)
            if self.bar is not None:
                self.bar.set_postfix_str(_postfix(column.t, energy, active), refresh=False)
        if self.bar is not None:
            self.bar.update(column.step - self.bar.n)
            if final:
                self.close()

    def close(self):
        """Close the bar, ending its terminal line (done at the last step); safe to call again."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    # ------------------------------------------------------------ numbers
    def reduce(self, column):
        """(mean energy over the global batch or None, active fraction or None). Collective."""
        energy_probe = column.energy_probes[0] if column.energy_probes else None
        spatial_root = self.comms.is_spatial_root
        buf = np.zeros(4)
        if energy_probe is not None:
            vals = energy_probe.values()
            if spatial_root:  # every rank of the slice holds the same, already reduced, values
                buf[0], buf[1] = float(np.sum(vals)), len(vals)
        if self.l0_probe is not None:
            vals = self.l0_probe.values()
            if spatial_root:
                buf[2], buf[3] = float(np.sum(vals)), len(vals) * self.l0_probe.num_neurons
        elif self.sparse_layer is not None:
            layer = self.sparse_layer
            t = layer.tile
            stats = column.kernels.layer_stats(layer.A, layer.margin_x, layer.margin_y,
                                               t.ny, t.nx, 0.0)
            buf[2], buf[3] = float(stats[:, 3].sum()), float(t.nb * t.ny * t.nx * layer.nf)
        if energy_probe is not None or self.sparse_layer is not None:
            buf = self.comms.allreduce_sum(buf)
        energy = buf[0] / buf[1] if buf[1] else None
        active = buf[2] / buf[3] if buf[3] else None
        return energy, active

    def _line(self, column, energy, active):
        if not self.is_root:
            return
        now = time.perf_counter()
        rate = (column.step - self.last_step) / max(now - self.last_time, 1e-9)
        overall = (column.step - self.step0) / max(now - self.t0, 1e-9)
        self.last_time, self.last_step = now, column.step
        left = (self.final_step - column.step) / overall if overall > 0 else math.inf
        pct = 100.0 * column.step / self.final_step if self.final_step else 100.0
        text = (f"   time=={column.t:g}  step {column.step}/{self.final_step} ({pct:.0f}%)  "
                f"{rate:.1f} steps/s  ETA {_format_duration(left)}")
        if energy is not None:
            text += f"  energy {energy:.6g}"
        if active is not None:
            text += f"  active {100 * active:.3g}%"
        print(text, file=self.stream, flush=True)


def _postfix(t, energy, active):
    parts = [f"t={t:g}"]
    if energy is not None:
        parts.append(f"energy={energy:.5g}")
    if active is not None:
        parts.append(f"active={100 * active:.3g}%")
    return " ".join(parts)


def _have_tqdm():
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return True


def _active_source(column):
    """(the sparse layer, the first L0NormProbe on it or None).

    The sparse layer is the first with ``sparseLayer`` set, else the first
    HyPerLCALayer, else the target of the first L0NormProbe; None if there is
    none.
    """
    from .probes.layer_probes import L0NormProbe

    l0 = [p for p in column.probes.values() if isinstance(p, L0NormProbe)]
    layers = list(column.layers.values())
    layer = next((la for la in layers if la.group["sparseLayer"]), None)
    if layer is None:
        layer = next((la for la in layers if la.group.is_a("HyPerLCALayer")), None)
    if layer is None and l0:
        layer = l0[0].target
    probe = next((p for p in l0 if layer is not None and p.target is layer), None)
    return layer, probe
