"""``python -m pvmpi CONFIG [options]``: run a network; one clear error line on failure.

Every rank parses the same config, so a bad config is detected by every rank
alike and printed once by rank 0. Errors while building the network are
gathered collectively; an error inside the time loop aborts the whole job
rather than leaving other ranks waiting in a collective forever
(:mod:`pvmpi.failure`). Exit status: 2 for a user error, 1 for a bug.
"""
import os
import sys
import time

from .errors import PvmpiError
from .failure import USER_ERROR, abort_job, install_fault

BACKENDS = ("numpy", "numba", "cuda")


def build_parser():
    """pvmpi's command line, OpenPV's flags included (-p, -rows, -columns, -batchwidth, -l, ...)."""
    from .openpv_args import OpenPVArgumentParser, add_openpv_options, checkpoint_dirs_value, threads_value

    p = OpenPVArgumentParser(
        prog="python -m pvmpi",
        description="Run an OpenPV-style network (YAML config or .params file) with a batch dimension over "
                    "MPI. OpenPV's command line works too: -p FILE.params [flags], or a Key:value config "
                    "file as the first argument (flags after it override it).",
        epilog="subcommands: " + ", ".join(f"python -m pvmpi {name} --help" for name in SUBCOMMANDS))
    p.add_argument("config", nargs="?", help="YAML config or OpenPV .params file (or -p FILE)")
    p.add_argument("-o", "--output-path", help="output directory (overrides HyPerCol outputPath)")
    p.add_argument("--backend", choices=BACKENDS, default="numba",
                   help="compute kernels: numba (default, compiled CPU), numpy (the reference) or cuda "
                        "(Numba CUDA, one GPU per rank)")
    p.add_argument("-t", "--threads", type=threads_value, metavar="N",
                   help="threads per rank (default, also bare -t or -t -: cores on the node / ranks on the node)")
    p.add_argument("-s", "--seed", type=int, help="random seed (overrides HyPerCol randomSeed; >= 10000000)")
    p.add_argument("-n", "--dry-run", action="store_true",
                   help="parse and validate, print the network summary, exit")
    p.add_argument("--set", action="append", default=[], metavar="GROUP.PARAM=VALUE",
                   help="override a parameter (repeatable), e.g. --set column.stopTime=400")
    p.add_argument("-batchwidth", "--batchwidth", type=int, dest="batchwidth",
                   help="MPI processes along the batch (OpenPV's BatchWidth)")
    p.add_argument("-rows", "--rows", type=int, dest="rows", help="MPI rows (OpenPV's NumRows)")
    p.add_argument("-columns", "--columns", type=int, dest="columns", help="MPI columns (NumColumns)")
    restart = p.add_mutually_exclusive_group()
    restart.add_argument("-r", "--restart", action="store_true",
                         help="continue from the newest complete checkpoint in checkpointWriteDir "
                              "(or lastCheckpointDir); start fresh if there is none")
    restart.add_argument("-c", "--checkpoint", metavar="DIR", type=checkpoint_dirs_value,
                         help="continue from this checkpoint directory")
    p.add_argument("--overwrite", action="store_true",
                   help="allow writing into an output directory that holds another run's files")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    add_openpv_options(p)
    return p


def load_model(path, assignments=()):
    """Parse and validate a config; raises PvmpiError."""
    from .model.config import apply_overrides, load_yaml
    from .model.network_model import build_model

    if str(path).endswith((".params", ".lua")):
        from .model.params import load_params

        raw = load_params(path).to_raw_config()
    else:
        raw = load_yaml(path)
    apply_overrides(raw, assignments)
    return build_model(raw)


