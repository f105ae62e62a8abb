"""``python -m pvmpi.launch -n RANKS CONFIG [pvmpi options]``: start pvmpi on MPI the right way.

It works out, prints, and then runs (``--dry-run``: only prints) the command
that starts pvmpi on ``RANKS`` MPI ranks:

* **the launcher** — ``mpiexec`` of the MPI that mpi4py uses (the one beside
  this Python, then the MPI library's own ``bin/``, then ``PATH``), checked
  by vendor: mpi4py reports the MPI library (``MPI.Get_library_version``),
  ``mpiexec --version`` the launcher, and a launcher of another MPI is
  refused — it would start N unrelated one-rank jobs or fail. Inside a SLURM
  allocation the default is ``srun --mpi=pmi2`` (``pmix`` for Open MPI);
* **the layout** (BatchWidth, NumRows, NumColumns) from the rank count and the
  network (read with :func:`pvmpi.load`, ``--set`` overrides
  included): batch splitting first, as far as nbatch allows — a batch slice
  needs no halo exchange, only the dW all-reduce every layout has — then a
  spatial split of every layer into tiles, rows before columns, with the
  smallest halo; tiles narrower than a layer's margin are never chosen. The
  reasons are printed. Layout options given to pvmpi are kept;
* **threads per rank**: cores per node / ranks per node (SLURM's
  ``--cpus-per-task`` inside an allocation), given to pvmpi as ``-t`` and in
  ``NUMBA_NUM_THREADS``/``OMP_NUM_THREADS``, with binding to cores when the
  node is not oversubscribed.

Options for scripts: ``--print-layout`` prints ``B R C``, ``--print-mpiexec``
the checked launcher's path, ``--check`` starts two ranks with the chosen
launcher and verifies that they form one world of two. Nothing here imports
mpi4py into this process: the MPI library is probed in a subprocess.
"""
import argparse
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .errors import PvmpiError
from .model.shape import network_shape
from .parallel.launcher import find_mpiexec, mpi_info
from .parallel.layout import parse_layout, plan_layout

PROG = "pvmpi-launch"
MPI_PLUGIN = {"mpich": "pmi2", "mvapich": "pmi2", "intel": "pmi2", "cray": "cray_shasta", "openmpi": "pmix"}


# ---------------------------------------------------------------- nodes, ranks, threads

def _env_int(env, *names):
    for name in names:
        v = env.get(name, "")
        if v.isdigit() and int(v) > 0:
            return int(v)
    return None


def slurm_cpus(text):
    """SLURM_JOB_CPUS_PER_NODE ('4(x2),2') -> total CPUs (None when unreadable)."""
    total = 0
    try:
        for part in text.split(","):
            if "(x" in part:
                n, times = part.rstrip(")").split("(x")
                total += int(n) * int(times)
            else:
                total += int(part)
    except ValueError:
        return None
    return total or None


@dataclass
class Resources:
    """Ranks, nodes, ranks and cores per node and threads per rank of a launch, with notes saying
    where each value came from."""

    ranks: int
    nodes: int
    ranks_per_node: int
    cores_per_node: int
    threads: int
    in_slurm: bool
    allocated_cpus: int = None
    notes: list = field(default_factory=list)

    @property
    def oversubscribed(self):
        return self.ranks_per_node * self.threads > self.cores_per_node


