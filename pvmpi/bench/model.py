"""``python -m pvmpi bench model CONFIG``: predicted time per step and efficiency at 1 to 4096 ranks.

Why a model: this machine has 2 cores, so scaling beyond 2 ranks can only be
predicted. The model is deliberately simple — every term is one line — so
that a miss can be traced to the term that caused it:

* **compute**: every timer of a measured 1-rank run (``deliver:C``,
  ``learn:C``, ``update:L``, ``publish:L``, ``probes``...) gives a cost per
  unit of work on one core (ms x threads / work); the target network's work
  of the same object (flops from its geometry and activity, or neurons) times
  that cost, divided by ranks x threads. Splitting a batch or a tile divides
  the work exactly (layouts must divide every layer), so this term halves
  whenever the ranks double (a timer's fixed part, where measured, is in
  serial).
* **halo**: per layer with a margin, every step: an interior rank's
  messages (up to 8 neighbours) x latency + its edge strips
  (margin x tile side x nf x local batch x 4 bytes) / bandwidth.
* **all-reduce of dW** (every plastic connection, once per weight update,
  amortised per step): reduce-scatter + all-gather,
  ``2 log2(P) latency + 2 (P-1)/P bytes / bandwidth`` (the buffer is dW and
  its counts in float64). Counted as if it did not overlap with compute.
* **sync**: small all-reduces every step, latency only: one per probe over
  a batch slice's tiles (``2 log2(R C) latency`` each; non-blocking, read a
  step later, but counted as if they did not overlap); with
  ``--per-step-collective`` also a blocking one over all ranks (the guard as
  it was before its verdict was read a step later).
* **wait** (jitter): ranks that meet wait for the slowest of them. From the
  1-rank run's own step times (their deviations from the mean), the expected
  maximum over n ranks of a block of S steps, per step: n = P and S = 4 for
  the guard's reduction, one per block of 4 steps (an upper bound: a block's
  verdict is read a block later; S = 1 with
  ``--per-step-collective``), n = 1 + an interior tile's neighbours and
  S = 1 for the halo exchange, and n = R x C tiles and S = 2 when probes
  reduce over a batch slice (each step's sums are waited for a step
  later); the largest of them. Beyond the measured
  samples the maximum grows as a Gaussian's, sigma sqrt(2 ln n).
* **I/O**: the bytes the network writes per step (dense layers 4 bytes per
  value, sparse ones 8 per active value, weights) at the write rate measured
  here (or ``--io-bandwidth``), plus their gather to the writer; it does not
  shrink with the ranks (one shared file system).
* **serial**: what no split of the work shrinks, the same on every rank:
  the 1-rank run's time outside every timer (the Python loop) and each
  timer's fixed part. The fixed parts come from a second 1-rank run at half
  the batch: a timer's time against its work is a line, and its intercept
  is the Python around the kernel and the kernel's set-up, paid every step
  whatever the rank's share of the work. Without that run (nbatch 1, or
  ``--measured`` with one 1-rank run) every timed cost is taken to shrink.

Efficiency is the 1-core time over (ranks x threads x time per step), so it
never exceeds 1.
"""
import argparse
import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import PvmpiError
from ..simulation import load
from . import machine

LATENCY_US = 1.5       # InfiniBand-like defaults for a cluster
BANDWIDTH_GBS = 12.0
SHARED_MEMORY_LINK = (2.0, 14.0)  # MPI between processes of one node, typical: 2 us ping-pong, 14 GB/s
DEFAULT_ACTIVITY = 0.1   # active fraction of sparse layers when no measured run says otherwise
KINDS = ("batch", "spatial", "mixed")
TERMS = ("compute", "halo", "allreduce", "sync", "wait", "io", "serial")
#: layouts --validate measures (1 thread per rank) where this machine has a core per rank: a second
#: 1-rank run (the calibration's own noise), then 2 and 4 ranks split by batch and by rows
VALIDATION_LAYOUTS = ((1, 1, 1), (2, 1, 1), (1, 2, 1), (4, 1, 1), (2, 2, 1))
LOCAL_GROUPS = ("deliver", "update", "learn", "publish")  # the bench's phase groups that are pure local work


# ------------------------------------------------------------------ the network's work
@dataclass
class Network:
    """What the model needs of one network: work per timed object, halos, dW, outputs."""

    nbatch: int
    shape: object                               # pvmpi.model.shape.NetworkShape: sizes, margins (layout rules)
    work: dict = field(default_factory=dict)    # timer name -> work units per step (flops or neurons)
    neurons: int = 0                            # all layers' neurons: the work of any other timer
    io_bytes: dict = field(default_factory=dict)  # timer name -> bytes written per step
    dw: list = field(default_factory=list)      # (bytes reduced per update, steps between updates)
    probes: int = 0                             # probes that reduce over the tiles every step
    sparse_work1: dict = field(default_factory=dict)  # sparse timer -> (pre layer, its work at activity 1)


