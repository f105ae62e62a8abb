"""``python -m pvmpi bench CONFIG``: time steps of a network built exactly as a run builds it.

The network comes from :func:`pvmpi.simulation.load` and :class:`pvmpi.simulation.Simulation`
(the same parse, decomposition, communicators and backend as ``python -m
pvmpi``), so what is timed is what a user runs. After W warm-up steps, N
steps are timed R times with ``perf_counter`` around ``Column.advance()``;
under MPI a step lasts until its slowest rank is done, so per-step times are
reduced with MAX over ranks. The column's exclusive phase timers give the
split; :mod:`pvmpi.bench.flops` gives the arithmetic and the compulsory
memory traffic; rank 0 prints. The peak they are compared with is the
machine's (a float32 GEMM measured once and cached) or, with ``--backend
cuda`` on a real GPU, the device's (from its attributes:
:func:`pvmpi.bench.machine.gpu_peak`).

Numba compiles (or loads from its cache) a kernel on its first call. The
Hebbian kernels are first called at the first weight update, which may fall
inside the timed steps, so the bench calls each plastic connection's dW
accumulation once before timing (it only fills scratch buffers that the next
update clears).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from .. import cli
from ..errors import PvmpiError
from ..failure import fail
from ..simulation import BACKENDS, load
from . import machine

WARM_STATE = "bench-warm-state"  # the checkpoint of the state after the warm-up, in the output directory
GROUP_ORDER = ("deliver", "update", "learn", "allreduce", "publish", "halo", "guard", "wait", "io", "probes")
GROUPS = GROUP_ORDER + ("other",)  # the phase groups as the JSON reports them
_GROUP_INDEX = {g: i for i, g in enumerate(GROUP_ORDER)}
GROUP_HELP = {"deliver": "deliver", "update": "update (layers)", "learn": "learn (dW, weights)",
              "allreduce": "allreduce (dW)", "publish": "publish (store, active list)",
              "halo": "halo exchange", "guard": "guard (NaN/Inf check)",
              "wait": "wait (for the slowest rank, at the guard's verdict)", "io": "io (output files)", "probes": "probes",
              "other": "other (untimed: Python loop)"}


def build_parser():
    """The argument parser of ``python -m pvmpi bench``."""
    p = argparse.ArgumentParser(
        prog="python -m pvmpi bench",
        description="Time steps of a network: ms per step, split by phase, GFLOP/s and GB/s against the "
                    "machine's (or the GPU's) peak, peak memory, start-up time. Under mpiexec every rank runs; rank 0 prints. "
                    "'python -m pvmpi bench scaling --help' sweeps MPI layouts.")
    p.add_argument("config", help="YAML config")
    p.add_argument("--steps", type=int, default=100, help="timed steps per repeat (default 100)")
    p.add_argument("--warmup", type=int, default=10,
                   help="untimed steps first (default 10; the first step always runs untimed)")
    p.add_argument("--repeat", type=int, default=3, help="repeats of the timed steps (default 3)")
    p.add_argument("--backend", choices=BACKENDS, default="numba", help="kernels to time (default numba)")
    p.add_argument("--compare", choices=BACKENDS, metavar="BACKEND",
                   help="also time this backend (e.g. numpy) in the same invocation and print the ratio")
    p.add_argument("--compare-steps", type=int,
                   help="timed steps of the --compare backend (default min(steps, 20))")
    p.add_argument("--json", action="store_true", help="print one JSON object (rank 0) instead of a report")
    p.add_argument("--set", action="append", default=[], metavar="GROUP.PARAM=VALUE",
                   help="override a parameter (repeatable), as for a run")
    p.add_argument("-batchwidth", "--batchwidth", type=int, dest="batchwidth", help="MPI BatchWidth")
    p.add_argument("-rows", "--rows", type=int, dest="rows", help="MPI NumRows")
    p.add_argument("-columns", "--columns", type=int, dest="columns", help="MPI NumColumns")
    p.add_argument("-t", "--threads", type=int,
                   help="threads per rank (default: cores on the node / ranks on the node)")
    p.add_argument("-w", "--workdir",
                   help="working directory for the config's relative paths (OpenPV's -w); for "
                        "lca_bench.yaml a copy of the shared bench folder is made in a temporary "
                        "directory when not given")
    p.add_argument("-o", "--output-path",
                   help="keep the network's outputs here (default: a temporary directory, removed)")
    p.add_argument("--overwrite", action="store_true",
                   help="let the network's outputs replace another run's files in -o DIR")
    p.add_argument("-s", "--seed", type=int, help="random seed (as for a run)")
    p.add_argument("--trace", metavar="CSV",
                   help="write every timed step of every rank (ms per phase group) to this CSV file")
    p.add_argument("--cold", action="store_true",
                   help="also measure start-up with an empty Numba cache (a subprocess; ~30 s)")
    p.add_argument("--peak-gflops", type=float,
                   help="the machine's peak GFLOP/s (default: float32 GEMM measured once and cached; with "
                        "--backend cuda on a GPU, the device's peak from its attributes)")
    p.add_argument("--remeasure-peak", action="store_true", help="measure the peak again, ignoring the cache")
    p.add_argument("--startup-only", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--debug", action="store_true", help="tracebacks instead of one-line errors")
    return p


def note(msg):
    """Progress notes go to stderr so that --json output stays one clean line."""
    print(f"pvmpi bench: {msg}", file=sys.stderr, flush=True)


def main(argv):
    """Run the bench on every rank; returns the exit status (rank 0 prints the report or JSON).

    Without -w the benchmark network runs in a temporary folder with pvmpi's input images;
    without -o the outputs go to a temporary directory; both are removed at the end.
    """
    t_entry = time.perf_counter()
    args = build_parser().parse_args(argv)
    for name in ("steps", "repeat"):
        if getattr(args, name) < 1:
            return fail(f"--{name} must be at least 1")
    if args.warmup < 0:
        return fail("--warmup must be at least 0")
    cli.set_threads(args.threads)
    from ..parallel.job import Job

    world = Job()
    rank = world.rank
    config = os.path.abspath(args.config)
    made = []  # temporary directories rank 0 removes at the end
    try:
        workdir = args.workdir
        if workdir is None and machine.needs_bench_inputs(config):
            if rank == 0:  # the config's input/imagelist.txt: made by pvmpi (-w DIR: OpenPV's folder)
                from ..data.bench_inputs import make_bench_inputs

                workdir = tempfile.mkdtemp(prefix="pvmpi-bench-")
                made.append(workdir)
                make_bench_inputs(workdir)
                if not args.startup_only:
                    note(f"working directory: {workdir} with pvmpi's input images (-w DIR to choose, "
                         f"e.g. a copy of OpenPV's benchmark folder)")
            workdir = world.bcast(workdir, root=0)
        if workdir is not None:
            if not os.path.isdir(workdir):
                raise PvmpiError(f"working directory {workdir} does not exist", param="-w")
            os.chdir(workdir)
        output = args.output_path
        if output is None:
            output = tempfile.mkdtemp(prefix="pvmpi-bench-out-") if rank == 0 else None
            if rank == 0:
                made.append(output)
            output = world.bcast(output, root=0)
        try:
            model = load(config, args.set)
        except PvmpiError as e:
            if args.debug and rank == 0:
                raise
            return fail(e) if rank == 0 else 1
        peak = None
        if not args.startup_only:
            t0 = time.perf_counter()
            peak = _peak(args) if rank == 0 else None
            world.idle_barrier()
            t_entry += time.perf_counter() - t0  # not part of the network's start-up
        return _bench(args, model, world, output, config, t_entry, peak)
    except PvmpiError as e:
        if args.debug:
            raise
        return fail(e) if rank == 0 else 1
    finally:
        world.idle_barrier()  # every rank is done with the directories before rank 0 removes them
        for d in made:
            shutil.rmtree(d, ignore_errors=True)


def _peak(args):
    """The machine's peak, measured before this process runs any kernel (rank 0; the others sleep).

    None on a real GPU (``--backend cuda`` outside the simulator): the device's peak replaces it.
    """
    if args.peak_gflops:
        return {"gflops": args.peak_gflops, "gflops_1thread": None, "how": "given by --peak-gflops"}
    if args.backend == "cuda" and not machine.cuda_simulated():
        return None
    try:
        return machine.peak_gflops(remeasure=args.remeasure_peak)
    except (subprocess.SubprocessError, OSError, ValueError) as e:
        note(f"could not measure the peak: {e}")
        return None


def _simulation(args, model, world, backend, output):
    """The network laid out over ``world`` with the bench's choices; a mistake ends every rank."""
    from ..simulation import Simulation

    try:
        return Simulation(model, world, backend=backend, output_path=output, seed=args.seed,
                          overwrite=args.overwrite, layout={"BatchWidth": args.batchwidth,
                                                            "NumRows": args.rows, "NumColumns": args.columns})
    except PvmpiError as e:  # raised alike on every rank
        if world.rank == 0:
            fail(e)
        raise SystemExit(1) from None