def load_models(path, assignments=(), output_path=None):
    """The runs a config defines: its one model, or one per index of a params file's
    ParameterSweep, as OpenPV runs them in sequence (``output_path``, -o, is then the base of
    the sweep's ``paramsweep_<i>/`` folders). Raises PvmpiError."""
    from .model.config import apply_overrides
    from .model.network_model import build_model

    if not str(path).endswith(".params"):
        return [load_model(path, assignments)]
    from .model.params import load_params

    pf = load_params(path)
    if not pf.sweeps:
        return [load_model(path, assignments)]
    if output_path is not None:
        pf.groups[0].values["outputPath"] = str(output_path)
    models = []
    for raw in pf.sweep_configs():
        apply_overrides(raw, assignments)
        models.append(build_model(raw))
    return models


def fail(message, code=USER_ERROR):
    """Print ``pvmpi: error: <message>`` on stderr (stdout flushed first); returns the exit status ``code``."""
    sys.stdout.flush()
    print(f"pvmpi: error: {message}", file=sys.stderr, flush=True)
    return code


SUBCOMMANDS = {
    "bench": "pvmpi.bench.cli",
    "conformance": "pvmpi.conformance.suite",
    "convert": "pvmpi.model.convert",
    "describe": "pvmpi.model.reference",
    "pvp": "pvmpi.io.pvp_tools",
    "plot": "pvmpi.plot.cli",
}


