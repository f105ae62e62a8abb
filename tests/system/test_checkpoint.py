"""Checkpoint and restart: exact continuation, interrupted checkpoints, signals, another nbatch."""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from procs import ranks_of
from running import MPIEXEC, mpi_command

from pvmpi.data.dead_leaves import make_image_set
from pvmpi.io import pvp
from pvmpi.io.checkpoint import MANIFEST, STATE_FILE, is_complete, newest_checkpoint, state_file

DEMO = Path(__file__).resolve().parents[2] / "configs" / "lca_demo.yaml"


def pvmpi(*args, cwd=None, check=True):
    proc = subprocess.run([sys.executable, "-m", "pvmpi", *map(str, args), "-q"], capture_output=True,
                          text=True, timeout=600, cwd=cwd)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def files(root):
    """Every file but the timing report (OpenPV's restart tests leave out timers.txt too)."""
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*")
                  if p.is_file() and p.name != "timers.txt")


def assert_same_tree(a, b):
    assert files(a) == files(b)
    for rel in files(a):
        assert (Path(a) / rel).read_bytes() == (Path(b) / rel).read_bytes(), rel


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return make_image_set(tmp_path_factory.mktemp("images"), count=12, size=64, seed=5)


def demo_args(images, out, *extra):
    sets = ["column.nbatch=4", "column.stopTime=120", f"Input.inputPath={images}", "Input.displayPeriod=30",
            "V1.nf=16", "V1ToInputError.writeStep=30", "column.checkpointWrite=true",
            f"column.checkpointWriteDir={out}/checkpoints", "column.checkpointWriteStepInterval=40",
            "V1ToInputError.immediateWeightUpdate=false", *extra]
    args = [DEMO, "-o", out]
    for s in sets:
        args += ["--set", s]
    return args


def test_demo_continues_byte_identically(tmp_path, images):
    """Learning (momentum, delayed dW), sparse outputs, probes and timestamps all continue exactly."""
    ref, out = tmp_path / "ref", tmp_path / "run"
    pvmpi(*demo_args(images, out))
    assert [p.name for p in sorted((out / "checkpoints").iterdir())] == \
        ["Checkpoint000", "Checkpoint040", "Checkpoint080", "Checkpoint120"]
    shutil.copytree(out, ref)  # the same paths inside: checkpoints record the config
    for name in ("Checkpoint080", "Checkpoint120"):  # as if the job died after step 40
        shutil.rmtree(out / "checkpoints" / name)
    pvmpi(*demo_args(images, out), "-r")
    assert_same_tree(ref, out)


def test_restart_ignores_an_incomplete_checkpoint(tmp_path, images):
    out = tmp_path / "run"
    pvmpi(*demo_args(images, out))
    ck = out / "checkpoints"
    shutil.rmtree(ck / "Checkpoint120")
    # a write killed half-way leaves only the temporary name ...
    shutil.copytree(ck / "Checkpoint080", ck / "Checkpoint120.incomplete")
    # ... and a directory whose file was never marked complete is ignored too
    import h5py
    with h5py.File(state_file(ck / "Checkpoint080"), "r+") as h:
        h.attrs["complete"] = False
    assert not is_complete(ck / "Checkpoint080")
    assert newest_checkpoint(ck) == str(ck / "Checkpoint040")


def test_sigusr2_stops_with_a_checkpoint_and_r_finishes_the_run(tmp_path, images):
    ref, out = tmp_path / "ref", tmp_path / "run"
    pvmpi(*demo_args(images, ref, "column.stopTime=600"))
    args = [sys.executable, "-m", "pvmpi", *map(str, demo_args(images, out, "column.stopTime=600"))]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "checkpoints" / "Checkpoint040").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGUSR2)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "stopped by a signal" in stdout
    stopped = newest_checkpoint(out / "checkpoints")
    assert stopped is not None and int(Path(stopped).name[10:]) < 600
    pvmpi(*demo_args(images, out, "column.stopTime=600"), "-r")
    a = pvp.read(ref / "V1ToInputError.pvp")
    b = pvp.read(out / "V1ToInputError.pvp")
    np.testing.assert_array_equal(a.times, b.times)
    np.testing.assert_array_equal(a.values, b.values)


