"""``python -m pvmpi bench scaling CONFIG``: the bench under a sweep of MPI layouts, as a table, CSV and plots.

Each layout runs as its own MPI job — ``mpiexec -n k python -m mpi4py -m
pvmpi bench CONFIG --json`` with the ``mpiexec`` installed beside this
Python (a launcher of another MPI would start k unrelated one-rank jobs) —
so every point is measured exactly as a user would run it, start-up and all.
This driver itself never starts MPI.

Speed-up is throughput (images x steps per second) over that of the first
1-rank row; efficiency divides it by the growth in cores used (ranks x
threads, at most the machine's cores), so on a 2-core machine "1 rank x 2
threads" and "2 ranks x 1 thread" compete on equal hardware.
"""
import argparse
import csv
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ..errors import PvmpiError
from ..parallel.launcher import mpiexec_path
from ..parallel.layout import layout_kind, layout_name, layout_problems, parse_layout
from ..simulation import BACKENDS, load
from . import machine
from .run import GROUPS

CSV_FIELDS = ("ranks", "batchwidth", "rows", "columns", "threads", "cores", "nbatch", "steps",
              "ms_per_step_wall", "ms_per_step_median", "ms_per_step_min", "ms_per_step_max", "images_per_s", "speedup",
              "efficiency") + tuple(f"pct_{g}" for g in GROUPS) + tuple(f"ms_{g}" for g in GROUPS) + \
             ("gflops", "peak_rss_mb", "status")


def build_parser():
    """The options of ``pvmpi bench scaling``."""
    p = argparse.ArgumentParser(
        prog="python -m pvmpi bench scaling",
        description="Run the bench of CONFIG under several MPI layouts (one mpiexec job each) and report "
                    "time per step, speed-up, efficiency and the share of halo exchange, dW all-reduce and "
                    "I/O; writes scaling.csv, scaling.json, scaling.png and phases.png into -o DIR.")
    p.add_argument("config", help="YAML config")
    p.add_argument("--max-ranks", type=int, default=2,
                   help="sweep 1..N ranks with every batch and spatial split that fits the network (default 2)")
    p.add_argument("--layouts", nargs="+", metavar="B,R,C[:T]",
                   help="explicit layouts (BatchWidth,NumRows,NumColumns, optionally :threads per rank), "
                        "e.g. --layouts 1,1,1 1,1,1:1 2,1,1 1,2,1 1,1,2")
    p.add_argument("--weak", action="store_true", help="weak scaling: nbatch grows with the ranks")
    p.add_argument("-o", "--output", help="directory for scaling.csv/.json/.png (default scaling-<config>)")
    p.add_argument("--steps", type=int, default=50, help="timed steps per repeat (default 50)")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps first (default 10)")
    p.add_argument("--repeat", type=int, default=3, help="repeats (default 3)")
    p.add_argument("-t", "--threads", type=int,
                   help="threads per rank for every layout (default: cores / ranks)")
    p.add_argument("--backend", choices=BACKENDS, default="numba")
    p.add_argument("--set", action="append", default=[], metavar="GROUP.PARAM=VALUE",
                   help="override a parameter in every run")
    p.add_argument("-w", "--workdir", help="working directory of the runs (as for bench)")
    p.add_argument("--mpiexec", metavar="PATH",
                   help="the launcher of the MPI that mpi4py was built with (default: the mpiexec beside "
                        "this Python; never one picked from PATH)")
    p.add_argument("--mpiexec-args", default="", metavar="ARGS",
                   help="extra launcher options, e.g. --mpiexec-args='--bind-to none' for Open MPI")
    p.add_argument("--timeout", type=int, default=1200, help="seconds allowed per run (default 1200)")
    p.add_argument("--no-plots", action="store_true", help="write no PNG files")
    p.add_argument("--markdown", action="store_true", help="also print the table as Markdown (and write scaling.md)")
    return p


def default_layouts(model, max_ranks, weak):
    """1x1x1, then for each rank count: batch split, row split, column split, mixes (those that fit)."""
    from dataclasses import replace

    from ..model.shape import network_shape
    from ..parallel.decomposition import layouts

    order = {"serial": 0, "batch": 1, "rows": 2, "columns": 3, "mixed": 4}
    out = []
    shape = network_shape(model)
    for k in range(1, max_ranks + 1):
        lays = sorted(layouts(k), key=lambda L: (order[layout_kind(L.batch_width, L.rows, L.columns)],
                                                 -L.batch_width, -L.rows))
        sized = replace(shape, nbatch=shape.nbatch * k) if weak else shape
        for L in lays:
            if not layout_problems(sized, L.batch_width, L.rows, L.columns):
                out.append((L.batch_width, L.rows, L.columns, None))
    return out


def _last_json(text):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError("no JSON line in the output")