def resources(ranks=None, nodes=None, ranks_per_node=None, threads=None, env=None, cores=None):
    """Ranks, nodes, ranks per node and threads per rank, from the options, SLURM's variables or this node."""
    env = os.environ if env is None else env
    in_slurm = bool(env.get("SLURM_JOB_ID"))
    notes = []
    if ranks is None:
        ranks = _env_int(env, "SLURM_NTASKS", "SLURM_NPROCS") if in_slurm else None
        if ranks is None:
            ranks = 1
        elif in_slurm:
            notes.append(f"{ranks} rank(s): SLURM_NTASKS of job {env['SLURM_JOB_ID']}")
    if nodes is None:
        nodes = 1
        alloc_nodes = _env_int(env, "SLURM_JOB_NUM_NODES", "SLURM_NNODES") if in_slurm else None
        if alloc_nodes:  # as few of the allocation's nodes as hold the ranks at its ranks per node
            alloc_ranks = _env_int(env, "SLURM_NTASKS", "SLURM_NPROCS")
            per_node = _env_int(env, "SLURM_NTASKS_PER_NODE") or \
                (math.ceil(alloc_ranks / alloc_nodes) if alloc_ranks else None)
            nodes = min(alloc_nodes, math.ceil(ranks / per_node)) if per_node else alloc_nodes
    nodes = max(1, min(nodes, ranks))
    if ranks_per_node is None:
        ranks_per_node = math.ceil(ranks / nodes)
    if cores is None:
        cores = (_env_int(env, "SLURM_CPUS_ON_NODE") if in_slurm else None) or len(os.sched_getaffinity(0))
    if threads is None:
        threads = _env_int(env, "SLURM_CPUS_PER_TASK") if in_slurm else None
        if threads is not None:
            notes.append(f"{threads} thread(s) per rank: SLURM_CPUS_PER_TASK")
        else:
            threads = max(1, cores // ranks_per_node)
            notes.append(f"{threads} thread(s) per rank: {cores} core(s) per node / {ranks_per_node} rank(s) "
                         "per node")
    allocated = slurm_cpus(env.get("SLURM_JOB_CPUS_PER_NODE", "")) if in_slurm else None
    res = Resources(ranks, nodes, ranks_per_node, cores, threads, in_slurm, allocated, notes)
    if res.oversubscribed:
        notes.append(f"oversubscribed: {ranks_per_node} rank(s) x {threads} thread(s) on {cores} core(s) per "
                     "node — fine for correctness, not for timing")
    return res


# ---------------------------------------------------------------- the command

def pvmpi_arguments(argv):
    """pvmpi's own parse of its options (config, --set, layout, -t...), as ``python -m pvmpi`` reads them."""
    from .cli import build_parser
    from .openpv_args import parse_args

    return parse_args(list(argv), build_parser())


def launcher_command(kind, res, info=None, mpiexec=None, srun_mpi=None, extra=(), bind=True, count=True):
    """The launcher's words before the program: ``srun ...`` or ``mpiexec ...``.

    ``count=False`` leaves out the rank count (for drivers that add ``-n K`` themselves).
    """
    n, t = str(res.ranks), str(res.threads)
    if kind == "srun":
        cmd = ["srun", f"--mpi={srun_mpi or MPI_PLUGIN.get(info.vendor if info else 'mpich', 'pmi2')}"]
        cmd += [f"--ntasks={n}"] if count else []
        cmd += [f"--cpus-per-task={t}"]
        cmd.append(f"--nodes={res.nodes}")
        if res.nodes > 1:
            cmd.append(f"--ntasks-per-node={res.ranks_per_node}")
        if res.in_slurm and res.allocated_cpus and res.ranks * res.threads > res.allocated_cpus:
            cmd.append("--overcommit")
        cmd.append("--cpu-bind=cores" if bind and not res.oversubscribed else "--cpu-bind=none")
        cmd.append("--kill-on-bad-exit=1")  # a dead rank ends the step; the others would wait in MPI forever
        return cmd + list(extra)
    vendor = info.vendor if info else "mpich"
    cmd = [mpiexec] + (["-n", n] if count else [])
    if vendor == "openmpi":
        if os.geteuid() == 0:
            cmd.append("--allow-run-as-root")
        if res.nodes > 1:
            cmd += ["--map-by", f"ppr:{res.ranks_per_node}:node:PE={t}" if bind and not res.oversubscribed
                    else f"ppr:{res.ranks_per_node}:node"]
        elif bind and not res.oversubscribed:
            cmd += ["--map-by", f"slot:PE={t}", "--bind-to", "core"]
        if res.oversubscribed:
            cmd += ["--oversubscribe", "--bind-to", "none"]
        cmd += ["-x", "NUMBA_NUM_THREADS", "-x", "OMP_NUM_THREADS"]
    else:  # MPICH's hydra (also MVAPICH's and Intel MPI's mpiexec)
        if res.nodes > 1:
            cmd += ["-ppn", str(res.ranks_per_node)]
        if bind and not res.oversubscribed and vendor != "intel":
            cmd += ["-bind-to", f"core:{t}"]
    return cmd + list(extra)


def forward_signal(kind, info=None):
    """The signal to send the launcher so that every rank checkpoints and stops (see slurm/requeue.sbatch)."""
    if kind == "srun":
        return "USR2"  # srun forwards SIGUSR2 to every task
    if info is not None and info.vendor == "openmpi":
        return "USR2"  # Open MPI's mpirun forwards SIGUSR1/SIGUSR2
    return "TERM"  # MPICH's mpiexec dies of SIGUSR2 but forwards SIGTERM (pvmpi: checkpoint and stop)


def _has_option(argv, *names):
    return any(a in names or any(a.startswith(n + "=") for n in names if n.startswith("--")) for a in argv)


def build_parser():
    """The launcher's options; everything from CONFIG on is pvmpi's and passed on unchanged."""
    p = argparse.ArgumentParser(
        prog=PROG if Path(sys.argv[0]).name == PROG else "python -m pvmpi.launch",
        allow_abbrev=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Start pvmpi on MPI: finds the launcher of mpi4py's MPI (refuses another MPI's), "
                    "chooses the layout from the rank count and the network (batch split first, then "
                    "tiles; the reasons are printed), sets threads per rank, prints the command and runs it.",
        epilog="examples:\n"
               "  python -m pvmpi.launch -n 4 configs/lca_demo.yaml --set column.stopTime=400\n"
               "  python -m pvmpi.launch --dry-run -n 16 configs/lca_demo.yaml\n"
               "  srun -n 1 ... / in an sbatch script: python -m pvmpi.launch CONFIG   (ranks from SLURM)\n"
               "  python -m pvmpi.launch --print-layout -n 8 CONFIG      # prints B R C\n"
               "Launcher options come before CONFIG; everything from CONFIG on is pvmpi's "
               "(use -- CONFIG... when pvmpi's part starts with an option, e.g. -- -p net.params).")
    p.add_argument("-n", "--ranks", type=int, metavar="N",
                   help="MPI ranks (default: SLURM_NTASKS inside an allocation, else 1)")
    p.add_argument("-N", "--nodes", type=int, metavar="N",
                   help="nodes (default: the allocation's, else 1)")
    p.add_argument("--ranks-per-node", "--ppn", type=int, metavar="K", dest="ranks_per_node",
                   help="ranks per node (default: ranks / nodes, rounded up)")
    p.add_argument("-t", "--threads", type=int, metavar="T",
                   help="threads per rank (default: SLURM_CPUS_PER_TASK, else cores per node / ranks per node)")
    p.add_argument("--layout", default="auto", metavar="auto|B,R,C",
                   help="BatchWidth,NumRows,NumColumns, or auto (default; pvmpi's --batchwidth/--rows/"
                        "--columns after CONFIG also fix them)")
    p.add_argument("--launcher", choices=("auto", "mpiexec", "srun"), default="auto",
                   help="auto (default): srun inside a SLURM allocation, else mpiexec")
    p.add_argument("--mpiexec", metavar="PATH",
                   help="this mpiexec (checked: it must belong to mpi4py's MPI)")
    p.add_argument("--srun-mpi", metavar="PLUGIN",
                   help="srun --mpi plugin (default: pmi2 for MPICH and Intel MPI, pmix for Open MPI)")
    p.add_argument("--launcher-args", default="", metavar="ARGS",
                   help="more launcher options, one shell-quoted string")
    p.add_argument("--no-bind", action="store_true", help="do not bind ranks to cores")
    p.add_argument("--python", metavar="PATH", help="the Python with pvmpi and mpi4py (default: this one)")
    p.add_argument("--dry-run", action="store_true", help="print the command, do not run it")
    p.add_argument("--print-layout", action="store_true", help="print only 'B R C' and exit")
    p.add_argument("--print-mpiexec", action="store_true", help="print only the checked mpiexec's path and exit")
    p.add_argument("--print-signal", action="store_true",
                   help="print only the signal that makes the launcher's ranks checkpoint and stop")
    p.add_argument("--print-launcher", action="store_true",
                   help="print only the launcher's words, without the rank count (scripts append -n N and "
                        "their program; see slurm/scaling-*.sbatch)")
    p.add_argument("--collect-scaling", metavar="DIR",
                   help="merge the task-*/ results of a scaling job array (slurm/scaling-*.sbatch) into "
                        "DIR/scaling.csv, scaling.json and plots; exit")
    p.add_argument("--weak", action="store_true", help="with --collect-scaling: the runs were weak scaling")
    p.add_argument("--finished", action="store_true",
                   help="exit 0 if the newest complete checkpoint in the config's checkpointWriteDir is at "
                        "stopTime (the run is done), 3 if not; for requeue scripts")
    p.add_argument("--check", action="store_true",
                   help="start 2 ranks with the launcher and check that they form one world; exit")
    p.add_argument("-q", "--quiet", action="store_true", help="no explanations, only the command")
    p.add_argument("pvmpi_args", nargs=argparse.REMAINDER, metavar="CONFIG [pvmpi options]")
    return p