def prime(column):
    """Load (or compile) the learning kernels now rather than inside a timed step; changes no state."""
    for conn in column.plastic:
        upd = getattr(conn, "updater", None)
        if upd is not None and upd.pending is None:
            upd.accumulate()


def restart(column, path):
    """Put the network back in the state saved after the warm-up.

    Every repeat times the same steps from the same state, so the repeats are
    comparable, and the timed steps stay within the steps a config was made
    for: a learning network run far past its stopTime can diverge (the
    benchmark network's dictionary, learning at dWMax 1, makes V1 unstable
    after its fifth update, t = 500, on every backend).
    """
    from ..io.openpv_checkpoint import open_checkpoint

    reader = open_checkpoint(path, column.model.column["nbatch"])
    try:
        column.restore(reader)
    finally:
        reader.close()


def _guarded(world, rank, debug, fn, *a):
    """Run fn; a failure on one rank ends the whole job, as a run does."""
    try:
        return fn(*a)
    except Exception as e:  # noqa: BLE001
        msg = str(e) if isinstance(e, PvmpiError) else f"{type(e).__name__}: {e}"
        if debug:
            import traceback

            traceback.print_exc()
        fail(f"[rank {rank}] {msg}")
        world.abort(1)


def _device_sync(backend):
    """GPU kernels run asynchronously: a step is done when the device is idle."""
    if backend == "cuda":
        from numba import cuda

        return cuda.synchronize
    return lambda: None


