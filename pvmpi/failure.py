"""Ending the whole job from one rank: print once, flush, ``MPI_Abort``.

Before the time loop every rank reaches the same verdict and exits together
(``cli.collective_exit``). Inside it, a failing rank cannot ask the others:
they wait in their own collectives and would wait forever. So the failing rank
prints its message and aborts the job itself.

"Printed once": when every rank fails alike (the usual case: the same bad file
read everywhere), rank 0 prints at once and its abort ends the others while
they are still waiting their grace period, so the message appears once. A rank
other than 0 that fails alone prints after the grace period.

Exit status: 2 for a user error (:class:`~pvmpi.errors.PvmpiError`), 1 for an
internal error, whose traceback is printed.
"""
import errno
import os
import sys
import time
import traceback

from .errors import PvmpiError

USER_ERROR = 2
INTERNAL_ERROR = 1
#: how long a failing rank other than 0 waits before printing (seconds, scaled up to 2x by rank)
GRACE_S = 1.0
#: how long the failing rank waits after printing, before MPI_Abort, for the launcher to forward it
FORWARD_S = 0.3


def fail(message, code=USER_ERROR):
    """Print ``pvmpi: error: <message>`` on stderr (stdout flushed first); returns the exit status ``code``."""
    sys.stdout.flush()
    print(f"pvmpi: error: {message}", file=sys.stderr, flush=True)
    return code


def quiet_fail(message, code=USER_ERROR):
    """:func:`fail` where stdout may be closed already (a pipe whose reader left): nothing more
    goes to it, the one line goes to stderr."""
    _stdout_to_devnull()
    print(f"pvmpi: error: {message}", file=sys.stderr, flush=True)
    return code


_SEEN = set()  # warning texts this process has shown or held back
_HELD = []  # texts another rank than 0 saw: rank 0 prints them at the end of the run (print_held)


def warnings_as_pvmpi(rank):
    """Warnings from here on print as ``pvmpi: warning: <message>`` on rank 0 alone, each text once
    (not Python's form with pvmpi's source line, once per rank); the other ranks hold theirs back
    for :func:`take_held`, so a warning only they see (an image only they read) is not lost."""
    import warnings

    def show(message, category, filename, lineno, file=None, line=None):
        text = str(message)
        if text in _SEEN:
            return
        _SEEN.add(text)
        if rank in (None, 0):
            print_warning(text)
        else:
            _HELD.append(text)

    warnings.showwarning = show
    warnings.simplefilter("always", UserWarning)  # show() keeps each text once; other kinds as Python


def print_warning(text):
    """``pvmpi: warning: <text>`` on stderr (nothing if stderr is gone)."""
    try:
        print(f"pvmpi: warning: {text}", file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def take_held():
    """The warnings this rank held back since the last call (see :func:`warnings_as_pvmpi`)."""
    held = list(_HELD)
    _HELD.clear()
    return held


def print_held(texts):
    """Rank 0: print the other ranks' held-back warnings it has not shown itself."""
    for text in texts:
        if text not in _SEEN:
            _SEEN.add(text)
            print_warning(text)


def guarded(parser, body, argv):
    """Parse argv and run body(args); a PvmpiError becomes pvmpi's one-line error and exit status."""
    args = parser.parse_args(argv)
    try:
        return body(args)
    except PvmpiError as e:
        return fail(e)


#: what the machine, not pvmpi, causes: a full disk or quota, a path that cannot be written or is
#: a file where a folder should be (and the reverse), a read-only file system, a failing device
MACHINE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR,
                  errno.EISDIR, errno.EEXIST, errno.ENOENT, errno.EIO, errno.ENOMEM, errno.EFBIG}


def as_user_error(exc):
    """The one-line error an exception the machine caused stands for (a full disk, an unwritable
    path, a closed output stream: the path and the system's words), else ``exc`` itself."""
    if isinstance(exc, BrokenPipeError):
        return PvmpiError("the output stream was closed (Broken pipe)", file="<stdout>")
    if isinstance(exc, MemoryError):
        return PvmpiError("out of memory: the network does not fit this process",
                          hint="python -m pvmpi CONFIG -n estimates the memory; use more processes")
    if isinstance(exc, OSError) and not isinstance(exc, PvmpiError) and exc.errno in MACHINE_ERRNOS:
        where = exc.filename if exc.filename is not None else None
        return PvmpiError(f"cannot write or read: {exc.strerror or exc}", file=where)
    return exc


def exit_code(exc):
    """Exit status for an exception: USER_ERROR for a PvmpiError, INTERNAL_ERROR for anything else."""
    return USER_ERROR if isinstance(exc, PvmpiError) else INTERNAL_ERROR


def error_text(exc, rank, debug=False):
    """What the failing rank prints: one line for a user error, the traceback for a bug."""
    if isinstance(exc, PvmpiError) and not debug:
        return f"pvmpi: error: {exc}"
    trace = "".join(traceback.format_exception(exc)).rstrip()
    if isinstance(exc, PvmpiError):
        return f"{trace}\npvmpi: error: {exc}"
    return f"{trace}\npvmpi: internal error on rank {rank} (a bug: please report it with the traceback above)"


def abort_job(exc, debug=False):
    """Print `exc` once for the whole job and end every rank; returns only without MPI (the exit status)."""
    from .parallel import job

    exc = as_user_error(exc)
    code = exit_code(exc)
    if not job.started():
        _print(error_text(exc, 0, debug))
        return code
    everyone = job.Job()
    rank, size = everyone.rank, everyone.size
    if size > 1 and rank != 0:
        time.sleep(GRACE_S * (1 + rank / size))
    _print(error_text(exc, rank, debug))
    if size == 1:
        job.finish(code)
    time.sleep(FORWARD_S)  # the launcher forwards our stderr asynchronously; Abort would cut it off
    _silence_stderr()  # MPICH adds its own "Abort(2) on node ..." line: the message stays one line
    everyone.abort(code)


def _print(text):
    try:
        sys.stdout.flush()
    except (OSError, ValueError):  # stdout closed by its reader: nothing more goes there
        _stdout_to_devnull()
    print(text, file=sys.stderr, flush=True)


def _stdout_to_devnull():
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _silence_stderr():
    sys.stderr.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
