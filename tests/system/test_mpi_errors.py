"""Ending an MPI job cleanly: impossible layouts (one message from rank 0), an exception on one rank
mid-run (one traceback, exit 1; a user error: one line, exit 2), a rank killed with SIGKILL (the job ends
within 30 s and -r resumes from the newest complete checkpoint)."""
import subprocess
import sys
import time
from pathlib import Path

import pytest
from procs import ranks_of
from running import MPIEXEC, mpi_command

DEMO = Path(__file__).resolve().parents[2] / "configs" / "lca_demo.yaml"


def mpirun(n, *args):
    t0 = time.time()
    proc = subprocess.run(mpi_command(n, "-m", "pvmpi", str(DEMO), *args), capture_output=True, text=True,
                          timeout=120)
    return proc, time.time() - t0


@pytest.mark.parametrize("n, args, message", [
    (3, ["-n"], "no layout of 3 rank(s) fits the network"),
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


def tiny_net(d, stop=100000, *sets, quiet=True):
    """The 8x8 network of test_bad_inputs in `d`, batch split over 2 ranks, with the given --set options."""
    from test_bad_inputs import NET_YAML, write_images

    write_images(d)
    (d / "net.yaml").write_text(NET_YAML)
    args = [str(d / "net.yaml"), "-o", "out", "-batchwidth", "2", "--set", f"column.stopTime={stop}"] + (["-q"] if quiet else [])
    for option in sets:
        args += ["--set", option]
    return args


def run_tiny(d, args, fault=None, ranks=2):
    """Run pvmpi on ``ranks`` ranks in ``d``; with ``fault`` (see faulty.py) one rank fails mid-run."""
    t0 = time.time()
    start = ["-m", "pvmpi"] if fault is None else [str(Path(__file__).with_name("faulty.py")), fault]
    proc = subprocess.run([str(MPIEXEC), "-n", str(ranks), sys.executable, *start, *args], cwd=d,
                          capture_output=True, text=True, timeout=60)  # not under mpi4py: the abort path
    return proc, time.time() - t0


@pytest.mark.parametrize("rank", ["1", "all"])
def test_an_exception_in_the_time_loop_aborts_the_job_with_one_traceback(tmp_path, rank):
    """A bug on one rank (or on all) mid-run: its traceback once, exit 1, no rank left in a collective."""
    proc, seconds = run_tiny(tmp_path, tiny_net(tmp_path), f"step=3,rank={rank}")
    assert proc.returncode == 1, proc.stderr
    err = proc.stderr
    assert err.count("Traceback (most recent call last)") == 1, err
    assert err.count("RuntimeError: injected fault at step 3") == 1, err
    who = "1" if rank == "1" else "0"
    assert err.strip().splitlines()[-1].startswith(f"pvmpi: internal error on rank {who} "), err
    assert "Abort(" not in err
    assert seconds < 10


def test_a_user_error_met_by_one_rank_mid_run_is_one_line(tmp_path):
    proc, seconds = run_tiny(tmp_path, tiny_net(tmp_path), "step=2,rank=1,kind=user")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == ["pvmpi: error: faulty.py: injected user error at step 2"]
    assert seconds < 10


def test_a_dead_rank_ends_the_whole_job_and_r_resumes(tmp_path):
    """SIGKILL to one rank: the launcher ends the others within 30 s; the newest complete checkpoint is
    intact and -r continues from it."""
    import os
    import signal

    from pvmpi.io.checkpoint import is_complete, newest_checkpoint

    checkpoints = ["column.checkpointWrite=true", "column.checkpointWriteDir=ck",
                   "column.checkpointWriteStepInterval=20", "column.deleteOlderCheckpoints=true",
                   "column.numCheckpointsKept=2"]
    args = [*mpi_command(2, "-m", "pvmpi"),
            *tiny_net(tmp_path, 100000, *checkpoints)]
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while newest_checkpoint(tmp_path / "ck") is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # well into the run, checkpoints being written and deleted
    ranks = ranks_of(tmp_path / "net.yaml", MPIEXEC, exclude=(proc.pid,))
    assert len(ranks) == 2, ranks
    os.kill(max(ranks), signal.SIGKILL)
    t0 = time.time()
    proc.communicate(timeout=60)
    seconds = time.time() - t0
    assert proc.returncode != 0
    assert seconds < 30
    newest = newest_checkpoint(tmp_path / "ck")
    assert newest is not None and is_complete(newest)
    step = int(Path(newest).name[len("Checkpoint"):])
    resumed, _ = run_tiny(tmp_path, tiny_net(tmp_path, step + 7, *checkpoints, quiet=False) + ["-r"])
    assert resumed.returncode == 0, resumed.stderr
    assert "pvmpi: 7 steps in" in resumed.stdout, resumed.stdout  # from the newest checkpoint on