def _launch_counter(backend):
    """(kernel launches, device allocations, waits for the device) so far in this process (a
    callable), where the backend counts them; else None."""
    if backend != "cuda":
        return None
    from ..kernels import get_backend

    cu = get_backend("cuda")
    return lambda: np.array([cu.launches(), cu.allocations(), cu.host_waits()], np.int64)


def _device_peak(backend):
    """This rank's GPU peak (:func:`machine.gpu_peak`) with the cuda backend on a real device, else None."""
    if backend != "cuda" or machine.cuda_simulated():
        return None
    from numba import cuda

    try:
        return machine.gpu_peak(cuda.get_current_device())
    except Exception as e:  # noqa: BLE001 -- the figures are a report's extra, never a failure
        note(f"could not read the device's attributes: {e}")
        return None


def device_peaks(per_rank):
    """The devices the ranks ran on, each counted once: rank 0's device with the peaks summed, or None."""
    seen, devs = set(), []
    for r in per_rank:
        d = r.get("gpu")
        if d is None:
            continue
        key = d.get("uuid") or id(d)
        if key not in seen:
            seen.add(key)
            devs.append(d)
    if not devs:
        return None
    out = dict(devs[0])
    out["count"] = len(devs)
    for k in ("gflops", "gbs"):
        vals = [d[k] for d in devs]
        out[k] = sum(vals) if all(v is not None for v in vals) else None
    if len(devs) > 1:
        for k in ("how", "how_gbs"):
            if out.get(k):
                out[k] = f"{len(devs)} devices, each {out[k]}"
    return out


def _group_totals(timers):
    out = np.zeros(len(GROUP_ORDER))
    for name, s in timers.totals.items():
        out[_GROUP_INDEX[name.split(":", 1)[0]]] += s
    return out