def say(text, quiet=False, stream=None):
    """Print ``pvmpi-launch: <text>`` (to stdout unless ``stream`` is given), unless ``quiet``."""
    if not quiet:
        print(f"{PROG}: {text}", file=stream or sys.stdout, flush=True)


def choose_launcher(args, env):
    """srun or mpiexec: the one asked for; mpiexec if --mpiexec is given; srun inside a SLURM
    job that has it; else mpiexec."""
    if args.launcher != "auto":
        return args.launcher
    if args.mpiexec:
        return "mpiexec"
    return "srun" if env.get("SLURM_JOB_ID") and shutil.which("srun") else "mpiexec"


def run_check(cmd_prefix, python, env):
    """Start ranks with the launcher; they must form one world of that size."""
    import re

    prog = ("import os; from mpi4py import MPI; c = MPI.COMM_WORLD; "
            "os.write(1, b'<size %d rank %d>' % (c.Get_size(), c.Get_rank()))")  # one write: no interleaving
    cmd = cmd_prefix + [python, "-c", prog]
    say("check: " + shlex.join(cmd))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        raise PvmpiError("the launcher check timed out after 120 s", hint=shlex.join(cmd)) from None
    sizes = [int(m) for m in re.findall(r"<size (\d+) rank \d+>", proc.stdout)]
    want = int(cmd_prefix[cmd_prefix.index("-n") + 1]) if "-n" in cmd_prefix else \
        int(next(a.split("=")[1] for a in cmd_prefix if a.startswith("--ntasks=")))
    if proc.returncode != 0 or len(sizes) != want or any(s != want for s in sizes):
        raise PvmpiError(f"the launcher started {len(sizes)} rank(s) with world sizes {sorted(set(sizes))}, "
                         f"not one world of {want} (exit {proc.returncode}): "
                         + (proc.stderr.strip().splitlines() or [""])[-1],
                         hint="a launcher of another MPI, or a broken MPI installation")
    say(f"check: {want} ranks, one world of {want}: the launcher matches the MPI")


