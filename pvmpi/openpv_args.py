"""OpenPV's command line and ``Key:value`` config files, mapped onto pvmpi's options (facts §8).

An OpenPV job line runs unchanged::

    python -m pvmpi -p input/LCA.params -t 4 -rows 2 -columns 2 -batchwidth 2 -l run.log
    python -m pvmpi input/config_4.txt            # config-file mode

Both spellings end in the same :class:`argparse.Namespace` as pvmpi's own
options: ``-p FILE`` is the ``config`` positional, ``NumRows:2`` is ``--rows 2``
and so on. A config file is turned into the equivalent command-line tokens,
which are placed *before* the rest of the command line, so flags given after
the config file override it.

Two halves:

* pure parsing (:func:`parse_args`, :func:`read_config_file`,
  :func:`log_file_for_rank`): no MPI, no side effects, used by the tests;
* :func:`prepare`: what the options do before the network is read — log file,
  working directory, warnings, ``--require-return`` — called by ``cli.main``.

Paths follow OpenPV's order (``PV_Init`` reads the params file and opens the
log file, then ``HyPerCol::initialize`` changes directory): the params file,
the config file and the log file are relative to the directory the job was
started in; everything else (``-o``, ``-c``, every path inside the params file)
is relative to ``-w``. Unlike OpenPV, which changes directory on global rank 0
only, every rank changes directory.
"""
import argparse
import difflib
import os
import re
import sys

from .errors import PvmpiError

#: first arguments that are pvmpi configs, not OpenPV config files
CONFIG_SUFFIXES = (".yaml", ".yml", ".params", ".lua")

#: config-file key -> (value kind, command-line flag). Kinds: ``str``, ``int``,
#: ``unsigned``, ``bool``, ``threads`` (an int, or ``-``/empty for the default).
CONFIG_KEYS = {
    "ParamsFile": ("str", "-p"),
    "OutputPath": ("str", "-o"),
    "RandomSeed": ("unsigned", "-s"),
    "LogFile": ("str", "-l"),
    "WorkingDirectory": ("str", "-w"),
    "GPUDevices": ("str", "-d"),
    "NumThreads": ("threads", "-t"),
    "Restart": ("bool", "-r"),
    "CheckpointReadDirectory": ("str", "-c"),
    "NumRows": ("int", "-rows"),
    "NumColumns": ("int", "-columns"),
    "BatchWidth": ("int", "-batchwidth"),
    "DryRun": ("bool", "-n"),
    "ShuffleParamGroups": ("unsigned", "-shuffle"),
    "RequireReturn": ("bool", "--require-return"),
    "CheckpointCellNumRows": ("int", "--checkpoint-cell-rows"),
    "CheckpointCellNumColumns": ("int", "--checkpoint-cell-columns"),
    "CheckpointCellBatchDimension": ("int", "--checkpoint-cell-batch"),
}

TRUE_WORDS = ("true", "T", "1")
FALSE_WORDS = ("false", "F", "0")

#: the flags of the restart choice (mutually exclusive)
RESTART_FLAGS = ("-r", "--restart", "-c", "--checkpoint")
HELP_HINT = "python -m pvmpi --help"


class OpenPVArgumentParser(argparse.ArgumentParser):
    """argparse whose mistakes are a :class:`PvmpiError` (one line, exit 1), not usage + exit 2."""

    def error(self, message):
        """Raise the mistake as a PvmpiError pointing at --help."""
        raise PvmpiError(message, hint=f"see {HELP_HINT}")


# ---------------------------------------------------------------- value types


def threads_value(text):
    """``-t N``; ``-`` (or a bare ``-t``) is the default: cores on the node / ranks on the node."""
    if text in ("-", ""):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid thread count: {text!r} (an integer, or - for the default)")


def gpu_devices_value(text):
    """``-d 0,1,3``: GPU ids, comma-separated non-negative integers."""
    ids = []
    for part in text.split(","):
        part = part.strip()
        if not re.fullmatch(r"\d+", part):
            raise argparse.ArgumentTypeError(f"invalid GPU id list: {text!r} (comma-separated integers, e.g. 0,1)")
        ids.append(int(part))
    return ids