def _time_backend(args, model, world, backend, output, steps, repeat, warmup, t_entry=None, trace=False):
    """Build, initialise, warm up and time one backend; returns this rank's raw measurements.

    With ``trace`` it also keeps every step's time per phase group (outside the timed region).
    """

    from ..network.column import set_up_frozen
    from .flops import FlopCounter

    sim = _simulation(args, model, world, backend, output)
    column, comms = sim.column, sim.comms
    rank = comms.rank
    sync = _device_sync(backend)
    gpu = _device_peak(backend)
    launched = _launch_counter(backend)
    launches = np.zeros(3, np.int64)  # kernel launches, device allocations, host waits in the timed steps

    def body():
        sim.prepare()  # the output folder, the state at t = 0
        with set_up_frozen():  # as Column.run steps
            return stepped()

    def stepped():
        column.advance()
        startup = time.perf_counter() - t_entry if t_entry is not None else None
        prime(column)
        for _ in range(max(0, warmup - 1)):
            column.advance()
        warm = os.path.join(output, WARM_STATE)
        column.write_checkpoint(warm)  # every repeat starts from this state (see restart)
        column.timers.reset()
        counter = FlopCounter(column)
        counter.start()
        n = steps * repeat
        times = np.empty(n)
        flops = np.empty(n)
        blocks = np.empty(repeat)
        groups = np.zeros((n, len(GROUP_ORDER))) if trace else None
        last = _group_totals(column.timers) if trace else None
        i = 0
        for rep in range(repeat):
            if rep:
                restart(column, warm)
            # A block starts and ends with a barrier: its wall time is the job's throughput even when
            # ranks drift apart between collectives (per-step maxima of unsynchronised ranks are not).
            comms.barrier()
            b0 = time.perf_counter()
            books = 0.0  # flop counting and tracing happen between steps: not the network's time
            for _ in range(steps):
                before = launched() if launched else None
                t0 = time.perf_counter()
                column.advance()
                sync()
                t1 = time.perf_counter()
                if launched:
                    launches[:] += launched() - before
                times[i] = t1 - t0
                flops[i] = counter.step()
                if trace:
                    now = _group_totals(column.timers)
                    groups[i] = now - last
                    last = now
                books += time.perf_counter() - t1
                i += 1
            comms.barrier()
            blocks[rep] = time.perf_counter() - b0 - books
        column.guard.settle()  # the last step's verdict
        return startup, times, flops, counter, groups, blocks

    startup, times, flops, counter, groups, blocks = _guarded(world, rank, args.debug, body)
    rss = machine.peak_rss_mb()
    split = machine.resident_split_mb()
    from .memory import footprint

    mem = footprint(column)
    totals = dict(column.timers.totals)
    _guarded(world, rank, args.debug, column.abandon)  # files closed; no final checkpoint
    world.idle_barrier()
    if rank == 0:
        shutil.rmtree(os.path.join(output, WARM_STATE), ignore_errors=True)
    return {"column": column, "comms": comms, "startup": startup, "times": times, "flops": flops,
            "flops_by": dict(counter.per_object), "bytes_by": dict(counter.bytes_per_object),
            "bytes": float(counter.total_bytes), "gpu": gpu, "totals": totals, "rss": rss, "split": split, "mem": mem,
            "groups": groups,
            "blocks": blocks, "steps": steps, "launches": launches if launched else None,
            "t_first": column.t - steps * column.dt, "dt": column.dt}


def _reduce(world, raw):
    """Per-step times (MAX over ranks) and every rank's timers, flops and memory on rank 0."""
    step_max = world.allreduce_max(raw["times"])
    block_max = world.allreduce_max(raw["blocks"])
    mine = {"totals": raw["totals"], "flops_by": raw["flops_by"], "rss": raw["rss"], "split": raw["split"],
            "mem": raw["mem"],
            "flops": float(raw["flops"].sum()), "bytes_by": raw["bytes_by"], "bytes": raw["bytes"],
            "gpu": raw["gpu"], "time_sum": float(raw["times"].sum()), "startup": raw["startup"],
            "own_ms": (raw["times"] * 1e3).tolist()}
    return step_max, block_max / raw["steps"], world.gather(mine, root=0)