def _period(model, g):
    """Steps between weight updates of a plastic connection (its trigger's display period, or its own)."""
    dt = model.column["dt"]
    trigger = g.params.get("triggerLayerName")
    if trigger:
        t = model.group(trigger)
        return max(1.0, t.params.get("displayPeriod", dt) / dt)
    return max(1.0, (g.params.get("weightUpdatePeriod") or dt) / dt)


def network(model, activity=None):
    """The work of every object of ``model``; sparse layers at ``activity`` ({layer: fraction})."""
    from ..model.shape import conn_maps, network_shape

    shape = network_shape(model)
    nb = model.column["nbatch"]
    dt = model.column["dt"]
    sizes = {g.name: model.layer_size(g) for g in model.layers}
    neurons = {n: nb * x * y * f for n, (x, y, f) in sizes.items()}
    sparse = {g.name for g in model.layers if g.params.get("sparseLayer")}
    act = {n: (activity or {}).get(n, DEFAULT_ACTIVITY) for n in sparse}
    net = Network(nb, shape)
    for g in model.layers:
        for what in ("update", "publish", "halo"):
            net.work[f"{what}:{g.name}"] = neurons[g.name]
        every = g.params.get("writeStep") or -1
        if every > 0:
            per_value = 8 * act[g.name] if g.name in sparse else 4
            net.io_bytes["io:" + g.name] = neurons[g.name] * per_value * dt / every
    net.neurons = net.work["probes"] = sum(neurons.values())
    net.probes = sum(1 for p in model.probes if p.params.get("targetLayer"))
    conns = {g.name: g for g in model.connections}
    for g in model.connections:
        pre, post = g.params["preLayerName"], g.params["postLayerName"]
        pf, (qx, qy, qf) = sizes[pre][2], sizes[post]
        maps = conn_maps(model, g, conns)
        if maps is None:  # IdentConn and the like: one add per post neuron
            if (g.params.get("channelCode") or 0) >= 0:
                net.work["deliver:" + g.name] = neurons[post]
            continue
        xm, ym = maps
        dense = 2 * nb * qx * qy * xm.patch_post * ym.patch_post * pf * qf
        scatter1 = 2 * neurons[pre] * xm.patch * ym.patch * qf  # sparse, every pre neuron active
        is_sparse = pre in sparse
        weights = xm.n_kernels * ym.n_kernels * pf * xm.patch * ym.patch * qf * (g.params.get("numAxonalArbors") or 1)
        every = g.params.get("writeStep") or -1
        if every > 0 and not (g.is_a("TransposeConn") or g.is_a("CloneConn")):
            net.io_bytes["io:" + g.name] = 4.0 * weights * dt / every
        if (g.params.get("channelCode") or 0) >= 0:
            if is_sparse and not g.params.get("updateGSynFromPostPerspective"):
                net.work["deliver:" + g.name] = act[pre] * scatter1
                net.sparse_work1["deliver:" + g.name] = (pre, scatter1)
            else:
                net.work["deliver:" + g.name] = dense
        if g.params.get("plasticityFlag"):
            period = _period(model, g)
            net.work["learn:" + g.name] = (act[pre] * scatter1 if is_sparse else dense) / period
            if is_sparse:
                net.sparse_work1["learn:" + g.name] = (pre, scatter1 / period)
            net.dw.append((16.0 * weights, period))  # dW and counts, float64 (plasticity.local_buf)
    return net


# ------------------------------------------------------------------ machine figures from a measured run
@dataclass
class Calibration:
    """Per-core cost of each timed object, from one measured 1-rank run."""

    unit_ms: dict       # timer name -> ms per work unit on one core
    io_ms_per_byte: float
    serial_ms: float
    activity: dict      # sparse layer -> measured active fraction
    source: str
    threads: int
    measured_ms: float
    deviations_ms: list = field(default_factory=list)  # the run's own step times less their mean, in order
    fixed_ms: dict = field(default_factory=dict)  # timer name -> ms per step that no split of the work shrinks


def measured_activity(res, net1):
    """Active fraction of each sparse layer: the flops its scatters did over those at activity 1."""
    out = {}
    for name, (layer, work1) in net1.sparse_work1.items():
        gf, ms = res.get("gflops_by_phase", {}).get(name), res["phases"].get(name)
        if gf and ms and work1 > 0 and layer not in out:
            out[layer] = gf * ms * 1e6 / work1  # GFLOP/s x ms = 1e6 flop
    return out


