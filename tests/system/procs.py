"""Finding an MPI job's rank processes (to signal or kill one of them in a test)."""
from pathlib import Path


def processes():
    """(pid, command line) of every process, from /proc."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                yield int(entry.name), (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue


def ranks_of(marker, launcher, exclude=()):
    """PIDs of the Python ranks whose command line mentions `marker` (not the launcher itself)."""
    return [pid for pid, cmd in processes() if "mpi4py" in cmd and str(marker) in cmd
            and not cmd.startswith(str(launcher)) and pid not in exclude]
