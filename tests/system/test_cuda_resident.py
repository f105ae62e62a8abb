"""With the cuda backend the engine's state stays on the device between steps (issue #6, item 1).

Without a GPU (CI) every run uses Numba's CUDA simulator in a child process
(:mod:`cuda_engine_child`, or the ranks of ``mpiexec``) on a tiny LCA
dictionary-learning network (the demo config cut to 8x8 images, V1
4x4x4): learning with momentum, a TransposeConn and a CloneConn, sparse V1,
probes, outputs and checkpoints. ``PVMPI_CUDA_TESTS=gpu`` runs the same on a
GPU.
"""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from running import MPIEXEC

from pvmpi.data.dead_leaves import make_image_set
from pvmpi.io import pvp

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
MODE = os.environ.get("PVMPI_CUDA_TESTS")  # "gpu" on a GPU machine

pytestmark = pytest.mark.skipif(importlib.util.find_spec("numba_cuda") is None,
                                reason="numba-cuda not installed (pip install -e '.[test]')")


def child_env(cuda):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in [env.get("PYTHONPATH")] if p])
    if cuda and MODE != "gpu":
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    return env


def child(*args, cuda):
    proc = subprocess.run([sys.executable, str(HERE / "cuda_engine_child.py"), *map(str, args)],
                          env=child_env(cuda), capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return make_image_set(tmp_path_factory.mktemp("images"), count=4, size=8, seed=5)


def test_steps_keep_state_on_the_device(images, tmp_path):
    """A step with no new frame, output, checkpoint or learning moves only a few small things: the
    per-batch time constants and channel coefficients in, the per-batch stats partials and the active
    count out. Never a layer buffer or the weights."""
    out = child("transfers", images, tmp_path / "out", cuda=True)
    report = json.loads(out.split("JSON", 1)[1])
    buffers = report["buffers"]
    assert all(kind != "ndarray" for _, kind in buffers.values()), buffers  # every buffer on the device
    smallest = min(n for n, _ in buffers.values())  # the weights
    smallest_layer = min(n for name, (n, _) in buffers.items() if not name.endswith(".W"))
    for step in report["steps"]:
        assert step, "a step read no stats at all?"
        big = [t for t in step if t[1] >= smallest]
        assert not big, f"whole buffers crossed in a plain step: {big}"
        assert sum(t[1] for t in step) < smallest_layer, step


def pvp_outputs(a, b, atol):
    names = sorted(p.name for p in Path(a).glob("*.pvp"))
    assert names == sorted(p.name for p in Path(b).glob("*.pvp")) and "V1ToInputError.pvp" in names
    for name in names:
        x, y = pvp.read(Path(a) / name), pvp.read(Path(b) / name)
        np.testing.assert_array_equal(x.times, y.times, err_msg=name)
        scale = max(1.0, float(np.abs(x.values).max()))
        np.testing.assert_allclose(y.values, x.values, rtol=0, atol=atol * scale, err_msg=name)


def test_cuda_run_and_restart_match_numba(images, tmp_path):
    """Outputs (learned weights, momentum, layers) of a cuda run equal the numba run's to float32
    round-off; continued from its step-4 checkpoint (-r), the cuda run writes the same outputs again."""
    numba, cuda, again = tmp_path / "numba", tmp_path / "cuda", tmp_path / "again"
    child("run", "numba", images, numba, cuda=False)
    child("run", "cuda", images, cuda, cuda=True)
    pvp_outputs(numba, cuda, atol=2e-6)
    shutil.copytree(cuda, again, ignore=shutil.ignore_patterns("checkpoints"))
    child("run", "cuda", images, again, cuda / "checkpoints" / "Checkpoint4", cuda=True)
    pvp_outputs(cuda, again, atol=0)
    for g in range(2):
        name = f"energy_batchElement_{g}.txt"
        assert (again / name).read_text() == (cuda / name).read_text()


def test_cuda_mpi_splits_equal_one_rank():
    """tests/mpi/test_cuda_layouts.py under mpiexec -n 2, the simulator in both ranks."""
    env = dict(child_env(cuda=True), PVMPI_CUDA_TESTS=MODE or "sim", NUMBA_NUM_THREADS="1")
    test = REPO / "tests" / "mpi" / "test_cuda_layouts.py"
    proc = subprocess.run([str(MPIEXEC), "-n", "2", sys.executable, "-m", "mpi4py", "-m", "pytest", "-q",
                           "-p", "no:cacheprovider", "--with-mpi", str(test)], cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    tail = (proc.stdout + proc.stderr)[-4000:]
    assert proc.returncode == 0 and "1 passed" in proc.stdout, tail