def checkpoint_dirs_value(text):
    """``-c DIR[:DIR...]``: OpenPV reads one directory per batch process of an I/O block.

    A pvmpi checkpoint is global (every batch element of every rank in one
    directory), so the list must name a single directory (repeats allowed).
    """
    dirs = [d for d in text.split(":")]
    if any(not d for d in dirs):
        raise argparse.ArgumentTypeError(f"empty directory in {text!r}")
    if len(set(dirs)) > 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} names {len(set(dirs))} directories: pvmpi checkpoints are global "
            "(one directory holds every batch process), give one checkpoint directory")
    return dirs[0]


# ---------------------------------------------------------------- the parser


def add_openpv_options(p):
    """The options OpenPV has and pvmpi's own spellings lack (``cli.build_parser`` calls this)."""
    p.add_argument("-p", dest="params_file", metavar="FILE",
                   help="params file (OpenPV's spelling of CONFIG; ParamsFile in a config file)")
    p.add_argument("-l", "--log-file", dest="log_file", metavar="FILE",
                   help="write stdout and stderr to FILE (rank 0) or FILE_<rank> (other ranks); "
                        "errors also stay on the terminal")
    p.add_argument("-w", "--working-directory", dest="working_directory", metavar="DIR",
                   help="change to DIR (every rank) after reading the params file; -o, -c and the "
                        "paths in the params file are relative to DIR")
    p.add_argument("-d", "--gpu-devices", dest="gpu_devices", type=gpu_devices_value, metavar="I,J,...",
                   help="GPU ids (cuda backend; ignored with a warning by the CPU backends)")
    p.add_argument("-shuffle", "--shuffle", dest="shuffle", type=int, metavar="SEED",
                   help="OpenPV's shuffling of params groups (testing): only 0 (off) is supported")
    p.add_argument("--require-return", dest="require_return", action="store_true",
                   help="print each rank's pid and wait for Enter on rank 0 before starting (debugger attach)")
    cells = p.add_argument_group("I/O blocks (OpenPV's CheckpointCell* config keys)",
                                 "accepted; pvmpi always writes one global file per layer and probe")
    cells.add_argument("--checkpoint-cell-rows", dest="checkpoint_cell_rows", type=int, metavar="N")
    cells.add_argument("--checkpoint-cell-columns", dest="checkpoint_cell_columns", type=int, metavar="N")
    cells.add_argument("--checkpoint-cell-batch", dest="checkpoint_cell_batch", type=int, metavar="N")


def is_config_file_argument(arg):
    """Config-file mode (OpenPV's PV_Init): the first argument does not start with ``-``.

    pvmpi's own configs (``.yaml``, ``.yml``, ``.params``, ``.lua``) stay the CONFIG positional.
    """
    return bool(arg) and not arg.startswith("-") and not arg.lower().endswith(CONFIG_SUFFIXES)


def read_config_file(path):
    """The ``Key:value`` lines of an OpenPV config file, as ``[(key, value, line_number)]``.

    ``#`` starts a comment line; blank lines are skipped; key and value are
    stripped of white space. Values are checked here (file and line in the
    message); an unknown key is an error with a did-you-mean hint.
    """
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise PvmpiError(f"cannot read config file: {e.strerror}", file=path) from None
    except UnicodeDecodeError:
        raise PvmpiError("not a text file of Key:value lines", file=path,
                         hint="a params file is given with -p FILE") from None
    entries = []
    seen = {}
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if ":" not in stripped:
            hint = "Key:value, e.g. NumRows:2"
            if not entries and ("=" in stripped or "{" in stripped or stripped.startswith("//")):
                hint = "this looks like a params file: run python -m pvmpi -p FILE"
            raise PvmpiError(f"line is not Key:value: {stripped!r}", file=path, line=number, hint=hint)
        key, value = (s.strip() for s in stripped.split(":", 1))
        if key not in CONFIG_KEYS:
            close = difflib.get_close_matches(key, CONFIG_KEYS, n=1)
            hint = f"did you mean '{close[0]}'?" if close else "known keys: " + ", ".join(CONFIG_KEYS)
            raise PvmpiError("unknown config key", file=path, line=number, param=key, hint=hint)
        if key in seen:
            raise PvmpiError(f"given twice (first on line {seen[key]})", file=path, line=number, param=key)
        seen[key] = number
        check_config_value(path, number, key, value)
        entries.append((key, value, number))
    restart = {k: (v, n) for k, v, n in entries if k in ("Restart", "CheckpointReadDirectory")}
    if restart.get("Restart", ("",))[0] in TRUE_WORDS and restart.get("CheckpointReadDirectory", ("",))[0]:
        raise PvmpiError("Restart:true and CheckpointReadDirectory both given", file=path,
                         line=restart["CheckpointReadDirectory"][1], param="CheckpointReadDirectory",
                         hint="use one of them: Restart continues from the newest checkpoint")
    return entries


