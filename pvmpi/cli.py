"""``python -m pvmpi CONFIG [options]``: run a network; one clear error line on failure.

Every rank parses the same config, so a bad config is detected by every rank
alike and printed once by rank 0. Errors while building the network are
gathered collectively; an error inside the time loop aborts the whole job
rather than leaving other ranks waiting in a collective forever
(:mod:`pvmpi.failure`). Exit status: 2 for a user error, 1 for a bug.
"""
import os
import sys

from . import __version__
from .errors import PvmpiError
from .failure import USER_ERROR, abort_job, as_user_error, fail, quiet_fail, warnings_as_pvmpi
from .simulation import BACKENDS


def build_parser():
    """pvmpi's command line, OpenPV's flags included (-p, -rows, -columns, -batchwidth, -l, ...)."""
    from .openpv_args import OpenPVArgumentParser, add_openpv_options, checkpoint_dirs_value, threads_value

    p = OpenPVArgumentParser(
        prog="python -m pvmpi",
        description="Run an OpenPV-style network (YAML config or .params file) with a batch dimension over "
                    "MPI. OpenPV's command line works too: -p FILE.params [flags], or a Key:value config "
                    "file as the first argument (flags after it override it).",
        epilog="subcommands (each with --help): " + ", ".join(f"python -m pvmpi {name}" for name in SUBCOMMANDS)
               + "; python -m pvmpi bench scaling, bench model")
    p.add_argument("config", nargs="?", help="YAML config or OpenPV .params file (or -p FILE)")
    p.add_argument("--version", action="version", version=f"pvmpi {__version__}")
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
                              "(or lastCheckpointDir), passing over damaged ones; with none, start at t = 0 only if "
                              "there are no outputs yet")
    restart.add_argument("-c", "--checkpoint", metavar="DIR", type=checkpoint_dirs_value,
                         help="continue from this checkpoint directory")
    p.add_argument("--overwrite", action="store_true",
                   help="allow writing into an output directory that holds another run's files")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    add_openpv_options(p)
    return p


INTERRUPTED = 130  # the shell's status of a command ended by Ctrl-C
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

        try:
            return importlib.import_module(SUBCOMMANDS[argv[0]]).main(argv[1:])
        except (OSError, MemoryError) as e:  # the machine's: one line, no traceback
            error = as_user_error(e)
            if error is e or "--debug" in argv:
                raise
            return quiet_fail(error)
    from .openpv_args import env_rank, parse_args, prepare

    warnings_as_pvmpi(env_rank())
    try:  # OpenPV's spellings and config files too; -l/-w/-d/--require-return act here
        args = prepare(parse_args(argv, build_parser()))
    except PvmpiError as e:
        if "--debug" in argv:
            raise
        return fail(e) if env_rank() in (None, 0) else USER_ERROR
    set_threads(args.threads)
    try:
        return run(args)
    except KeyboardInterrupt:  # a second Ctrl-C: no checkpoint, no traceback
        quiet_fail("interrupted (a second Ctrl-C: no checkpoint of this step)")
        return INTERRUPTED
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
    from .parallel.job import Job
    from .simulation import load_sweep

    SIGNALS.install()  # a SIGUSR2/SIGTERM during start-up still ends in a checkpoint
    rank = Job().rank
    try:
        models = load_sweep(args.config, args.set, args.output_path)
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
        status = max(status, run_model(model, args))
    return status


def run_model(model, args):
    """Run one model to stopTime (one member of a sweep) through :class:`~pvmpi.simulation.Simulation`;
    collective. Returns the exit status."""
    from .parallel.job import Job
    from .progress import Progress
    from .simulation import Simulation

    rank = Job().rank
    try:
        sim = Simulation(model, backend=args.backend, output_path=args.output_path, seed=args.seed,
                         layout={"BatchWidth": args.batchwidth, "NumRows": args.rows,
                                 "NumColumns": args.columns},
                         checkpoint=args.checkpoint, restart=args.restart, overwrite=args.overwrite,
                         gpu_devices=getattr(args, "gpu_devices", None))
        with sim:  # an error closes every output file (as far as written) before the job ends
            column = sim.column
            column.progress = None if args.quiet else Progress(column)
            sim.run()
            failures = sim.close()
    except PvmpiError as e:
        if not getattr(e, "everywhere", False):
            return abort_job(e, args.debug)
        if args.debug and rank == 0:
            raise
        if rank == 0:
            fail(e)
        collective_exit(USER_ERROR)
    except Exception as e:  # one rank cannot tell the others: end the whole job
        return abort_job(e, args.debug)
    comms = sim.comms
    if column.stopped_by_signal and comms.is_root:
        where = column.checkpoints_written[-1] if column.checkpoints_written else "nowhere"
        print(f"pvmpi: stopped by a signal at t = {column.t:g} (step {column.step}); checkpoint: {where}",
              flush=True)
    if comms.is_root and not args.quiet:
        steps = column.step - column.start_step
        print(f"pvmpi: {steps} steps in {sim.elapsed:.2f} s ({steps / max(sim.elapsed, 1e-9):.1f} steps/s) on "
              f"{comms.size} rank(s), backend {args.backend}; outputs in {column.output_path}", flush=True)
    if failures:
        return fail("; ".join(failures), 1) if comms.is_root else 1  # a test probe failed
    from .network.checkpointing import SIGNALS

    return INTERRUPTED if SIGNALS.interrupted else 0


def collective_exit(code):
    """Every rank reached the same verdict: end the job cleanly with ``code`` (one error line,
    not one MPI_Abort message per rank)."""
    from .parallel.job import finish

    finish(code)