def calibrate(res, model, smaller=None):
    """Costs per unit of work from a bench --json result ``res`` of ``model`` on one rank.

    ``smaller``: (result, model) of a 1-rank run of the same network at a smaller nbatch; each
    timer's time is then split into a part per unit of work and a fixed part per step (see serial).
    """
    if res["ranks"] != 1:
        raise PvmpiError(f"the calibration run has {res['ranks']} ranks; the model needs a 1-rank run",
                         hint="python -m pvmpi bench CONFIG --json -t 1")
    if res["nbatch"] != model.column["nbatch"]:
        raise PvmpiError(f"the measured run has nbatch {res['nbatch']}, the measured config {model.column['nbatch']}",
                         hint="give the overrides of the measured run with --measure-set")
    act = measured_activity(res, network(model, activity={n: 1.0 for n in (g.name for g in model.layers)}))
    net = network(model, activity=act)
    t = res["threads"]
    # Timers are means over every step (outliers included); the wall-clock median of the repeats is the
    # steadier figure: scale every phase so that they add up to it.
    scale = res["ms_per_step_wall"] / res["ms_per_step_mean"]
    unit, io_ms, io_bytes = {}, 0.0, 0.0
    for name, ms in res["phases"].items():
        if name.startswith("io:"):
            io_ms += ms * scale
            io_bytes += net.io_bytes.get(name, 0.0)
        elif not name.startswith("allreduce:") and net.work.get(name, net.neurons):
            unit[name] = ms * scale * t / net.work.get(name, net.neurons)  # other timers: per-neuron passes
    serial = max(0.0, res["ms_per_step_mean"] - sum(res["phases"].values())) * scale
    own = res.get("own_ms_per_step") or []
    mean = sum(own) / len(own) if own else 0.0
    source = f"{res.get('config')} on 1 rank x {t} thread(s), nbatch {res['nbatch']}"
    fixed = {}
    if smaller is not None:
        fixed = _fixed_parts(unit, net, t, *smaller)
        source += f" (fixed parts from nbatch {smaller[0]['nbatch']})"
    return Calibration(unit, io_ms / io_bytes if io_bytes else 0.0, serial, act, source, t,
                       res["ms_per_step_wall"], [x - mean for x in own], fixed)


def _fixed_parts(unit, net, threads, res, model):
    """Split each timer of ``unit`` (ms x threads per work unit of ``net``) into a fixed part per step
    and a smaller cost per unit, from ``res``, a 1-rank run of ``model`` at a smaller nbatch: the
    line through the two runs' (work, ms). ``unit`` is updated; returns {timer: fixed ms per step}."""
    if res["ranks"] != 1 or res["threads"] != threads:
        raise PvmpiError(f"the run for the fixed costs has {res['ranks']} rank(s) x {res['threads']} thread(s), "
                         f"the calibration 1 x {threads}")
    act = measured_activity(res, network(model, activity={g.name: 1.0 for g in model.layers}))
    small = network(model, activity=act)
    scale = res["ms_per_step_wall"] / res["ms_per_step_mean"]
    fixed = {}
    for name, u in unit.items():
        w1, w2 = net.work.get(name, net.neurons), small.work.get(name, small.neurons)
        ms2 = res["phases"].get(name)
        if ms2 is None or not w1 > w2 > 0:
            continue
        ms1 = u * w1 / threads
        per_unit = max(0.0, (ms1 - ms2 * scale) / (w1 - w2))
        fixed[name] = min(ms1, max(0.0, ms1 - per_unit * w1))
        unit[name] = (ms1 - fixed[name]) * threads / w1
    return fixed


# ------------------------------------------------------------------ prediction
@dataclass(frozen=True)
class Net:
    """The interconnect a prediction assumes: latency per message, bandwidth per rank, and the write rate
    of the outputs (None: the rate measured here)."""

    latency_s: float
    bandwidth: float        # bytes/s
    io_bandwidth: float = None  # bytes/s; None: the measured write rate


def halo_ms(net, b, r, c, link):
    """One step's halo exchanges of an interior rank (every layer with a margin)."""
    if r * c == 1:
        return 0.0
    ny_, nx_ = min(r - 1, 2), min(c - 1, 2)  # neighbours along each axis (interior rank)
    nb = net.nbatch // b
    total = 0.0
    for lay in net.shape.layers:
        mx, my = lay.margin_x, lay.margin_y
        if not (mx or my):
            continue
        ty, tx = lay.ny // r, lay.nx // c
        values = nb * lay.nf * (nx_ * mx * ty + ny_ * my * tx + nx_ * ny_ * mx * my)
        msgs = (nx_ if mx else 0) + (ny_ if my else 0) + (nx_ * ny_ if mx and my else 0)
        total += msgs * link.latency_s + 4 * values / link.bandwidth
    return 1e3 * total


