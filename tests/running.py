"""Running a network in a test: through :class:`pvmpi.Simulation`, as every user does."""


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


def mpirun(n, *args, cwd=None, timeout=120):
    """``mpiexec -n n python -m mpi4py ARGS`` with this interpreter; the finished process
    (stdout and stderr as text). ``args``: a script and its arguments, or ``-m module ...``."""
    import subprocess
    import sys
    from pathlib import Path

    mpiexec = Path(sys.executable).parent / "mpiexec"
    return subprocess.run([str(mpiexec), "-n", str(n), sys.executable, "-m", "mpi4py", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)