def run_one(args, config, workdir, layout, nbatch, peak):
    """Bench one layout (B, R, C, threads) as its own mpiexec job; its JSON result, with ``status``
    'ok' or why it failed or timed out."""
    b, r, c, t = layout
    k = b * r * c
    cmd = [mpiexec_path(args.mpiexec), *shlex.split(args.mpiexec_args), "-n", str(k), sys.executable, "-m", "mpi4py", "-m", "pvmpi", "bench", config,
           "--json", "--batchwidth", str(b), "--rows", str(r), "--columns", str(c),
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--repeat", str(args.repeat),
           "--backend", args.backend]
    if workdir is not None:
        cmd += ["-w", str(workdir)]
    threads = t or args.threads
    if threads:
        cmd += ["-t", str(threads)]
    if peak:
        cmd += ["--peak-gflops", str(peak["gflops"])]
    for s in args.set:
        cmd += ["--set", s]
    if args.weak:
        cmd += ["--set", f"column.nbatch={nbatch}"]
    env = dict(os.environ)
    if not threads:
        env.pop("NUMBA_NUM_THREADS", None)  # let each run divide the cores among its ranks
    print("  $ " + " ".join(cmd[:cmd.index(sys.executable)] + ["..."] + cmd[cmd.index("bench"):]),
          file=sys.stderr, flush=True)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"status": f"timed out after {args.timeout} s"}
    if proc.returncode != 0:
        err = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        return {"status": "failed: " + (err[-1] if err else f"exit {proc.returncode}")}
    try:
        res = _last_json(proc.stdout)
    except ValueError as e:
        return {"status": f"failed: {e}"}
    res["status"] = "ok"
    return res


def row_of(layout, res, nbatch, cores_available=None):
    """One table row from a bench result.

    ``cores`` (what efficiency divides by) is ranks x threads, capped at
    ``cores_available`` when given: the cores of the machine that ran a local
    sweep (an oversubscribed run uses no more than those), or the CPUs a SLURM
    task was allocated. ``None``: no cap — the default, because the driver's
    own machine (a login node, a one-CPU merge job) says nothing about the
    cores a run on other nodes had.
    """
    b, r, c, _ = layout
    row = {"ranks": b * r * c, "batchwidth": b, "rows": r, "columns": c, "nbatch": nbatch,
           "status": res.get("status", "ok")}
    if row["status"] != "ok":
        return row
    threads = res["threads"]
    step = res["ms_per_step_mean"]
    cores = row["ranks"] * threads
    row.update(threads=threads, cores=cores if cores_available is None else min(cores, cores_available),
               steps=res["steps"], ms_per_step_wall=res["ms_per_step_wall"],
               ms_per_step_median=res["ms_per_step_median"],
               ms_per_step_min=res["ms_per_step_min"], ms_per_step_max=res["ms_per_step_max"],
               images_per_s=res["nbatch"] * 1e3 / res["ms_per_step_wall"], gflops=res["gflops"],
               peak_rss_mb=res["peak_rss_mb"])
    for g in GROUPS:
        v = res["phase_groups"].get(g, 0.0)
        row[f"ms_{g}"] = v
        row[f"pct_{g}"] = 100 * v / step if step > 0 else 0.0
    return row


def add_speedups(rows):
    """Speed-up and efficiency of every ok row against the first ok 1-rank row; NaN without one."""
    ref = next((r for r in rows if r["status"] == "ok" and r["ranks"] == 1), None)
    for r in rows:
        if r["status"] != "ok":
            continue
        if ref is None:
            r["speedup"] = r["efficiency"] = float("nan")
            continue
        r["speedup"] = r["images_per_s"] / ref["images_per_s"]
        r["efficiency"] = r["speedup"] / (r["cores"] / ref["cores"])
    return ref


NOISY = 0.3  # a baseline whose slowest step is this much over its fastest is too noisy to divide by


def noise_warnings(rows, ref):
    """Lines saying where the figures cannot be trusted: a noisy baseline (its step times spread by
    more than NOISY), efficiencies above 1.2 (faster per core than the baseline: noise, or cache)."""
    out = []
    if ref is not None and ref["ms_per_step_min"] > 0:
        spread = (ref["ms_per_step_max"] - ref["ms_per_step_min"]) / ref["ms_per_step_min"]
        if spread > NOISY:
            out.append(f"warning: the baseline's steps took {ref['ms_per_step_min']:.3g} to "
                       f"{ref['ms_per_step_max']:.3g} ms ({spread:.0%} apart): the machine was busy; every "
                       f"speed-up and efficiency below divides by it (rerun on a quiet machine, or with more "
                       f"--repeat)")
    high = [r for r in rows if r.get("status") == "ok" and r.get("efficiency", 0) > 1.2]
    if high:
        out.append(f"warning: efficiency above 1.2 on {len(high)} run(s) (up to {max(r['efficiency'] for r in high):.1f}): "
                   f"more than linear, so noise or the working set fitting in cache, not scaling")
    return out