def main(argv=None):
    """Entry point of ``python -m pvmpi``: hand a subcommand to its module, else parse (OpenPV's
    spellings too) and run; an exception in the run aborts every rank. Returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in SUBCOMMANDS:
        import importlib

        return importlib.import_module(SUBCOMMANDS[argv[0]]).main(argv[1:])
    from .openpv_args import env_rank, parse_args, prepare

    try:  # OpenPV's spellings and config files too; -l/-w/-d/--require-return act here
        args = prepare(parse_args(argv, build_parser()))
    except PvmpiError as e:
        if "--debug" in argv:
            raise
        return fail(e) if env_rank() in (None, 0) else USER_ERROR
    set_threads(args.threads)
    try:
        return run(args)
    except Exception as e:  # a bug, or a user error one rank met alone: end every rank
        return abort_job(e, args.debug)


def set_threads(threads):
    """Threads per rank, set before anything imports numba or numpy's BLAS (they read it once).

    Default: the cores this process may run on (its affinity mask, as SLURM and
    taskset set it) divided by the ranks on the node; BLAS follows, so ranks do
    not oversubscribe the node through numpy.
    """
    if threads is not None:
        if threads < 1:
            raise SystemExit(fail("-t/--threads must be at least 1"))
        os.environ["NUMBA_NUM_THREADS"] = str(threads)
    elif "NUMBA_NUM_THREADS" not in os.environ:
        local = int(os.environ.get("MPI_LOCALNRANKS", os.environ.get("OMPI_COMM_WORLD_LOCAL_SIZE", "1")))
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        os.environ["NUMBA_NUM_THREADS"] = str(max(1, cores // max(1, local)))
    for blas in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
        os.environ.setdefault(blas, os.environ["NUMBA_NUM_THREADS"])


def run(args):
    """Load the network, lay it out over the ranks, resume if asked, run to stopTime and report;
    collective. Returns the exit status (1 when a test probe failed)."""
    if args.dry_run:  # check config, layout, inputs; print size and memory; no run (pvmpi/dry_run.py)
        from .dry_run import dry_run
        return dry_run(args)
    from .network.checkpointing import SIGNALS

    SIGNALS.install()  # a SIGUSR2/SIGTERM during start-up still ends in a checkpoint
    from mpi4py import MPI

    world = MPI.COMM_WORLD
    rank = world.Get_rank()
    try:
        models = load_models(args.config, args.set, args.output_path)
    except PvmpiError as e:  # every rank read the same file: same error everywhere
        if args.debug and rank == 0:
            raise
        if rank == 0:
            fail(e)
        collective_exit(USER_ERROR)
    if len(models) > 1:  # a ParameterSweep: each run writes to its own outputPath
        args.output_path = None
    status = 0
    for model in models:
        status = max(status, run_model(model, args, world))
    return status


def run_model(model, args, world):
    """Run one model to stopTime (one member of a sweep); collective. Returns the exit status."""
    column, comms = setup(model, args, world)
    if column is None:
        collective_exit(USER_ERROR)
    try:
        resume = resume_path(model, args, comms)
    except PvmpiError as e:  # decided alike on every rank
        if comms.is_root:
            fail(e)
        collective_exit(USER_ERROR)
    from .progress import Progress

    progress = None if args.quiet else Progress(column)
    column.progress = progress
    install_fault(column, world.Get_rank())
    t0 = time.perf_counter()
    try:
        failures = column.run(resume)
    except Exception as e:  # one rank cannot tell the others: end the whole job
        return abort_job(e, args.debug)
    elapsed = time.perf_counter() - t0
    from .io.timers_report import write_timers

    write_timers(os.path.join(column.output_path, "timers.txt"), column, elapsed)  # collective
    comms.barrier()
    if column.stopped_by_signal and comms.is_root:
        where = column.checkpoints_written[-1] if column.checkpoints_written else "nowhere"
        print(f"pvmpi: stopped by a signal at t = {column.t:g} (step {column.step}); checkpoint: {where}",
              flush=True)
    if comms.is_root and not args.quiet:
        steps = column.step - column.start_step
        print(f"pvmpi: {steps} steps in {elapsed:.2f} s ({steps / max(elapsed, 1e-9):.1f} steps/s) on "
              f"{comms.size} rank(s), backend {args.backend}; outputs in {column.output_path}", flush=True)
    if failures:
        return fail("; ".join(failures), 1) if comms.is_root else 1  # a test probe failed
    return 0


def collective_exit(code):
    """Every rank reached the same verdict: finish MPI cleanly and exit with `code`.

    (A plain non-zero exit under ``python -m mpi4py`` would call MPI_Abort and
    add a line per rank to the one error message.)
    """
    from mpi4py import MPI

    sys.stdout.flush()
    sys.stderr.flush()
    MPI.Finalize()
    os._exit(code)


def resume_path(model, args, comms):
    """The checkpoint to continue from: -c DIR, or with -r the newest complete one (None: fresh start)."""
    from .io.checkpoint import is_complete, newest_checkpoint

    col = model.column
    if args.checkpoint:
        if not os.path.isdir(args.checkpoint):
            raise PvmpiError("no such checkpoint directory", file=args.checkpoint, param="-c")
        if not is_complete(args.checkpoint):
            raise PvmpiError("not a complete pvmpi checkpoint", file=args.checkpoint, param="-c")
        return args.checkpoint
    if not args.restart:
        return None
    if col["checkpointWrite"]:
        directory = col["checkpointWriteDir"]
        found = newest_checkpoint(directory)
    else:  # the final state of a run without checkpoints goes to lastCheckpointDir itself
        directory = col["lastCheckpointDir"]
        found = directory if directory and is_complete(directory) else None
    if found is None and comms.is_root:
        print(f"pvmpi: -r: no complete checkpoint in {directory}; starting at t = 0", file=sys.stderr,
              flush=True)
    return found


def setup(model, args, world):
    """Decomposition, communicators, backend and the column; errors decided collectively."""
    from .kernels import get_backend
    from .network.column import Column
    from .parallel.comm import Comms
    from .parallel.decomposition import choose_layout

    column = comms = None
    error = None
    try:
        par = model.parallel
        layout = choose_layout(world.Get_size(),  # -rows 0 is a mistake to report, not "not given"
                               batch_width=par.get("BatchWidth") if args.batchwidth is None else args.batchwidth,
                               rows=par.get("NumRows") if args.rows is None else args.rows,
                               columns=par.get("NumColumns") if args.columns is None else args.columns)
        comms = Comms(layout, world)
        if args.backend == "cuda":  # bind the GPU before the backend opens a CUDA context
            from .parallel.devices import select_device

            select_device(comms, getattr(args, "gpu_devices", None))
        kernels = get_backend(args.backend)
        column = Column(model, comms, kernels, output_path=args.output_path, seed=args.seed)
        if not args.dry_run and comms.is_root:
            prepare_output(model, column.output_path, args)
    except PvmpiError as e:
        if args.debug:
            raise
        error = str(e)
    errors = world.allgather(error)
    first = next((e for e in errors if e is not None), None)
    if first is not None:
        if world.Get_rank() == 0:
            fail(first)
        return None, comms
    return column, comms


def continues_folder(model, path):
    """Whether the run starts from a checkpoint inside its own output folder: a chain of runs
    in one folder, as OpenPV's restart tests make (each run's files replace the earlier's)."""
    init = model.column["initializeFromCheckpointDir"]
    if not init:
        return False
    here, inside = os.path.realpath(path), os.path.realpath(init)
    return os.path.commonpath([here, inside]) == here