def allreduce_ms(net, p, link):
    """dW all-reduce (reduce-scatter + all-gather) over all P ranks, per step (amortised over updates)."""
    if p == 1:
        return 0.0
    return 1e3 * sum((2 * math.log2(p) * link.latency_s + 2 * (p - 1) / p * nbytes / link.bandwidth) / period
                     for nbytes, period in net.dw)


def expected_max_ms(deviations, n, every=1):
    """E[max over n ranks] of a block of ``every`` steps' summed deviations, per step (ms).

    Blocks are consecutive runs of the measured deviations; for n up to their number the
    order statistics of that sample give the expectation exactly, beyond it a Gaussian tail
    (sigma sqrt(2 ln n)) extends it.
    """
    blocks = sorted(sum(deviations[i:i + every]) for i in range(0, len(deviations) - every + 1, every))
    m = len(blocks)
    if n <= 1 or m < 2:
        return 0.0
    mean = sum(blocks) / m
    k = min(n, m)
    top = sum(x * ((i / m) ** k - ((i - 1) / m) ** k) for i, x in enumerate(blocks, start=1)) - mean
    if n > m:
        sigma = math.sqrt(sum((x - mean) ** 2 for x in blocks) / (m - 1))
        top += sigma * (math.sqrt(2 * math.log(n)) - math.sqrt(2 * math.log(m)))
    return max(0.0, top) / every


def neighbours(r, c):
    """Tiles an interior tile exchanges halos with (up to 8)."""
    return (min(r, 3) * min(c, 3)) - 1


def wait_ms(cal, layout, per_step_collective=False, probes=0):
    """Expected wait per step for the slowest rank: at the global reduction, and where the tiles of
    a batch slice meet: the halo exchange's neighbours every step, and all R x C tiles when
    ``probes`` (their per-batch-element sums, each step's waited for LAG_STEPS later)."""
    from ..network.guard import SLACK_STEPS
    from ..probes.lagged import LAG_STEPS

    b, r, c = layout
    devs = cal.deviations_ms
    every = 1 if per_step_collective else SLACK_STEPS  # a block's verdicts travel together
    waits = [expected_max_ms(devs, b * r * c, every)]
    if r * c > 1:
        waits.append(expected_max_ms(devs, 1 + neighbours(r, c), 1))
        if probes:
            waits.append(expected_max_ms(devs, r * c, 1 + LAG_STEPS))
    return max(waits)


def predict(net, cal, layout, link, threads=1, per_step_collective=False):
    """{term: ms per step} and the total for one layout (B, R, C) with ``threads`` per rank."""
    b, r, c = layout
    p = b * r * c
    compute = sum(u * net.work.get(n, net.neurons) for n, u in cal.unit_ms.items()) / (p * threads)
    io_bytes = sum(net.io_bytes.values())
    rate = cal.io_ms_per_byte if link.io_bandwidth is None else 1e3 / link.io_bandwidth
    gather = 1e3 * io_bytes * (p - 1) / p / link.bandwidth
    terms = {"compute": compute, "halo": halo_ms(net, b, r, c, link), "allreduce": allreduce_ms(net, p, link),
             "sync": 1e3 * 2 * (net.probes * math.ceil(math.log2(r * c))
                                + per_step_collective * math.ceil(math.log2(p))) * link.latency_s,
             "wait": wait_ms(cal, layout, per_step_collective, net.probes),
             "io": io_bytes * rate + gather, "serial": cal.serial_ms + sum(cal.fixed_ms.values())}
    return terms, sum(terms.values())


def kind_of(b, r, c):
    """Kind of a layout (B, R, C): 'batch' without tiles, 'spatial' without a batch split, else 'mixed'."""
    if r * c == 1:
        return "batch"
    return "spatial" if b == 1 else "mixed"


def possible_layouts(net, p):
    """Layouts of p ranks that OpenPV's rules allow for the network (divisible sizes, tiles >= margins)."""
    from ..parallel.decomposition import layouts
    from ..parallel.layout import layout_problems

    return [(L.batch_width, L.rows, L.columns) for L in layouts(p)
            if not layout_problems(net.shape, L.batch_width, L.rows, L.columns)]