def _summarise(step_max, block_step, per_rank, steps_total):
    """Rank 0: the numbers of the report from the reduced measurements.

    ``block_step`` is each repeat's wall time (barrier to barrier) per step: the throughput.
    """
    ms = step_max * 1e3
    names = sorted({n for r in per_rank for n in r["totals"]})
    per_step = {n: [r["totals"].get(n, 0.0) * 1e3 / steps_total for r in per_rank] for n in names}
    phases = {n: float(np.mean(v)) for n, v in per_step.items()}
    phases_max = {n: float(np.max(v)) for n, v in per_step.items()}
    other = [r["time_sum"] * 1e3 / steps_total - sum(r["totals"].values()) * 1e3 / steps_total
             for r in per_rank]
    groups = dict.fromkeys(GROUP_ORDER, 0.0)  # every kind, so a report always shows all of them
    for n, v in phases.items():
        g = n.split(":", 1)[0]
        groups[g] = groups.get(g, 0.0) + v
    groups["other"] = float(np.mean(other))
    wall = float(block_step.sum() * steps_total / len(block_step))
    flops = sum(r["flops"] for r in per_rank)
    nbytes = sum(r["bytes"] for r in per_rank)

    def rates(key):
        """Per phase: the count summed over ranks / the mean seconds over ranks in that phase, in G/s."""
        summed = {}
        for r in per_rank:
            for n, f in r[key].items():
                summed[n] = summed.get(n, 0) + f
        out = {}
        for n, f in summed.items():
            t = phases.get(n, 0.0) * steps_total / 1e3
            if t > 0:
                out[n] = f / t / 1e9
        return out
    return {
        "ms_per_step_median": float(np.median(ms)),
        "ms_per_step_min": float(ms.min()),
        "ms_per_step_max": float(ms.max()),
        "ms_per_step_mean": float(ms.mean()),
        "ms_per_step_wall": float(np.median(block_step) * 1e3),
        "ms_per_step_wall_min": float(block_step.min() * 1e3),
        # rank 0's own step times, in order: their spread is what a rank waits for at a collective
        "own_ms_per_step": per_rank[0]["own_ms"],
        "phases": phases,
        "phases_max": phases_max,
        "phase_groups": groups,
        "other_ms_per_step": float(np.mean(other)),
        "gflop_per_step": flops / steps_total / 1e9,
        "gflops": flops / wall / 1e9 if wall > 0 else 0.0,
        "gflops_by_phase": rates("flops_by"),
        "mb_per_step": nbytes / steps_total / 1e6,
        "gbs": nbytes / wall / 1e9 if wall > 0 else 0.0,
        "gbs_by_phase": rates("bytes_by"),
        "peak_rss_mb": float(max(r["rss"] for r in per_rank)),
        "peak_rss_mb_per_rank": [float(r["rss"]) for r in per_rank],
        # resident at the end, max over ranks: the process's own pages and the shared libraries' files
        "rss_anonymous_mb": (float(max(r["split"][0] for r in per_rank))
                             if all(r["split"] for r in per_rank) else None),
        "rss_file_mb": (float(max(r["split"][1] for r in per_rank))
                        if all(r["split"] for r in per_rank) else None),
        "memory": _memory(per_rank),
        "startup_warm_s": (float(max(r["startup"] for r in per_rank))
                           if per_rank[0]["startup"] is not None else None),
    }


def _memory(per_rank):
    """The network's arrays summed over ranks; per-neuron and per-weight bytes of the whole job."""
    m = {k: sum(r["mem"][k] for r in per_rank) for k in ("layer_bytes", "neurons", "connection_bytes")}
    m["weights"] = per_rank[0]["mem"]["weights"]  # shared weights: one copy per rank
    m["bytes_per_neuron"] = m["layer_bytes"] / m["neurons"] if m["neurons"] else 0.0
    m["bytes_per_weight_per_rank"] = per_rank[0]["mem"]["bytes_per_weight"]
    m["layer_mb"] = m["layer_bytes"] / 1e6
    m["connection_mb"] = m["connection_bytes"] / 1e6
    return m