def prepare_output(model, path, args):
    """Create outputPath; refuse to mix a new run's files into another run's (rank 0, before the verdict)."""
    restarting = bool(getattr(args, "restart", False) or getattr(args, "checkpoint", None))
    if os.path.isdir(path) and os.listdir(path) and not (args.overwrite or restarting):
        if not continues_folder(model, path):
            raise PvmpiError("the output directory already holds files of another run", file=path,
                             hint="--overwrite replaces them, -r continues that run, -o names another "
                                  "directory")
        print(f"pvmpi: {path}: continuing the run whose checkpoint initializeFromCheckpointDir names; "
              f"files this run writes replace that run's", file=sys.stderr, flush=True)
    try:
        os.makedirs(path, exist_ok=True)
        write_cleaned_params(model, path)
    except OSError as e:
        raise PvmpiError(f"cannot write the output directory: {e.strerror}", file=path) from None


def write_cleaned_params(model, output_path):
    """<outputPath>/<printParamsFilename>: every parameter with its value, as OpenPV writes it."""
    from .model.convert import model_to_params

    from .io.outputs import write_atomic

    name = model.column["printParamsFilename"]
    if name:
        write_atomic(os.path.join(output_path, name), model_to_params(model))


def summary(model, column):
    """The network as a table: what a dry run prints."""
    col = model.column
    lay = column.comms.layout
    lines = [f"pvmpi network from {model.path}",
             f"  column '{col.name}': {col['nx']}x{col['ny']}, nbatch {col['nbatch']}, dt {col['dt']:g}, "
             f"stopTime {col['stopTime']:g} ({column.final_step} steps), seed {column.initial_seed}",
             f"  layout: BatchWidth {lay.batch_width} x NumRows {lay.rows} x NumColumns {lay.columns}",
             "  layers:"]
    for layer in column.layers.values():
        t = layer.tile
        lines.append(f"    {layer.name:<24} {layer.group.cls:<16} {t.nx_global}x{t.ny_global}x{layer.nf:<4} "
                     f"phase {layer.phase} margin {layer.margin_x},{layer.margin_y}"
                     + (" sparse" if layer.group["sparseLayer"] else ""))
    lines.append("  connections:")
    for conn in column.connections.values():
        extra = ""
        if conn.has_weights:
            g = conn.group
            nxp, nyp = (g["nxp"], g["nyp"]) if "nxp" in g.params else (conn.xmap.patch, conn.ymap.patch)
            extra = f" {nyp}x{nxp} patches, {conn.num_kernels} kernels"
            if conn.plastic:
                extra += " (plastic)"
        lines.append(f"    {conn.name:<24} {conn.group.cls:<14} {conn.pre.name} -> {conn.post.name} "
                     f"ch {conn.channel}{extra}")
    lines.append("  probes:")
    for probe in column.probes.values():
        lines.append(f"    {probe.name:<24} {probe.group.cls}")
    return "\n".join(lines)
