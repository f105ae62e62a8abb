"""slurm/*.sbatch on a real SLURM: the CPU script, the requeue script (signal, checkpoint, requeue,
continue), a scaling array, and the GPU script (sbatch --test-only, bash -n).

Every job runs configs/lca_demo.yaml shrunk through the scripts' variables
(PVMPI_ARGS="--set ...") on dead-leaves images made by
``python -m pvmpi.data.dead_leaves DIR --count 8 --size 64 --seed 1``, on 2
ranks (batch split 2x1x1) of 1 thread. About a minute in all on 2 cores.
"""
import os
import re
import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from pvmpi.io import pvp

REPO = Path(__file__).resolve().parents[2]
SLURM_DIR = REPO / "slurm"
DEMO = REPO / "configs" / "lca_demo.yaml"
NBATCH, STOP = 8, 200
# what the demo's results depend on, pinned so that edits of the demo config do not change the test
TINY = [f"column.nbatch={NBATCH}", f"column.stopTime={STOP}", "column.progressInterval=50",
        "Input.displayPeriod=50", "V1.nf=16", "V1ToInputError.writeStep=50",
        "V1ToInputError.initialWriteTime=0"]
NOT_COMPARED = {"pv.params", "timers.txt"}  # the config as run (paths differ), wall-clock times


def pvmpi_args(images):
    return [f"--set={s}" for s in TINY + [f"Input.inputPath={images}"]]


