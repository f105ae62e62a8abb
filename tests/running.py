"""Running in a test: a network through :class:`pvmpi.Simulation`, as every user does; a command
under ``mpiexec`` (the one helper every test that starts ranks uses)."""
import subprocess
import sys
from pathlib import Path


def run_network(model, comm=None, layout=None, backend="numba", output_path=None, resume=None):
    """Run ``model`` to stopTime on ``comm`` (default: the world) in ``layout``, writing over
    ``output_path``; the finished column. A failed test probe raises PvmpiError."""
    from pvmpi import PvmpiError, Simulation

    with Simulation(model, comm, layout=layout, backend=backend, output_path=output_path,
                    checkpoint=resume, overwrite=True) as sim:
        sim.run()
        failures = sim.close()
    if failures:
        raise PvmpiError("; ".join(failures))
    return sim.column


MPIEXEC = Path(sys.executable).parent / "mpiexec"  # the launcher of the MPI mpi4py uses here


def mpi_command(n, *args):
    """``mpiexec -n n python -m mpi4py ARGS`` with this interpreter, as a list (``args``: a script
    and its arguments, or ``-m module ...``); ``python -m mpi4py`` ends every rank if one fails."""
    return [str(MPIEXEC), "-n", str(n), sys.executable, "-m", "mpi4py", *args]


def mpirun(n, *args, cwd=None, timeout=120, env=None):
    """Run :func:`mpi_command` to the end; the finished process (stdout and stderr as text)."""
    return subprocess.run(mpi_command(n, *args), cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env)