def checkpoint_progress(model):
    """(newest complete checkpoint or None, its step, the final step) of a config's checkpointWriteDir."""
    from .io.checkpoint import newest_checkpoint, state_file

    col = model.column
    final = round(col["stopTime"] / col["dt"])
    directory = col["checkpointWriteDir"] if col["checkpointWrite"] else None
    if not directory:
        raise PvmpiError("the config writes no checkpoints (checkpointWrite, checkpointWriteDir)",
                         group=col.name, param="checkpointWriteDir",
                         hint="--set column.checkpointWrite=true --set column.checkpointWriteDir=DIR")
    newest = newest_checkpoint(directory)
    if newest is None:
        return None, -1, final
    import h5py

    with h5py.File(state_file(newest), "r") as h:
        step = int(h.attrs["step"])
    return newest, step, final


def run_finished(pv):
    """--finished: report the newest complete checkpoint; exit status 0 when it is at stopTime,
    3 when not (for requeue scripts)."""
    from .simulation import load

    newest, step, final = checkpoint_progress(load(pv.config, pv.set))
    done = step >= final
    where = f"newest checkpoint {newest} (step {step})" if newest else "no complete checkpoint yet"
    say(f"{where}; the run ends at step {final}: {'finished' if done else 'not finished'}")
    return 0 if done else 3