def job_env(images, **variables):
    """The environment sbatch passes on (--export=ALL): the scripts' variables for the tiny run."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "SBATCH_", "SRUN_", "SALLOC_")) or k == "SLURM_CONF"}
    env.pop("NUMBA_NUM_THREADS", None)
    env.update(PVMPI_HOME=str(REPO), PYTHON=sys.executable, CONFIG=str(DEMO),
               PVMPI_ARGS=shlex.join(pvmpi_args(images)))
    env.update({k: str(v) for k, v in variables.items()})
    return env


def resources(cpus):
    """Two ranks of one thread; --overcommit when the node has a single CPU."""
    return ["--nodes=1", "--ntasks-per-node=2", "--cpus-per-task=1"] + (["--overcommit"] if cpus < 2 else [])


def sbatch_wait(script, cwd, env, *options, timeout=240):
    """``sbatch --wait`` -> (job id, exit status, sbatch's output)."""
    proc = subprocess.run(["sbatch", "--wait", "--parsable", *options, str(script)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)
    job = proc.stdout.strip().splitlines()[0].split(";")[0] if proc.stdout.strip() else None
    return job, proc.returncode, proc.stdout + proc.stderr


def log_of(cwd, name, job):
    path = Path(cwd) / f"{name}-{job}.out"
    return path.read_text() if path.exists() else f"(no log {path})"


def energies(run_dir):
    return {g: np.loadtxt(run_dir / f"energy_batchElement_{g}.txt", delimiter=",", skiprows=1)
            for g in range(NBATCH)}


def assert_same_outputs(a, b):
    """Every output file of run ``a`` is in run ``b`` with the same numbers (within float32 round-off)."""
    names = sorted(p.name for p in a.iterdir() if p.is_file() and p.name not in NOT_COMPARED)
    assert names == sorted(p.name for p in b.iterdir() if p.is_file() and p.name not in NOT_COMPARED)
    for name in names:
        pa, pb = a / name, b / name
        if pa.read_bytes() == pb.read_bytes():
            continue
        if name.endswith(".pvp"):
            da, db = pvp.read(pa), pvp.read(pb)
            np.testing.assert_allclose(db.values, da.values, rtol=1e-5, atol=1e-6, err_msg=name)
        elif name.endswith(".txt"):
            va = np.loadtxt(pa, delimiter=",", skiprows=1 if "energy" in name else 0)
            vb = np.loadtxt(pb, delimiter=",", skiprows=1 if "energy" in name else 0)
            np.testing.assert_allclose(vb, va, rtol=1e-5, atol=1e-6, err_msg=name)
        else:
            raise AssertionError(f"{name} differs")


def check_demo_outputs(run_dir):
    """The outputs a user looks at: energy per batch element at every step, the learnt dictionary."""
    e = energies(run_dir)
    for g, rows in e.items():
        assert rows.shape == (STOP, 3), (g, rows.shape)  # time, index, energy at t = 1..STOP
        np.testing.assert_array_equal(rows[:, 0], np.arange(1, STOP + 1))
        assert np.all(np.isfinite(rows[:, 2])) and np.all(rows[:, 2] > 0)
        assert rows[-1, 2] < rows[0, 2]  # LCA lowers the energy of every image
    w = pvp.read(run_dir / "V1ToInputError.pvp").values  # [frame, arbor, kernel, y, x, f]
    assert w.shape == (STOP // 50 + 1, 1, 16, 8, 8, 1)
    assert np.all(np.isfinite(w))
    norms = np.sqrt((w[-1, 0] ** 2).sum(axis=(1, 2, 3)))
    np.testing.assert_allclose(norms, 1, rtol=1e-4)  # normalizeL2, strength 1
    assert not np.allclose(w[-1], w[0])  # it learnt


@pytest.fixture(scope="module")
def cpu_job(slurm, images, tmp_path_factory):
    """slurm/cpu.sbatch run once with sbatch --wait: (job id, status, run directory, log)."""
    cwd = tmp_path_factory.mktemp("cpu")
    name = f"pvmpi-cpu-{uuid.uuid4().hex[:6]}"
    t0 = time.monotonic()
    job, rc, out = sbatch_wait(SLURM_DIR / "cpu.sbatch", cwd, job_env(images), f"--job-name={name}",
                               *resources(slurm))
    print(f"cpu.sbatch: job {job} exit {rc} after {time.monotonic() - t0:.1f} s")
    return job, rc, cwd / f"{name}-{job}", log_of(cwd, name, job) + out


def test_cpu_script_runs_pvmpi_and_writes_its_outputs(cpu_job):
    _, rc, run_dir, log = cpu_job
    assert rc == 0, log
    assert "srun --mpi=pmi2 --ntasks=2 --cpus-per-task=1" in log  # the command, printed
    assert "layout BatchWidth=2 NumRows=1 NumColumns=1" in log  # and the layout's reasons
    assert f"{STOP} steps" in log
    check_demo_outputs(run_dir)


def test_cpu_script_gives_what_pvmpi_launch_gives_outside_slurm(cpu_job, images, tmp_path):
    """The same run started by hand (python -m pvmpi.launch -n 2: the venv's mpiexec) writes the same."""
    _, rc, run_dir, log = cpu_job
    assert rc == 0, log
    here = tmp_path / "by-hand"
    env = job_env(images)
    proc = subprocess.run([sys.executable, "-m", "pvmpi.launch", "-n", "2", str(DEMO), "-o", str(here), "-q",
                           *pvmpi_args(images)], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "mpiexec -n 2" in proc.stdout
    assert_same_outputs(run_dir, here)


@pytest.mark.parametrize("launcher, forwarded", [("srun", "SIGUSR2"), ("mpiexec", "SIGTERM")])
def test_requeue_script_checkpoints_on_the_signal_and_continues(slurm, cpu_job, images, tmp_path, launcher,
                                                                forwarded):
    """USR2 to the batch shell (what --signal=B:USR2@120 sends): checkpoint, requeue, -r, same outputs.

    srun gets SIGUSR2 and forwards it to the ranks; MPICH's mpiexec (hydra, started by srun here)
    gets SIGTERM, the signal it forwards.
    """
    _, cpu_rc, reference, cpu_log = cpu_job
    assert cpu_rc == 0, cpu_log
    name = f"pvmpi-requeue-{uuid.uuid4().hex[:6]}"
    env = job_env(images, CHECKPOINT_STEPS=40, KEEP_CHECKPOINTS=10, LAUNCHER=launcher)
    t0 = time.monotonic()
    waiter = subprocess.Popen(["sbatch", "--wait", "--parsable", f"--job-name={name}", *resources(slurm),
                               str(SLURM_DIR / "requeue.sbatch")], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        job = None
        deadline = time.monotonic() + 60
        while job is None and time.monotonic() < deadline:
            q = subprocess.run(["squeue", "-h", "-n", name, "-o", "%i"], capture_output=True, text=True, check=False)
            job = q.stdout.split()[0] if q.stdout.split() else None
            time.sleep(0.2)
        assert job, "the job never showed up in squeue"
        checkpoints = tmp_path / f"{name}-{job}" / "checkpoints"
        deadline = time.monotonic() + 150
        while not (checkpoints / "Checkpoint040").is_dir() and time.monotonic() < deadline:
            assert waiter.poll() is None, "the job ended before its first scheduled checkpoint"
            time.sleep(0.1)
        assert (checkpoints / "Checkpoint040").is_dir(), "no checkpoint at step 40"
        # the time loop runs (pvmpi's handlers are in place): warn the batch shell as SLURM would
        subprocess.run(["scancel", "--signal=USR2", "--batch", job], check=True, timeout=30)
        out, err = waiter.communicate(timeout=240)
    finally:
        if waiter.poll() is None:
            waiter.kill()
    log = log_of(tmp_path, name, job)
    print(f"requeue.sbatch: job {job} exit {waiter.returncode} after {time.monotonic() - t0:.1f} s")
    assert waiter.returncode == 0, log + out + err
    assert "SIGUSR2 at" in log and f"({forwarded} to the launcher)" in log, log
    assert "stopped by a signal" in log, log
    assert ("srun --mpi=pmi2" if launcher == "srun" else "mpiexec -n 2") in log, log
    assert "requeueing job" in log and "piece 1" in log, log
    assert log.count("-r: no complete checkpoint") == 1, log  # only the first piece starts fresh
    steps = sorted(int(p.name[10:]) for p in checkpoints.iterdir())
    # the checkpoint written on the signal (it may fall on a multiple of 40 like the scheduled ones)
    stopped = int(re.search(r"stopped by a signal at t = \S+ \(step (\d+)\)", log).group(1))
    assert 40 <= stopped < STOP and stopped in steps, (stopped, steps)
    assert set(steps) == {s for s in range(0, STOP + 1, 40)} | {stopped}, steps
    assert steps[-1] == STOP, steps
    # continued from the checkpoint to the end: the outputs of the uninterrupted run
    assert_same_outputs(reference, tmp_path / f"{name}-{job}")


def test_scaling_array_runs_the_bench_per_task_and_merges(slurm, images, tmp_path):
    name = f"pvmpi-strong-{uuid.uuid4().hex[:6]}"
    env = job_env(images, RANK_COUNTS="1 2", STEPS=5, WARMUP=2, REPEAT=1)
    job, rc, out = sbatch_wait(SLURM_DIR / "scaling-strong.sbatch", tmp_path, env, f"--job-name={name}",
                               "--array=0-1", *resources(slurm))
    logs = "".join(log_of(tmp_path, name, f"{job}_{i}") for i in (0, 1))
    assert rc == 0, logs + out
    array_dir = tmp_path / f"{name}-{job}"
    csv = array_dir / "scaling.csv"
    deadline = time.monotonic() + 90  # the merge is a job of its own, after the array
    while not csv.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert csv.exists(), logs + (array_dir / "collect.out").read_text() if (array_dir / "collect.out").exists() \
        else logs
    import csv as csvmod

    rows = list(csvmod.DictReader(csv.open()))
    assert [(r["ranks"], r["batchwidth"], r["status"]) for r in rows] == [("1", "1", "ok"), ("2", "2", "ok")]
    assert float(rows[1]["speedup"]) > 0


def test_scripts_are_valid_bash_and_sbatch_accepts_them(slurm, tmp_path):
    """bash -n on every script; sbatch --test-only (nothing runs) on each, the GPU script included."""
    scripts = sorted(SLURM_DIR.glob("*.sbatch"))
    assert {s.name for s in scripts} >= {"cpu.sbatch", "gpu.sbatch", "requeue.sbatch", "scaling-weak.sbatch",
                                         "scaling-strong.sbatch"}
    for script in scripts:
        syntax = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
        assert syntax.returncode == 0, f"{script.name}: {syntax.stderr}"
        # one node-sized piece of each script's request (the scripts ask for more than this machine has)
        opts = ["--test-only", "--nodes=1", "--ntasks-per-node=1", "--cpus-per-task=1"]
        proc = subprocess.run(["sbatch", *opts, str(script)], cwd=tmp_path, capture_output=True, text=True,
                              timeout=60, check=False)
        assert proc.returncode == 0 and "to start at" in proc.stderr, f"{script.name}: {proc.stderr}"


def test_gpu_script_asks_for_one_gpu_per_rank(slurm, tmp_path):
    script = SLURM_DIR / "gpu.sbatch"
    text = script.read_text()
    assert "#SBATCH --gpus-per-task=1" in text and "BACKEND=${BACKEND:-cuda}" in text
    # the local test cluster has one (fake) GPU: one rank fits, two ranks (two GPUs) do not
    one = subprocess.run(["sbatch", "--test-only", "--ntasks-per-node=1", "--cpus-per-task=1", str(script)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert one.returncode == 0, one.stderr
    two = subprocess.run(["sbatch", "--test-only", "--ntasks-per-node=2", "--cpus-per-task=1", str(script)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert two.returncode != 0


def test_srun_starts_one_world_of_pvmpis_mpi(slurm, tmp_path):
    """srun --mpi=pmi2 with the pip MPICH: two ranks, one world (python -m pvmpi.launch --check)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_"))}
    proc = subprocess.run([sys.executable, "-m", "pvmpi.launch", "--check", "--launcher", "srun"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "srun --mpi=pmi2" in proc.stdout and "one world of 2" in proc.stdout