def test_restart_with_another_nbatch_repeats_batch_elements(tmp_path, images):
    out = tmp_path / "run"
    pvmpi(*demo_args(images, out))
    more = tmp_path / "more"
    proc = pvmpi(*demo_args(images, more, "column.nbatch=8", "column.stopTime=160"), "-c",
                 out / "checkpoints" / "Checkpoint120")
    assert "checkpoint has nbatch 4, the run 8" in proc.stderr
    assert f"its outputs go to {more / 'nbatch8'}, beside the earlier ones" in proc.stderr, proc.stderr
    beside = more / "nbatch8"
    # elements 4..7 continue elements 0..3, so their energies are identical to them
    for g in range(4):
        a = np.loadtxt(beside / f"energy_batchElement_{g}.txt", delimiter=",", skiprows=1)
        b = np.loadtxt(beside / f"energy_batchElement_{g + 4}.txt", delimiter=",", skiprows=1)
        np.testing.assert_array_equal(a[:, 0], np.arange(121, 161))
        np.testing.assert_array_equal(a[:, 2], b[:, 2])


def test_initialize_from_checkpoint_dir_loads_only_flagged_objects(tmp_path, images):
    out = tmp_path / "run"
    pvmpi(*demo_args(images, out))
    ck = out / "checkpoints" / "Checkpoint120"
    fresh = tmp_path / "fresh"
    pvmpi(*demo_args(images, fresh, f"column.initializeFromCheckpointDir={ck}",
                     "V1ToInputError.initializeFromCheckpointFlag=true", "column.stopTime=30"))
    learned = pvp.read(out / "V1ToInputError.pvp").values[-1]
    start = pvp.read(fresh / "V1ToInputError.pvp")
    assert start.times[0] == 0
    np.testing.assert_allclose(start.values[0], learned, atol=1e-6)  # the learned dictionary, renormalised


def test_sigusr2_to_one_rank_stops_every_rank(tmp_path, images):
    """A signal reaching a single MPI rank stops the whole job at one step, with a checkpoint."""
    out = tmp_path / "mpi"
    args = [*mpi_command(2, "-m", "pvmpi"),
            *map(str, demo_args(images, out, "column.stopTime=3000")), "-q"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "checkpoints" / "Checkpoint0040").exists() and time.time() < deadline:
        time.sleep(0.05)
    ranks = ranks_of(out, MPIEXEC, exclude=(proc.pid,))
    assert len(ranks) >= 2, ranks
    os.kill(max(ranks), signal.SIGUSR2)
    t0 = time.time()
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert time.time() - t0 < 30
    stopped = newest_checkpoint(out / "checkpoints")
    assert stopped is not None and 40 <= int(Path(stopped).name[10:]) < 3000


def test_initialize_from_an_openpv_checkpoint_directory(tmp_path, images):
    """initializeFromCheckpointDir also reads a checkpoint of OpenPV's files alone (<Layer>_V.pvp,
    <Conn>_W.pvp, timeinfo.bin ...), as OpenPV writes them."""
    out = tmp_path / "run"
    immediate = "V1ToInputError.immediateWeightUpdate=true"  # no dW pending at the checkpoint
    pvmpi(*demo_args(images, out, immediate))
    ck = out / "checkpoints" / "Checkpoint120"
    openpv = tmp_path / "openpv_ck"  # OpenPV's files alone, as OpenPV writes them
    shutil.copytree(ck, openpv)
    for name in (STATE_FILE, MANIFEST):
        (openpv / name).unlink()
    flags = ["V1.initializeFromCheckpointFlag=true", "V1ToInputError.initializeFromCheckpointFlag=true",
             "column.stopTime=30", immediate]
    a, b = tmp_path / "from_pvmpi", tmp_path / "from_openpv"
    pvmpi(*demo_args(images, a, f"column.initializeFromCheckpointDir={ck}", *flags))
    pvmpi(*demo_args(images, b, f"column.initializeFromCheckpointDir={openpv}", *flags))
    for name in ("V1ToInputError.pvp", "InputRecon.pvp"):
        x, y = pvp.read(a / name), pvp.read(b / name)
        np.testing.assert_array_equal(x.values, y.values)
    for g in range(4):
        assert (a / f"energy_batchElement_{g}.txt").read_text() == (b / f"energy_batchElement_{g}.txt").read_text()