def sweep(net, cal, link, ranks, threads=1, per_step_collective=False):
    """Per rank count and kind: the fastest possible layout, its terms, time and efficiency."""
    _, t1 = predict(net, cal, (1, 1, 1), link, 1)
    rows = []
    for p in ranks:
        best = {}
        for lay in possible_layouts(net, p):
            k = "batch" if p == 1 else kind_of(*lay)
            terms, total = predict(net, cal, lay, link, threads, per_step_collective)
            if k not in best or total < best[k]["ms_per_step"]:
                best[k] = {"ranks": p, "kind": k, "layout": list(lay), "terms": terms, "ms_per_step": total,
                           "efficiency": t1 / (p * threads * total)}
        rows += [best[k] for k in KINDS if k in best]
    return rows


def weak_sweep(nets, cal, link, threads=1, per_step_collective=False):
    """Weak scaling: ``nets`` maps P to the network of P ranks (nbatch = per-rank batch x P), each on a
    pure batch split; efficiency is the 1-rank time over P ranks' time (the work per rank is fixed)."""
    _, t1 = predict(nets[1], cal, (1, 1, 1), link, threads)
    rows = []
    for p, net in sorted(nets.items()):
        terms, total = predict(net, cal, (p, 1, 1), link, threads, per_step_collective)
        rows.append({"ranks": p, "kind": "batch", "layout": [p, 1, 1], "terms": terms, "ms_per_step": total,
                     "efficiency": t1 / total, "nbatch": net.nbatch})
    return rows


def where_scaling_stops(rows, ranks):
    """Per kind: the first rank count below 50 % efficiency and the term that dominates there."""
    out = {}
    for k in KINDS:
        mine = [r for r in rows if r["kind"] == k and r["ranks"] > 1]
        if not mine:
            out[k] = {"below_half_at": None, "note": "no layout of this kind fits"}
            continue
        low = next((r for r in mine if r["efficiency"] < 0.5), None)
        last = mine[-1]["ranks"]
        if low is None:
            note = f"efficiency >= 50 % up to {last} ranks"
            if last < max(ranks):
                note += f"; no {k} layout fits beyond {last}"
            out[k] = {"below_half_at": None, "last_possible": last, "note": note}
            continue
        comm = {t: v for t, v in low["terms"].items() if t != "compute"}
        top = max(comm, key=comm.get)
        out[k] = {"below_half_at": low["ranks"], "dominant": top, "last_possible": last,
                  "note": f"below 50 % at {low['ranks']} ranks ({'x'.join(map(str, low['layout']))}): "
                          f"{top} {low['terms'][top]:.3g} ms vs compute {low['terms']['compute']:.3g} ms per step"}
    return out


# ------------------------------------------------------------------ measured runs
def _runs_of(path):
    """Bench results in a file: one bench --json line/object, or scaling.json's runs (or a model's measured.json)."""
    text = Path(path).read_text()
    try:
        data = json.loads(text)
    except ValueError:
        lines = [ln for ln in text.splitlines() if ln.strip().startswith("{")]
        if not lines:
            raise PvmpiError(f"{path}: no bench JSON in it", param="--measured") from None
        data = json.loads(lines[-1])
    runs = data.get("runs", [data]) if isinstance(data, dict) else data
    return [r for r in runs if r.get("status", "ok") == "ok" and "phases" in r]


def run_benches(config, layouts, sets, args):
    """Measure the bench (-t 1 per rank) at each layout through the scaling driver's mpiexec runs."""
    from . import scaling

    argv = [config, "--steps", str(args.steps), "--warmup", str(args.warmup), "--repeat", str(args.repeat)]
    for s in sets:
        argv += ["--set", s]
    if args.mpiexec:
        argv += ["--mpiexec", args.mpiexec]
    sargs = scaling.build_parser().parse_args(argv)
    model = load(config, sets)
    runs = []
    for b, r, c in layouts:
        from ..model.shape import network_shape
        from ..parallel.layout import layout_problems

        if layout_problems(network_shape(model), b, r, c):
            continue
        res = scaling.run_one(sargs, config, args.workdir, (b, r, c, 1), model.column["nbatch"], None)
        if res["status"] != "ok":
            raise PvmpiError(f"the bench at layout {b},{r},{c} {res['status']}")
        runs.append(res)
    return runs


def validation_layouts(cores):
    """The VALIDATION_LAYOUTS that give each rank a core of its own on a machine of ``cores``."""
    return [lay for lay in VALIDATION_LAYOUTS if lay[0] * lay[1] * lay[2] <= cores]


def validate(runs, model, cal, local_link=SHARED_MEMORY_LINK):
    """Model vs measured for every run but the calibration's, with the figures of the link between
    the measured processes (``(latency us, GB/s)``: one node's shared memory unless --local-link)."""
    net = network(model, activity=cal.activity)
    link = Net(local_link[0] * 1e-6, local_link[1] * 1e9)
    out = []
    for res in runs:
        lay = res["layout"]
        layout = (lay["batchwidth"], lay["rows"], lay["columns"])
        terms, total = predict(net, cal, layout, link, res["threads"])
        measured = res["ms_per_step_wall"]
        out.append({"layout": list(layout), "threads": res["threads"], "predicted_ms": total,
                    "measured_ms": measured, "miss_pct": 100 * (total - measured) / measured, "terms": terms,
                    "measured_groups": res.get("phase_groups", {})})
    return out