def check_config_value(path, number, key, value):
    """Check a config-file value against its key's kind (bool, int, unsigned, threads, GPU
    list, checkpoint directories); an error names the file and line."""
    kind = CONFIG_KEYS[key][0]
    if kind == "bool" and value not in TRUE_WORDS + FALSE_WORDS:
        raise PvmpiError(f"not a boolean: {value!r}", file=path, line=number, param=key,
                         hint="true/T/1 or false/F/0")
    if kind in ("int", "unsigned", "threads"):
        if kind == "threads" and value in ("", "-"):
            return
        pattern = r"\d+" if kind == "unsigned" else r"[-+]?\d+"
        if not re.fullmatch(pattern, value):
            what = "a non-negative integer" if kind == "unsigned" else "an integer"
            if kind == "threads":
                what += ", or - for the default"
            raise PvmpiError(f"not {what}: {value!r}", file=path, line=number, param=key)
    if key == "GPUDevices" and value:
        try:
            gpu_devices_value(value)
        except argparse.ArgumentTypeError as e:
            raise PvmpiError(str(e), file=path, line=number, param=key) from None
    if key == "CheckpointReadDirectory" and value:
        try:
            checkpoint_dirs_value(value)
        except argparse.ArgumentTypeError as e:
            raise PvmpiError(str(e), file=path, line=number, param=key) from None


def config_to_argv(entries):
    """Command-line tokens equivalent to the config entries (empty values and OpenPV's "unset" zeros omitted)."""
    argv = []
    for key, value, _ in entries:
        kind, flag = CONFIG_KEYS[key]
        if kind == "bool":
            if value in TRUE_WORDS:
                argv.append(flag)
        elif kind == "threads":
            argv += [flag, value or "-"]
        elif value == "":
            continue
        elif key in ("RandomSeed", "ShuffleParamGroups") and int(value) == 0:
            continue  # OpenPV's default 0: not set
        else:
            argv += [flag, value]
    return argv


def expand_bare_threads(argv):
    """A bare ``-t`` (OpenPV: threads = cores / ranks on the node) becomes ``-t -``."""
    out = []
    for i, arg in enumerate(argv):
        out.append(arg)
        if arg == "-t":  # OpenPV's spelling only: --threads keeps requiring a value
            nxt = argv[i + 1] if i + 1 < len(argv) else None
            if nxt is None or not (nxt == "-" or re.fullmatch(r"[-+]?\d+", nxt)):
                out.append("-")
    return out


def translate_argv(argv):
    """OpenPV's command line -> the argv pvmpi's parser reads; returns ``(argv, config_file)``."""
    argv = list(argv)
    config_file = None
    if argv and is_config_file_argument(argv[0]):
        config_file = argv[0]
        rest = argv[1:]
        entries = read_config_file(config_file)
        if any(a in RESTART_FLAGS for a in rest):  # the command line's restart choice replaces the file's
            entries = [e for e in entries if e[0] not in ("Restart", "CheckpointReadDirectory")]
        argv = config_to_argv(entries) + rest
        for key, value, number in entries:  # ParamsFile relative to the directory of the job, as OpenPV
            if key == "ParamsFile" and value and "-p" not in rest and not os.path.isfile(value):
                raise PvmpiError(f"file not found: {value} (looked in {os.getcwd()})",
                                 file=config_file, line=number, param=key,
                                 hint="paths are relative to the directory the job starts in, "
                                      "as in OpenPV")
    return expand_bare_threads(argv), config_file