def collect_scaling(directory, weak=False):
    """One table, CSV and plots from the per-task results of a scaling job array.

    Every array task of slurm/scaling-*.sbatch writes ``task-<i>/task.json``
    (layout, threads, weak, the CPUs the task was allocated) and ``task-<i>/bench.out`` (the output of
    ``python -m pvmpi bench --json``, rank 0's JSON last). This makes the
    bench's rows of them (sorted by ranks), speed-up and efficiency against
    the 1-rank row, and writes them with the bench's own table, CSV and plots.
    """
    from .bench import scaling

    root = Path(directory)
    rows, runs, config = [], [], None
    for task in sorted(root.glob("*/task.json")):
        meta = json.loads(task.read_text())
        weak = weak or bool(meta.get("weak"))
        b, r, c = meta["layout"]
        layout = (b, r, c, meta.get("threads"))
        out = task.parent / "bench.out"
        lines = [ln for ln in (out.read_text().splitlines() if out.exists() else []) if ln.startswith("{")]
        if lines:
            res = dict(json.loads(lines[-1]), status="ok")
            config = config or res.get("config")
            nbatch = res["nbatch"]
        else:
            res, nbatch = {"status": f"failed: no bench result in {out}"}, meta.get("nbatch", 0)
        rows.append(scaling.row_of(layout, res, nbatch, meta.get("cpus")))
        runs.append({"task": task.parent.name, "layout": [b, r, c], "threads_requested": layout[3], **res})
    if not rows:
        raise PvmpiError(f"no */task.json under {root}", hint="did the array tasks run?")
    rows.sort(key=lambda row: (row["ranks"], -row["batchwidth"], -row["rows"]))
    ref = scaling.add_speedups(rows)
    print(scaling.format_table(rows, ref, weak), flush=True)
    scaling.write_csv(root / "scaling.csv", rows)
    (root / "scaling.json").write_text(json.dumps({"config": config, "weak": weak, "rows": rows, "runs": runs},
                                                  indent=1))
    written = ["scaling.csv", "scaling.json"]
    try:
        from .bench.plots import plot_scaling

        written += plot_scaling(rows, root, weak=weak, title=Path(config or "").name)
    except Exception as e:  # plots are a bonus; the table and CSV are written
        say(f"no plots: {type(e).__name__}: {e}", stream=sys.stderr)
    say(f"{len(rows)} run(s) from {root}: wrote " + ", ".join(str(root / w) for w in written))
    return 0 if all(row.get("status") == "ok" for row in rows) else 1