# ------------------------------------------------------------------ command line
def build_parser():
    """The options of ``pvmpi bench model``."""
    p = argparse.ArgumentParser(
        prog="python -m pvmpi bench model",
        description="Predict time per step and efficiency of CONFIG at 1..4096 ranks for batch, spatial and "
                    "mixed layouts, from per-core costs measured here (a 1-rank bench) and a network's "
                    "latency and bandwidth; print where each layout stops scaling.")
    p.add_argument("config", help="YAML config (or .params)")
    p.add_argument("--set", action="append", default=[], metavar="GROUP.PARAM=VALUE",
                   help="overrides of the network to predict, e.g. --set column.nbatch=1024")
    p.add_argument("--measure-set", action="append", default=[], metavar="GROUP.PARAM=VALUE",
                   help="overrides of the network that is measured (default: CONFIG as it is)")
    p.add_argument("--measured", metavar="FILE",
                   help="measured runs instead of running the bench: a 'bench --json' output, scaling.json of "
                        "'bench scaling', or measured.json of an earlier 'bench model -o DIR'; its 1-rank run "
                        "calibrates (the fewest threads), its multi-rank runs are validated")
    p.add_argument("--validate", action="store_true",
                   help="also measure a second 1-rank run, B=2 and R=2, and B=4 and B=2 x R=2 where this machine "
                        "has 4 cores (1 thread per rank; oversubscribed ranks validate nothing), and print model "
                        "vs measured")
    p.add_argument("--ranks", type=int, metavar="N", help="predict only at N ranks")
    p.add_argument("--max-ranks", type=int, default=4096, help="largest power of two predicted (default 4096)")
    p.add_argument("-t", "--threads", type=int, default=1, help="threads (cores) per rank predicted (default 1)")
    p.add_argument("--latency", type=float, default=LATENCY_US,
                   help=f"network latency in microseconds (default {LATENCY_US}, InfiniBand-like)")
    p.add_argument("--bandwidth", type=float, default=BANDWIDTH_GBS,
                   help=f"network bandwidth per rank in GB/s (default {BANDWIDTH_GBS:g}, InfiniBand-like)")
    p.add_argument("--local-link", type=float, nargs=2, metavar=("US", "GB/S"), default=SHARED_MEMORY_LINK,
                   help="latency and bandwidth between the measured runs' processes, for the validation "
                        "(default %(default)s: MPI within one node)")
    p.add_argument("--io-bandwidth", type=float, metavar="GB/S",
                   help="write rate of the outputs in GB/s (default: the rate measured here)")
    p.add_argument("--no-io", action="store_true", help="predict without output files (as if every writeStep < 0)")
    p.add_argument("--activity", type=float,
                   help="active fraction of every sparse layer (default: measured, else "
                        f"{DEFAULT_ACTIVITY})")
    p.add_argument("--weak", type=int, metavar="NBATCH_PER_RANK",
                   help="weak scaling instead: nbatch = NBATCH_PER_RANK x ranks on a pure batch split "
                        "(what slurm/scaling-weak.sbatch measures)")
    p.add_argument("--per-step-collective", action="store_true",
                   help="predict with a blocking reduction over all ranks at every step (the guard before its "
                        "verdict was read a step later): every rank waits for the slowest at every step")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("-o", "--output", help="directory for model.json, measured.json and model.png")
    p.add_argument("--steps", type=int, default=40, help="timed steps per repeat of the bench runs (default 40)")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps first (default 10)")
    p.add_argument("--repeat", type=int, default=3, help="repeats (default 3)")
    p.add_argument("-w", "--workdir", help="working directory of the bench runs")
    p.add_argument("--mpiexec", metavar="PATH", help="the launcher of mpi4py's MPI (default: beside this Python)")
    return p


def main(argv):
    """Entry point of ``pvmpi bench model``: parse argv and predict; a PvmpiError becomes one error line."""
    from ..failure import guarded

    return guarded(build_parser(), _main, argv)


def _ranks(args):
    if args.ranks is not None:
        if args.ranks < 1:
            raise PvmpiError("--ranks must be at least 1")
        return [1, args.ranks] if args.ranks > 1 else [1]
    return [2 ** i for i in range(int(math.log2(max(1, args.max_ranks))) + 1)]