def format_table(rows, ref, weak):
    """The sweep as a text table: time per step, speed-up and efficiency against ``ref``, and the
    shares of halo exchange, dW all-reduce and I/O."""
    head = (f"{'ranks':>5} {'layout':<10} {'thr':>3} {'nbatch':>6} {'ms/step':>9} {'median':>8} {'speed-up':>8} "
            f"{'effic.':>7} {'%halo':>6} {'%allred':>7} {'%I/O':>6} {'%other':>6}")
    lines = [head]
    for r in rows:
        name = layout_name(r["batchwidth"], r["rows"], r["columns"])
        if r["status"] != "ok":
            lines.append(f"{r['ranks']:>5} {name:<10} {r['status']}")
            continue
        lines.append(f"{r['ranks']:>5} {name:<10} {r['threads']:>3} {r['nbatch']:>6} "
                     f"{r['ms_per_step_wall']:9.3f} {r['ms_per_step_median']:8.3f} {r['speedup']:8.2f} "
                     f"{r['efficiency']:7.2f} {r['pct_halo']:6.1f} {r['pct_allreduce']:7.1f} "
                     f"{r['pct_io']:6.1f} {r['pct_other']:6.1f}")
    if ref is not None:
        lines.append(f"({'weak' if weak else 'strong'} scaling; speed-up = images x steps per second over "
                     f"the {layout_name(ref['batchwidth'], ref['rows'], ref['columns'])} run with {ref['threads']} thread(s); efficiency = speed-up / "
                     f"(cores used / {ref['cores']}); ms/step = wall-clock per step, barrier to barrier, median of the "
                     f"repeats; median = median step of the slowest rank)")
    return "\n".join(lines + noise_warnings(rows, ref))


def format_markdown(rows):
    """The table as Markdown (for a README): the ok rows, with their speed-up and efficiency."""
    shares = ("halo", "allreduce", "guard", "wait", "probes")
    lines = ["| ranks | layout | threads | ms/step | speed-up | efficiency | " + " | ".join(f"% {g}" for g in shares)
             + " |", "|---:|---|---:|---:|---:|---:|" + "---:|" * len(shares)]
    for r in rows:
        if r["status"] == "ok":
            lines.append(f"| {r['ranks']} | {layout_name(r['batchwidth'], r['rows'], r['columns'])} | {r['threads']} | {r['ms_per_step_wall']:.2f} | "
                         f"{r['speedup']:.2f} | {r['efficiency']:.2f} | "
                         + " | ".join(f"{r.get('pct_' + g, 0.0):.1f}" for g in shares) + " |")
    return "\n".join(lines)


def write_csv(path, rows):
    """Write the rows as CSV (the columns of CSV_FIELDS, floats to 6 significant digits)."""
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def main(argv):
    """Entry point of ``pvmpi bench scaling``: parse argv and sweep; a PvmpiError becomes one error line."""
    from ..failure import guarded

    return guarded(build_parser(), _main, argv)


def _main(args):
    for name in ("steps", "repeat", "max_ranks"):
        if getattr(args, name) < 1:
            raise PvmpiError(f"--{name.replace('_', '-')} must be at least 1")
    config = os.path.abspath(args.config)
    model = load(config, args.set)  # errors now, not once per run
    nbatch0 = model.column["nbatch"]
    layouts = [parse_layout(t, "--layouts", threads=True) for t in args.layouts] if args.layouts else \
        default_layouts(model, args.max_ranks, args.weak)
    out = Path(args.output or f"scaling-{Path(config).stem}")
    out.mkdir(parents=True, exist_ok=True)
    workdir, made = args.workdir, None
    if workdir is None and machine.needs_bench_inputs(config):
        from ..data.bench_inputs import make_bench_inputs

        made = workdir = tempfile.mkdtemp(prefix="pvmpi-bench-")
        make_bench_inputs(workdir)
        print(f"pvmpi bench scaling: working directory: {workdir} with pvmpi's input images", file=sys.stderr)
    peak = None
    try:
        peak = machine.peak_gflops()
    except (subprocess.SubprocessError, OSError, ValueError) as e:
        print(f"pvmpi bench scaling: could not measure the peak: {e}", file=sys.stderr)
    rows, results = [], []
    try:
        for lay in layouts:
            k = lay[0] * lay[1] * lay[2]
            nbatch = nbatch0 * k if args.weak else nbatch0
            res = run_one(args, config, workdir, lay, nbatch, peak)
            results.append({"layout": list(lay[:3]), "threads_requested": lay[3], **res})
            rows.append(row_of(lay, res, nbatch, machine.cpu_count()))
    finally:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
    ref = add_speedups(rows)
    print(format_table(rows, ref, args.weak), flush=True)
    write_csv(out / "scaling.csv", rows)
    (out / "scaling.json").write_text(json.dumps({"config": args.config, "weak": args.weak, "peak": peak,
                                                  "rows": rows, "runs": results}, indent=1))
    written = ["scaling.csv", "scaling.json"]
    if args.markdown:
        md = format_markdown(rows)
        print(md, flush=True)
        (out / "scaling.md").write_text(md + "\n")
        written.append("scaling.md")
    if not args.no_plots:
        from .plots import plot_scaling

        written += plot_scaling(rows, out, weak=args.weak, title=Path(config).name)
    print(f"wrote {', '.join(str(out / w) for w in written)}", flush=True)
    return 0 if all(r["status"] == "ok" for r in rows) else 1
