"""The job: every process the launcher started, the small collectives over all of them, and how
the job ends (together, or from one rank that cannot tell the others).

With :class:`~pvmpi.parallel.comm.Comms` (one run's communicators) this is
the only place that talks MPI; the rest of pvmpi passes a :class:`Job` or a
Comms around.
"""
import os
import sys
import time

import numpy as np


def world():
    """The communicator of every process of the job (a run's default)."""
    from mpi4py import MPI

    return MPI.COMM_WORLD


def one_process():
    """A communicator of this process alone (a one-rank reference run, a dry run)."""
    from mpi4py import MPI

    return MPI.COMM_SELF


def started():
    """Whether MPI is running in this process (mpi4py imported and MPI initialised, not finalised)."""
    mpi = sys.modules.get("mpi4py.MPI")
    return mpi is not None and mpi.Is_initialized() and not mpi.Is_finalized()


def finish(code):
    """Every rank reached the same verdict: finish MPI cleanly and exit with ``code``.

    (A plain non-zero exit under ``python -m mpi4py`` would call MPI_Abort and
    add a line per rank to the one error message.)
    """
    from mpi4py import MPI

    sys.stdout.flush()
    sys.stderr.flush()
    if started():
        MPI.Finalize()
    os._exit(code)


def abort(code):
    """End every rank of the job from this one (it cannot ask the others); never returns."""
    from mpi4py import MPI

    MPI.COMM_WORLD.Abort(code)
    os._exit(code)  # not reached


def available_memory():
    """Bytes this node can still give processes (Linux's MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def ranks_on_this_node():
    """Processes of the job on this node, as the launcher says (1 when run alone)."""
    for name in ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE", "SLURM_NTASKS_PER_NODE"):
        v = os.environ.get(name, "")
        if v.isdigit() and int(v) > 0:
            return int(v)
    return 1


class Job:
    """Every process of the job (``comm``: default the world) and its small collectives."""

    def __init__(self, comm=None):
        self.comm = world() if comm is None else comm
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()

    def bcast(self, obj, root=0):
        """A picklable object from rank ``root`` on every rank."""
        return self.comm.bcast(obj, root=root)

    def gather(self, obj, root=0):
        """Every rank's picklable object, in rank order, on ``root`` (None elsewhere)."""
        return self.comm.gather(obj, root=root)

    def allreduce_max(self, arr):
        """Element-wise maximum of a float64 array over the job's ranks, as a new array."""
        from mpi4py import MPI

        src = np.ascontiguousarray(arr, dtype=np.float64)
        out = np.empty_like(src)
        self.comm.Allreduce(src, out, op=MPI.MAX)
        return out

    def idle_barrier(self, poll_s=0.005):
        """A barrier that sleeps instead of busy-polling, leaving the cores to the ranks still working."""
        req = self.comm.Ibarrier()
        while not req.Test():
            time.sleep(poll_s)

    def barrier(self):
        """Wait for every rank of the job."""
        self.comm.Barrier()

    def abort(self, code):
        """End every rank of the job from this one; never returns."""
        self.comm.Abort(code)
        os._exit(code)  # not reached