def _main(args):
    config = os.path.abspath(args.config)
    measured_model = load(config, args.measure_set)
    target = load(config, args.set)
    nbatch = measured_model.column["nbatch"]
    if args.measured:
        runs = _runs_of(args.measured)
    else:
        checked = validation_layouts(machine.cpu_count()) if args.validate else []
        print("pvmpi bench model: measuring per-core costs (bench on 1 rank x 1 thread"
              + (f", again at nbatch {nbatch // 2} for the fixed costs" if nbatch > 1 else "")
              + (", then " + ", ".join("x".join(map(str, lay)) for lay in checked) if checked else "") + ")",
              file=sys.stderr, flush=True)
        runs = run_benches(config, [(1, 1, 1)], args.measure_set, args)
        if nbatch > 1:
            runs += run_benches(config, [(1, 1, 1)], args.measure_set + [f"column.nbatch={nbatch // 2}"], args)
        runs += run_benches(config, checked, args.measure_set, args)
    ones = sorted((r for r in runs if r["ranks"] == 1 and r["nbatch"] == nbatch), key=lambda r: r["threads"])
    if not ones:
        ones = sorted((r for r in runs if r["ranks"] == 1), key=lambda r: r["threads"])
    if not ones:
        raise PvmpiError("no 1-rank run among the measured runs", param="--measured")
    smaller = [r for r in runs if r["ranks"] == 1 and r["threads"] == ones[0]["threads"]
               and r["nbatch"] < ones[0]["nbatch"]]
    if smaller:
        half = max(smaller, key=lambda r: r["nbatch"])
        smaller = (half, load(config, args.measure_set + [f"column.nbatch={half['nbatch']}"]))
    cal = calibrate(ones[0], measured_model, smaller or None)
    activity = {n: args.activity for n in cal.activity} if args.activity is not None else cal.activity
    net = network(target, activity=activity)
    if args.no_io:
        net.io_bytes.clear()
    link = Net(args.latency * 1e-6, args.bandwidth * 1e9,
               args.io_bandwidth * 1e9 if args.io_bandwidth else None)
    ranks = _ranks(args)
    if args.weak:
        nets = {p: network(load(config, args.set + [f"column.nbatch={args.weak * p}"]), activity=activity)
                for p in ranks}
        if args.no_io:
            for n in nets.values():
                n.io_bytes.clear()
        rows = weak_sweep(nets, cal, link, args.threads, args.per_step_collective)
    else:
        rows = sweep(net, cal, link, ranks, args.threads, args.per_step_collective)
    stops = where_scaling_stops(rows, ranks)
    checks = validate([r for r in runs if r is not ones[0] and r["nbatch"] == ones[0]["nbatch"]], measured_model,
                      cal, tuple(args.local_link))
    result = {"config": args.config, "set": args.set, "no_io": args.no_io, "measure_set": args.measure_set,
              "weak_nbatch_per_rank": args.weak,
              "per_step_collective": args.per_step_collective,
              "machine": {"latency_us": args.latency, "bandwidth_gbs": args.bandwidth,
                          "step_jitter_ms": _sigma(cal.deviations_ms),
                          "io_bandwidth_gbs": args.io_bandwidth, "threads_per_rank": args.threads,
                          "calibration": cal.source, "serial_ms": cal.serial_ms,
                          "fixed_ms": sum(cal.fixed_ms.values()),
                          "io_ms_per_mb": cal.io_ms_per_byte * 1e6},
              "network": {"nbatch": net.nbatch, "activity": activity,
                          "layers": {lay.name: [lay.ny, lay.nx, lay.nf, lay.margin_y, lay.margin_x]
                                     for lay in net.shape.layers},
                          "dw_bytes_per_update": sum(b for b, _ in net.dw),
                          "io_mb_per_step": sum(net.io_bytes.values()) / 1e6},
              "rows": rows, "stops": stops, "validation": checks, "local_link": list(args.local_link)}
    if args.output:
        out = Path(args.output)
        out.mkdir(parents=True, exist_ok=True)
        (out / "model.json").write_text(json.dumps(result, indent=1))
        (out / "measured.json").write_text(json.dumps({"runs": runs}, indent=1))
        from .plots import plot_model

        plot_model(rows, out / "model.png", title=" ".join([Path(config).name, *args.set] + ["--no-io"] * args.no_io))
    if args.json:
        print(json.dumps(result), flush=True)
    else:
        print(format_report(result), flush=True)
    return 0


def _sigma(deviations):
    """Standard deviation of the measured step times (ms)."""
    n = len(deviations)
    return math.sqrt(sum(x * x for x in deviations) / (n - 1)) if n > 1 else 0.0