def finish_args(args, config_file=None):
    """Checks and mappings that need all options at once; returns ``args``."""
    args.config_file = config_file
    if args.params_file is not None:
        if args.config is not None:
            raise PvmpiError(f"two params files: -p {args.params_file} and {args.config}",
                             hint="give the params file once")
        if not os.path.isfile(os.path.expanduser(args.params_file)):
            raise PvmpiError("params file not found", file=args.params_file, param="-p")
        args.config = os.path.expanduser(args.params_file)
    if args.config is None:
        where = f" ({config_file} has no ParamsFile)" if config_file else ""
        raise PvmpiError(f"no params file{where}",
                         hint="python -m pvmpi FILE.params|CONFIG.yaml [options], "
                              "python -m pvmpi -p FILE.params [options] or python -m pvmpi config.txt")
    if args.shuffle == 0:
        args.shuffle = None  # OpenPV: 0 is no shuffling
    if args.shuffle is not None:
        raise PvmpiError(f"-shuffle {args.shuffle}: shuffling params groups is not supported",
                         param="ShuffleParamGroups" if config_file else None,
                         hint="remove it: pvmpi keeps the params-file order, which decides the random "
                              "seeds as in OpenPV")
    for name in ("checkpoint_cell_rows", "checkpoint_cell_columns", "checkpoint_cell_batch"):
        if getattr(args, name) is not None and getattr(args, name) <= 0:
            setattr(args, name, None)  # OpenPV: <= 0 means the whole grid
    return args


def parse_args(argv, parser):
    """argv (OpenPV's or pvmpi's spelling, or a config file first) -> ``args``; raises PvmpiError."""
    argv, config_file = translate_argv(argv)
    args = parser.parse_args(argv)
    return finish_args(args, config_file)


