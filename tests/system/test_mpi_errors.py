"""Impossible layouts end the job at once on every rank, with one message from rank 0."""
import subprocess
import sys
import time
from pathlib import Path

import pytest
from procs import ranks_of

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


def test_a_dead_rank_ends_the_whole_job(tmp_path):
    """SIGKILL to one rank: the launcher ends the others; nothing waits in a collective forever."""
    import os
    import signal

    out = tmp_path / "out"
    args = [str(MPIEXEC), "-n", "2", sys.executable, "-m", "mpi4py", "-m", "pvmpi", str(DEMO), "-o", str(out),
            "-q", "--set", "column.stopTime=100000", "--set", "Input.inputPath=" + str(images_list(tmp_path))]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "energy_batchElement_0.txt").exists() and time.time() < deadline:
        time.sleep(0.1)
    ranks = ranks_of(out, MPIEXEC, exclude=(proc.pid,))
    assert len(ranks) == 2, ranks
    os.kill(max(ranks), signal.SIGKILL)
    t0 = time.time()
    proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert time.time() - t0 < 30


def images_list(tmp_path):
    from pvmpi.data.dead_leaves import make_image_set

    return make_image_set(tmp_path / "images", count=8, size=64, seed=1)
