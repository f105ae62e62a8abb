"""A dead rank under SLURM: slurm/cpu.sbatch runs 2 ranks; one is killed with SIGKILL mid-run and the
whole job ends within 30 s, leaving its newest checkpoint complete."""
import os
import shlex
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from test_sbatch import SLURM_DIR, job_env, resources

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "system"))
from procs import processes  # noqa: E402
from test_bad_inputs import NET_YAML, write_images  # noqa: E402


def job_state(job):
    """SLURM's JobState of `job` ('' once the controller forgot it)."""
    out = subprocess.run(["scontrol", "-o", "show", "job", job], capture_output=True, text=True,
                         check=False).stdout
    return next((w.split("=", 1)[1] for w in out.split() if w.startswith("JobState=")), "")


def rank_pids(config):
    """The Python ranks running `config` (not pvmpi.launch, not srun)."""
    return [pid for pid, cmd in processes() if str(config) in cmd and " -m pvmpi " in f"{cmd} "
            and "pvmpi.launch" not in cmd and not cmd.startswith("srun")]


def test_a_killed_rank_ends_the_slurm_job_within_30_s(slurm, tmp_path):
    from pvmpi.io.checkpoint import is_complete, newest_checkpoint

    write_images(tmp_path)
    config = tmp_path / "net.yaml"
    config.write_text(NET_YAML.replace("list.txt", str(tmp_path / "list.txt")))
    ck = tmp_path / "ck"
    args = ["-q", "--set", "column.stopTime=1000000", "--set", "column.checkpointWrite=true",
            "--set", f"column.checkpointWriteDir={ck}", "--set", "column.checkpointWriteStepInterval=50",
            "--set", "column.deleteOlderCheckpoints=true", "--set", "column.numCheckpointsKept=2"]
    env = job_env(None, CONFIG=config, PVMPI_ARGS=shlex.join(args))
    name = f"pvmpi-kill-{uuid.uuid4().hex[:6]}"
    proc = subprocess.run(["sbatch", "--parsable", f"--job-name={name}", "--time=00:05:00", *resources(slurm),
                           str(SLURM_DIR / "cpu.sbatch")], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    job = proc.stdout.strip().split(";")[0]
    try:
        deadline = time.monotonic() + 120
        while newest_checkpoint(ck) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        pids = rank_pids(config)
        assert newest_checkpoint(ck) is not None and len(pids) == 2, (pids, job_state(job))
        os.kill(max(pids), signal.SIGKILL)
        t0 = time.monotonic()
        while job_state(job) in ("RUNNING", "PENDING", "COMPLETING", "CONFIGURING") and time.monotonic() - t0 < 60:
            time.sleep(0.2)
        seconds = time.monotonic() - t0
        print(f"job {job}: SIGKILL of rank pid {max(pids)} -> job ended in {seconds:.1f} s ({job_state(job)})")
        assert seconds < 30, job_state(job)
        assert job_state(job) in ("FAILED", "CANCELLED", "NODE_FAIL", ""), job_state(job)
        assert not rank_pids(config)
        assert is_complete(newest_checkpoint(ck))
    finally:
        subprocess.run(["scancel", job], check=False)