def env_rank():
    """This process's global rank from the launcher's environment, without starting MPI (None if unknown)."""
    for name in ("PMI_RANK", "PMIX_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return None


# ---------------------------------------------------------------- side effects


def log_file_for_rank(path, rank):
    """OpenPV's per-rank log name (PV_Init::initLogFile): rank 0 writes ``path``; rank r ≠ 0 writes
    ``<dir>/<base>_<r><ext>`` — ``_<r>`` before the last dot of the file name, or at the end
    when the name has no dot."""
    if rank == 0:
        return path
    slash = path.rfind("/")
    dot = path.rfind(".")
    at = len(path) if dot == -1 or dot < slash else dot
    return f"{path[:at]}_{rank}{path[at:]}"


class Tee:
    """A text stream writing to several streams (stderr into the log and onto the terminal)."""

    def __init__(self, *streams):
        self.streams = streams

    def write(self, text):
        """Write to every stream, flushing each at once so nothing is lost if the job is aborted; a
        failed write (a full disk) names the file."""
        for s in self.streams:
            try:
                s.write(text)
                s.flush()
            except OSError as e:
                if e.filename is not None or not isinstance(getattr(s, "name", None), str):
                    raise
                raise OSError(e.errno, e.strerror, s.name) from None
        return len(text)

    def flush(self):
        """Flush every stream."""
        for s in self.streams:
            s.flush()

    def fileno(self):  # faulthandler and friends: the terminal
        """The terminal's descriptor (the last stream), for faulthandler and others writing to an fd."""
        return self.streams[-1].fileno()

    def isatty(self):
        """Not a terminal, since part of the output goes to the log file: progress prints lines, no bar."""
        return False

    def writable(self):
        """True: writes are accepted (some callers check before writing)."""
        return True

    @property
    def encoding(self):
        return self.streams[0].encoding


_log_stream = None


def open_log(path, rank):
    """Send this rank's stdout to its log file and its stderr to the log and the terminal.

    OpenPV sends everything, errors included, to the log only; pvmpi keeps a copy
    of stderr (errors, warnings) on the terminal so that a failed job says why
    where it was started. Output of C libraries (the MPI runtime) is not captured.
    """
    global _log_stream
    name = log_file_for_rank(path, rank)
    parent = os.path.dirname(name)
    try:
        if parent:
            os.makedirs(parent, exist_ok=True)
        stream = open(name, "w", buffering=1, encoding="utf-8")
    except OSError as e:
        raise PvmpiError(f"cannot write log file: {e.strerror}", file=name, param="-l") from None
    sys.stdout.flush()
    sys.stderr.flush()
    _log_stream = stream
    sys.stdout = Tee(stream)
    sys.stderr = Tee(stream, sys.stderr)
    return name


def warn(text):
    """Print ``pvmpi: warning: <text>`` on stderr."""
    print(f"pvmpi: warning: {text}", file=sys.stderr, flush=True)


def io_block_warning(args, layout):
    """One line when CheckpointCell* asks for I/O blocks smaller than the process grid (else None)."""
    cell = (args.checkpoint_cell_rows, args.checkpoint_cell_columns, args.checkpoint_cell_batch)
    grid = (layout.rows, layout.columns, layout.batch_width)
    if not any(c is not None and c < g for c, g in zip(cell, grid)):
        return None
    shown = "x".join(str(g if c is None else c) for c, g in zip(cell, grid))
    return (f"CheckpointCell (rows x columns x batch) {shown} is smaller than the "
            f"{'x'.join(map(str, grid))} process grid: pvmpi always writes one global file per layer "
            "and probe (OpenPV's block_col*row*elem* files merged), no block_* directories")


def prepare(args):
    """Do what the OpenPV options ask before the network is read (every rank calls it).

    Order as OpenPV: log file, then (paths to the params and log files made
    absolute) change of directory, then warnings and ``--require-return``.
    """
    cells = (args.checkpoint_cell_rows, args.checkpoint_cell_columns, args.checkpoint_cell_batch)
    has_cells = any(c is not None for c in cells)
    needs_mpi = args.log_file or args.require_return or args.gpu_devices or has_cells
    from .parallel.job import Job

    everyone = Job() if needs_mpi else None  # MPI starts only when an option needs it
    rank = everyone.rank if everyone is not None else 0
    if args.log_file:
        args.log_file = os.path.abspath(os.path.expanduser(args.log_file))
        open_log(args.log_file, rank)
    if args.working_directory:
        directory = os.path.expanduser(args.working_directory)
        args.config = os.path.abspath(args.config)
        try:
            os.chdir(directory)
        except OSError as e:
            raise PvmpiError(f"cannot change to working directory: {e.strerror}", file=directory,
                             param="-w") from None
    if rank == 0 and args.gpu_devices and getattr(args, "backend", None) != "cuda":
        warn(f"-d {','.join(map(str, args.gpu_devices))}: GPU ids are ignored by the {args.backend} "
             "backend (CPU)")
    if has_cells and rank == 0:
        from .parallel.decomposition import choose_layout

        try:
            layout = choose_layout(everyone.size, batch_width=args.batchwidth or None,
                                   rows=args.rows or None, columns=args.columns or None)
        except PvmpiError:
            layout = None  # the run reports the layout error itself
        text = io_block_warning(args, layout) if layout is not None else None
        if text:
            warn(text)
    if args.require_return:
        wait_for_return(everyone)
    return args


def wait_for_return(everyone):
    """OpenPV's --require-return: rank 0 waits for Enter (time to attach a debugger); all ranks wait."""
    import socket

    pids = everyone.gather((everyone.rank, socket.gethostname(), os.getpid()), root=0)
    if everyone.rank == 0:
        terminal = sys.__stdout__
        for rank, host, pid in pids:
            print(f"pvmpi: rank {rank}: pid {pid} on {host}", file=terminal)
        print("Hit enter to begin! ", end="", file=terminal, flush=True)
        sys.stdin.readline()
    everyone.barrier()