def _lay(row):
    return "x".join(map(str, row["layout"]))


def format_report(res):
    """The prediction as text: the network and costs assumed, a row per rank count and layout,
    where each kind of layout stops scaling, and the check against measured runs."""
    from ..network.guard import SLACK_STEPS

    m, n = res["machine"], res["network"]
    weak = res.get("weak_nbatch_per_rank")
    lines = [" ".join(["pvmpi bench model", res["config"]] + [f"--set {s}" for s in res["set"]]
                      + ["--no-io"] * res["no_io"] + [f"--weak {weak}"] * bool(weak)
                      + ["--per-step-collective"] * bool(res.get("per_step_collective"))),
             (f"  network: nbatch {weak} x ranks (weak scaling)" if weak else f"  network: nbatch {n['nbatch']}")
             + "; layers (ny, nx, nf, margins): "
             + ", ".join(f"{k} {v[0]}x{v[1]}x{v[2]} m{max(v[3], v[4])}" for k, v in n["layers"].items()),
             "  activity of sparse layers: " + (", ".join(f"{k} {v:.3f}" for k, v in n["activity"].items()) or "-")
             + f"; dW {n['dw_bytes_per_update'] / 1e3:.1f} kB per update; outputs {n['io_mb_per_step']:.3g} MB per step",
             (f"  costs per core from: {m['calibration']}; serial {m['serial_ms'] + m.get('fixed_ms', 0.0):.3f} "
              f"ms/step (untimed {m['serial_ms']:.3f}, timers' fixed parts {m.get('fixed_ms', 0.0):.3f}); "
              f"writes {m['io_ms_per_mb']:.3g} ms/MB") + (f" (given: {m['io_bandwidth_gbs']:g} GB/s)"
                                                          if m["io_bandwidth_gbs"] else " (measured here)"),
             (f"  network: latency {m['latency_us']:g} us, bandwidth {m['bandwidth_gbs']:g} GB/s; "
              f"{m['threads_per_rank']} thread(s) per rank"),
             (f"  step jitter {m.get('step_jitter_ms', 0.0):.3g} ms (sigma of the 1-rank run's steps); ranks meet "
              + ("at a blocking reduction every step" if res.get("per_step_collective")
                 else f"at the guard's reduction, once per {SLACK_STEPS} steps, and at halos")),
             "",
             f"  {'ranks':>5} {'kind':<8} {'layout BxRxC':<13} {'ms/step':>10} {'effic.':>7}   "
             + " ".join(f"{t:>9}" for t in TERMS)]
    for r in res["rows"]:
        lines.append(f"  {r['ranks']:>5} {r['kind']:<8} {_lay(r):<13} {r['ms_per_step']:10.4g} "
                     f"{r['efficiency']:7.3f}   " + " ".join(f"{r['terms'][t]:9.3g}" for t in TERMS))
    lines += ["", "  where each kind of layout stops scaling (efficiency < 50 %):"]
    for k, s in res["stops"].items():
        lines.append(f"    {k:<8} {s['note']}")
    if res["validation"]:
        link = res.get("local_link", SHARED_MEMORY_LINK)
        lines += ["", ("  validation on this machine (MPI between its processes: latency "
                       f"{link[0]:g} us, {link[1]:g} GB/s; measured = wall-clock ms per step, median of repeats):"),
                  f"    {'layout':<8} {'thr':>3} {'model ms':>9} {'measured':>9} {'miss':>7}"]
        for v in res["validation"]:
            t, g = v["terms"], v["measured_groups"]
            lines.append(f"    {_lay(v):<8} {v['threads']:>3} {v['predicted_ms']:9.3f} {v['measured_ms']:9.3f} "
                         f"{v['miss_pct']:+6.1f}%   model/measured ms: local work {t['compute']:.2f}/"
                         f"{sum(g.get(k, 0.0) for k in LOCAL_GROUPS):.2f}, halo {t['halo']:.2f}/{g.get('halo', 0.0):.2f}, "
                         f"dW {t['allreduce']:.2f}/{g.get('allreduce', 0.0):.2f}, guard+probes+wait "
                         f"{t['sync'] + t['wait']:.2f}/{g.get('guard', 0.0) + g.get('wait', 0.0) + g.get('probes', 0.0):.2f}")
        worst = max(res["validation"], key=lambda v: abs(v["miss_pct"]))
        if abs(worst["miss_pct"]) > 50:
            lines.append(f"  warning: the model misses the measured {_lay(worst)} run by {worst['miss_pct']:+.0f} %: "
                         f"a measurement this far off is noise (a busy machine) or a cost the model leaves out; "
                         f"measure again before trusting the predictions above")
    return "\n".join(lines)