def main(argv=None):
    """Entry point of the launcher; a PvmpiError becomes one error line and exit status 1."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        return _main(argv)
    except PvmpiError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr, flush=True)
        return 1


def _main(argv):
    args = build_parser().parse_args(argv)
    rest = args.pvmpi_args
    if rest and rest[0] == "--":
        rest = rest[1:]
    env = dict(os.environ)
    if args.collect_scaling:
        return collect_scaling(args.collect_scaling, weak=args.weak)
    quiet = args.quiet or args.print_layout or args.print_mpiexec or args.print_signal or args.print_launcher
    python = args.python or sys.executable
    kind = choose_launcher(args, env)

    info = None
    if not (args.print_layout or args.finished) and (kind == "mpiexec" or args.print_mpiexec or args.check or args.srun_mpi is None):
        info = mpi_info(python)
    if args.print_signal:
        print(forward_signal(kind, info))
        return 0
    mpiexec = None
    if info is not None and (kind == "mpiexec" or args.print_mpiexec):
        mpiexec, notes = find_mpiexec(info, args.mpiexec)
        if args.print_mpiexec:
            print(mpiexec)
            return 0
        say(f"MPI: {info.name} (mpi4py {info.mpi4py_version} under {python}); launcher {mpiexec}, the same MPI",
            quiet)
        for note in notes:
            say(note, quiet)
    elif info is not None:
        say(f"MPI: {info.name} (mpi4py {info.mpi4py_version} under {python}); launcher srun --mpi="
            f"{args.srun_mpi or MPI_PLUGIN.get(info.vendor, 'pmi2')} (SLURM starts the ranks)", quiet)

    res = resources(args.ranks, args.nodes, args.ranks_per_node, args.threads, env)
    if args.print_launcher:
        print(shlex.join(launcher_command(kind, res, info, mpiexec, args.srun_mpi, shlex.split(args.launcher_args),
                                          bind=not args.no_bind, count=False)))
        return 0
    if args.check:
        check_res = Resources(min(2, max(res.ranks, 2)), 1, 2, res.cores_per_node, 1, res.in_slurm,
                              res.allocated_cpus)
        prefix = launcher_command(kind, check_res, info, mpiexec, args.srun_mpi,
                                  shlex.split(args.launcher_args), bind=False)
        run_check(prefix, python, env)
        return 0

    if not rest:
        raise PvmpiError("no CONFIG given", hint="python -m pvmpi.launch -n RANKS CONFIG [pvmpi options]")
    pv = pvmpi_arguments(rest)
    if args.finished:
        return run_finished(pv)
    if pv.threads is not None:  # pvmpi's own -t wins
        res = resources(res.ranks, res.nodes, res.ranks_per_node, pv.threads, env)
    from .simulation import load

    model = load(pv.config, pv.set)
    shape = network_shape(model)
    fixed = parse_layout(args.layout) or (None, None, None)
    given = tuple(g if g is not None else f for g, f in zip((pv.batchwidth, pv.rows, pv.columns), fixed))
    layout, reasons = plan_layout(shape, res.ranks, *given)
    if args.print_layout:
        for line in reasons:
            say(line, stream=sys.stderr)
        print(layout.batch_width, layout.rows, layout.columns)
        return 0

    say(f"{res.ranks} rank(s) on {res.nodes} node(s), {res.ranks_per_node} per node, {res.cores_per_node} "
        f"core(s) per node, {res.threads} thread(s) per rank", quiet)
    for note in res.notes:
        say("  " + note, quiet)
    for line in reasons:
        say(line, quiet)

    words = list(rest)
    if pv.batchwidth is None:
        words += ["--batchwidth", str(layout.batch_width)]
    if pv.rows is None:
        words += ["--rows", str(layout.rows)]
    if pv.columns is None:
        words += ["--columns", str(layout.columns)]
    if pv.threads is None and not _has_option(rest, "-t", "--threads"):
        words += ["-t", str(res.threads)]
    launch = launcher_command(kind, res, info, mpiexec, args.srun_mpi, shlex.split(args.launcher_args),
                              bind=not args.no_bind)
    cmd = launch + [python, "-m", "mpi4py", "-m", "pvmpi"] + words
    env["NUMBA_NUM_THREADS"] = env["OMP_NUM_THREADS"] = str(res.threads)
    shown = f"NUMBA_NUM_THREADS={res.threads} OMP_NUM_THREADS={res.threads} " + shlex.join(cmd)
    print(("" if args.quiet else "+ ") + shown, flush=True)
    if args.dry_run:
        return 0
    sys.stderr.flush()
    try:
        os.execvpe(cmd[0], cmd, env)  # the launcher takes this process's place (and its pid: signals reach it)
    except OSError as e:
        raise PvmpiError(f"cannot run {cmd[0]}: {e.strerror}") from None


if __name__ == "__main__":
    sys.exit(main())