def _startup_child(args, config, cache_dir, threads):
    """Wall time of a fresh process from start to its first step done, with NUMBA_CACHE_DIR=cache_dir."""
    out = tempfile.mkdtemp(prefix="pvmpi-bench-startup-")
    cmd = [sys.executable, "-m", "pvmpi", "bench", config, "--startup-only", "--backend", args.backend,
           "-t", str(threads), "-w", os.getcwd(), "-o", out]
    if args.seed is not None:
        cmd += ["-s", str(args.seed)]
    for s in args.set:
        cmd += ["--set", s]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                              env=machine.clean_env(NUMBA_CACHE_DIR=cache_dir))
        wall = time.perf_counter() - t0
    finally:
        shutil.rmtree(out, ignore_errors=True)
    if proc.returncode != 0:
        raise PvmpiError(f"start-up subprocess failed: {proc.stderr.strip()[-500:]}")
    inproc = json.loads(proc.stdout.strip().splitlines()[-1])["startup_s"]
    return wall, inproc


def _bench(args, model, world, output, config, t_entry, peak):
    rank = world.rank
    threads = int(os.environ.get("NUMBA_NUM_THREADS", "1"))
    if args.startup_only:
        raw = _time_backend(args, model, world, args.backend, output, 1, 1, 0, t_entry)
        if rank == 0:
            print(json.dumps({"startup_s": raw["startup"]}), flush=True)
        raw["comms"].free()
        return 0
    raw = _time_backend(args, model, world, args.backend, output, args.steps, args.repeat, args.warmup,
                        t_entry, trace=bool(args.trace))
    if args.trace:
        write_trace(args.trace, world, raw)
    steps_total = args.steps * args.repeat
    step_max, block_step, per_rank = _reduce(world, raw)
    comms = raw["comms"]
    lay = comms.layout
    column = raw["column"]
    result = None
    if rank == 0:
        result = {"config": args.config, "backend": args.backend, "ranks": comms.size, "threads": threads,
                  "layout": {"batchwidth": lay.batch_width, "rows": lay.rows, "columns": lay.columns},
                  "nbatch": model.column["nbatch"], "steps": steps_total, "repeat": args.repeat,
                  "warmup": max(1, args.warmup), "t_end": column.t,
                  "t_start": column.t - args.steps * column.dt}
        result.update(_summarise(step_max, block_step, per_rank, steps_total))
        counted = raw["launches"]
        result["kernel_launches_per_step"] = None if counted is None else float(counted[0]) / steps_total
        result["device_allocations_per_step"] = None if counted is None else float(counted[1]) / steps_total
        result["host_waits_per_step"] = None if counted is None else float(counted[2]) / steps_total
    comms.free()

    if args.compare:
        n = args.compare_steps or min(args.steps, 20)
        sub = os.path.join(output, "compare-" + args.compare) if rank == 0 else None
        sub = world.bcast(sub, root=0)
        craw = _time_backend(args, model, world, args.compare, sub, n, 1, min(args.warmup, 2))
        cmax, cblock, cper = _reduce(world, craw)
        craw["comms"].free()
        if rank == 0:
            c = _summarise(cmax, cblock, cper, n)
            result["compare"] = {"backend": args.compare, "steps": n,
                                 "ms_per_step_median": c["ms_per_step_median"],
                                 "ms_per_step_min": c["ms_per_step_min"],
                                 "phases": c["phases"],
                                 "ratio": c["ms_per_step_median"] / result["ms_per_step_median"]}

    # Rank 0's extra measurements run while the other ranks sleep, so the cores are its own.
    if rank == 0:
        set_peaks(result, device_peaks(per_rank), peak, given=bool(args.peak_gflops),
                  cores=min(comms.size * threads, machine.cpu_count()))
        result["startup_cold_s"] = None
        if args.cold:
            cache = tempfile.mkdtemp(prefix="pvmpi-numba-cold-")
            try:
                note("measuring start-up with an empty Numba cache (a subprocess)...")
                result["startup_cold_s"], result["startup_cold_inproc_s"] = \
                    _startup_child(args, config, cache, threads)
                result["startup_warm_process_s"], result["startup_warm_process_inproc_s"] = \
                    _startup_child(args, config, cache, threads)
            finally:
                shutil.rmtree(cache, ignore_errors=True)
    world.idle_barrier()
    if rank == 0:
        if args.json:
            print(json.dumps(result), flush=True)
        else:
            print(format_report(result), flush=True)
    return 0


