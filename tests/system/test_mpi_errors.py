"""Impossible layouts end the job at once on every rank, with one message from rank 0."""
import subprocess
import sys
import time
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[2] / "configs" / "lca_demo.yaml"
MPIEXEC = Path(sys.executable).parent / "mpiexec"


def mpirun(n, *args):
    t0 = time.time()
    proc = subprocess.run([str(MPIEXEC), "-n", str(n), sys.executable, "-m", "mpi4py", "-m", "pvmpi",
                           str(DEMO), *args], capture_output=True, text=True, timeout=120)
    return proc, time.time() - t0


@pytest.mark.parametrize("n, args, message", [
    (3, ["-n"], "nx=64 is not divisible by NumColumns=3"),
    (2, ["-n", "--batchwidth", "2", "--set", "column.nbatch=3"], "nbatch=3 is not divisible by BatchWidth=2"),
    (3, ["-n", "--batchwidth", "2"], "uses 2 MPI processes, but 3 were started"),
])
def test_bad_layout_fails_fast_with_one_message(n, args, message):
    proc, seconds = mpirun(n, *args)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("pvmpi: error:")]
    assert len(errors) == 1 and message in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert seconds < 30