def set_peaks(result, dev, peak, given=False, cores=1):
    """Put the peaks and the fractions of them into ``result`` (rank 0, after :func:`_summarise`).

    ``dev``: the GPUs' peaks (:func:`device_peaks`) or None; ``peak``: the machine's
    (:func:`_peak`) or None. The device's float32 peak is the one compared with unless
    ``given`` (``--peak-gflops``); its bandwidth is compared with the traffic either way.
    ``cores``: the cores the ranks used (for the fraction of the cores used).
    """
    result["device"] = dev
    result["peak_gbs"] = dev["gbs"] if dev is not None else None
    result["peak_gbs_fraction"] = result["gbs"] / dev["gbs"] if dev is not None and dev["gbs"] else None
    if dev is not None and not given:
        result["peak_kind"] = "device"
        result["peak_gflops"] = dev["gflops"]
        result["peak_how"] = dev.get("how") or dev["why"]
        result["peak_fraction"] = result["gflops"] / dev["gflops"] if dev["gflops"] else None
    elif peak is not None:
        result["peak_kind"] = "machine"
        result["peak_gflops"] = peak["gflops"]
        result["peak_gflops_1thread"] = peak.get("gflops_1thread")
        result["peak_how"] = peak["how"]
        result["peak_fraction"] = result["gflops"] / peak["gflops"]
        if peak.get("gflops_1thread"):
            result["peak_fraction_used_cores"] = result["gflops"] / (peak["gflops_1thread"] * cores)
    else:
        result["peak_kind"] = None
        result["peak_gflops"] = result["peak_fraction"] = None


def write_trace(path, world, raw):
    """One row per timed step and rank: where each rank spent each step (rank 0 writes)."""
    import csv

    mine = np.column_stack([raw["times"] * 1e3, raw["groups"] * 1e3])
    every = world.gather(mine, root=0)
    if world.rank != 0:
        return
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "t", "rank", "ms"] + [f"ms_{g}" for g in GROUP_ORDER] + ["ms_other"])
        for i in range(len(raw["times"])):
            for r, rows in enumerate(every):
                row = rows[i]
                w.writerow([i, f"{raw['t_first'] + (i % raw['steps'] + 1) * raw['dt']:g}", r] + [f"{v:.4f}" for v in row]
                           + [f"{row[0] - row[1:].sum():.4f}"])


# ------------------------------------------------------------------------ the report
def _fmt_layout(lay):
    return f"B{lay['batchwidth']}xR{lay['rows']}xC{lay['columns']}"


def format_report(r):
    """The human-readable report of one bench result `r` (as printed without --json)."""
    step = r["ms_per_step_mean"]
    lines = [
        f"pvmpi bench {r['config']}",
        f"  backend {r['backend']}, {r['ranks']} rank(s) {_fmt_layout(r['layout'])}, {r['threads']} thread(s) "
        f"per rank, nbatch {r['nbatch']}; {r['repeat']} x {r['steps'] // r['repeat']} steps timed after "
        f"{r['warmup']} warm-up (each repeat from the state after it: t = {r['t_start']:g} to {r['t_end']:g})",
        f"  time per step: median {r['ms_per_step_median']:.3f} ms, min {r['ms_per_step_min']:.3f}, "
        f"max {r['ms_per_step_max']:.3f}, mean {step:.3f}"
        + (" (per step: the slowest rank)" if r["ranks"] > 1 else ""),
        f"  throughput: {r['ms_per_step_wall']:.3f} ms per step wall-clock (median of the repeats, "
        f"barrier to barrier; best {r['ms_per_step_wall_min']:.3f}) = "
        f"{1e3 / r['ms_per_step_wall']:.1f} steps/s, {r['nbatch'] * 1e3 / r['ms_per_step_wall']:.0f} image-steps/s",
    ]
    if r.get("kernel_launches_per_step") is not None:
        lines.append(f"  kernel launches: {r['kernel_launches_per_step']:.1f} per step, device allocations: "
                     f"{r['device_allocations_per_step']:.2f} per step, waits for the device: "
                     f"{r['host_waits_per_step']:.1f} per step (rank 0)")
    lines.append("")
    multi = r["ranks"] > 1
    head = f"  {'phase':<36} {'ms/step':>9} {'%':>6}"
    if multi:
        head += f" {'max/rank':>9}"
    head += f" {'GFLOP/s':>9} {'GB/s':>8}"
    lines.append(head + ("   (mean over ranks)" if multi else ""))
    groups = r["phase_groups"]
    for g in GROUP_ORDER + ("other",):
        if g not in groups:
            continue
        lines.append(f"  {GROUP_HELP[g]:<36.36} {groups[g]:9.3f} {100 * groups[g] / step:6.1f}")
        if g == "other":
            continue
        members = sorted((n for n in r["phases"] if n.split(":", 1)[0] == g), key=lambda n: -r["phases"][n])
        for n in members:
            v = r["phases"][n]
            gb = r.get("gbs_by_phase", {}).get(n)
            gf = r["gflops_by_phase"].get(n)
            if v < 0.0005 and gf is None and gb is None:
                continue
            row = f"    {n:<34.34} {v:9.3f} {100 * v / step:6.1f}"
            if multi:
                row += f" {r['phases_max'][n]:9.3f}"
            if gf is not None or gb is not None:
                row += f" {gf:9.2f}" if gf is not None else " " * 10
                row += f" {gb:8.2f}" if gb is not None else ""
            lines.append(row)
    lines.append("")
    peak = r.get("peak_gflops")
    device = r.get("peak_kind") == "device"
    text = f"  compute: {r['gflop_per_step'] * 1e3:.1f} MFLOP per step, {r['gflops']:.2f} GFLOP/s"
    if device:
        if peak:
            text += f" = {100 * r['peak_fraction']:.2f} % of the device's peak {peak:.1f} GFLOP/s ({r['peak_how']})"
        else:
            text += f" (the device's peak is unknown: {r['peak_how']})"
    elif peak:
        text += f" = {100 * r['peak_fraction']:.2f} % of the machine's peak {peak:.1f} GFLOP/s"
        if r.get("peak_fraction_used_cores") is not None:
            text += f" ({100 * r['peak_fraction_used_cores']:.2f} % of the cores used)"
    lines.append(text)
    if peak and not device:
        lines.append(f"    peak: {r['peak_how']}")
    if "mb_per_step" in r:
        text = f"  memory: {r['mb_per_step']:.2f} MB per step (compulsory traffic), {r['gbs']:.2f} GB/s"
        if r.get("peak_gbs"):
            text += (f" = {100 * r['peak_gbs_fraction']:.2f} % of the device's peak {r['peak_gbs']:.1f} GB/s "
                     f"({r['device']['how_gbs']})")
        lines.append(text)
    lines.append(f"  peak RSS: {r['peak_rss_mb']:.1f} MB per rank (max over ranks"
                 + (", all: " + ", ".join(f"{v:.0f}" for v in r["peak_rss_mb_per_rank"]) if multi else "")
                 + ")")
    if r.get("rss_anonymous_mb") is not None:
        lines.append(f"    resident at the end: {r['rss_anonymous_mb']:.1f} MB anonymous (heap, arrays, "
                     f"compiled kernels: each rank's own) + {r['rss_file_mb']:.1f} MB file-backed (library code, "
                     f"shared by a node's ranks through the page cache)")
    m = r["memory"]
    lines.append(f"  network arrays: layers {m['layer_mb']:.2f} MB = {m['bytes_per_neuron']:.1f} bytes per neuron "
                 f"({m['neurons']} neurons); connections {m['connection_mb']:.3f} MB = "
                 f"{m['bytes_per_weight_per_rank']:.1f} bytes per shared weight per rank ({m['weights']} weights)")
    text = f"  start-up to the first step: warm {r['startup_warm_s']:.2f} s (this process, from the bench's entry)"
    if r.get("startup_cold_s") is not None:
        text += (f"; cold Numba cache {r['startup_cold_s']:.2f} s, warm {r['startup_warm_process_s']:.2f} s "
                 f"(fresh processes, interpreter start included)")
    lines.append(text)
    c = r.get("compare")
    if c:
        lines.append(f"  {c['backend']} backend: median {c['ms_per_step_median']:.3f} ms per step over "
                     f"{c['steps']} steps; {c['backend']}/{r['backend']} = {c['ratio']:.1f}x")
    return "\n".join(lines)
