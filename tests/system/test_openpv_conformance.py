"""OpenPV's own system tests, run unmodified from a copy of their folders (shared/openpv-tests).

Each test passes as its README says: a Comparison layer (the network's result
minus OpenPV's certified one) stays zero, or the continued run's numbers
follow from the first run's checkpoint.
"""
import os
import shutil
import subprocess
import sys

from pathlib import Path

import numpy as np
import pytest

from pvmpi.io import pvp


def run_openpv_test(openpv_tests, tmp_path, test, params, *extra):
    work = tmp_path / test
    if not work.exists():
        shutil.copytree(openpv_tests / test, work)
    proc = subprocess.run([sys.executable, "-m", "pvmpi", f"input/{params}", "-q", *extra], cwd=work,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return work


def max_abs(path):
    data = pvp.read(path)
    return np.abs(data.values).max(), len(data.times)


@pytest.mark.parametrize("params, out", [("momentumTest.params", "momentumTest"),
                                         ("viscosityTest.params", "viscosityTest")])
def test_momentum_test(openpv_tests, tmp_path, params, out):
    """MomentumConn 'simple' and 'viscosity': weights after each update equal OpenPV's."""
    work = run_openpv_test(openpv_tests, tmp_path, "MomentumTest", params)
    worst, frames = max_abs(work / "output" / out / "Comparison.pvp")
    assert frames == 11 and worst == 0.0
    post = pvp.read(work / "output" / out / "Post.pvp").values
    assert post.max() > 0.7  # the weights really moved (0, 0.5, 0.75, ...)


def test_momentum_lca_test(openpv_tests, tmp_path):
    """MomentumLCALayer with adaptive time scales: reconstruction equals OpenPV's within 1e-4."""
    work = run_openpv_test(openpv_tests, tmp_path, "MomentumLCATest", "MomentumLCATest.params")
    worst, frames = max_abs(work / "output" / "Comparison.pvp")
    assert frames == 10 and worst < 1e-6  # OpenPV's own threshold is 1e-4
    assert max_abs(work / "output" / "Reconstruction.pvp")[0] > 0.1


def test_initialize_from_checkpoint_dir_test(openpv_tests, tmp_path):
    """The second run's integrators start from the first run's final state (value n+1 for batch n)."""
    run_openpv_test(openpv_tests, tmp_path, "InitializeFromCheckpointDirTest", "BaseRun.params")
    work = run_openpv_test(openpv_tests, tmp_path, "InitializeFromCheckpointDirTest",
                           "InitializeFromCheckpointDirTest.params")
    base = pvp.read(work / "output-BaseRun" / "Output.pvp")
    cont = pvp.read(work / "output-InitializeFromCheckpointDir" / "Output.pvp")
    rate = np.arange(1, 5, dtype=np.float32)  # input frame n holds n + 1 everywhere
    np.testing.assert_array_equal(base.values[-1, :, 0, 0, 0], 10 * rate)
    np.testing.assert_array_equal(cont.times, np.arange(11))
    for k, t in enumerate(cont.times):
        np.testing.assert_array_equal(cont.values[k], np.broadcast_to(((10 + t) * rate)[:, None, None, None],
                                                                      cont.values[k].shape))


@pytest.mark.parametrize("params", ["ImageLayerSystemTest.params", "PvpLayerSystemTest.params"])
def test_input_system_test(openpv_tests, tmp_path, params):
    """Image and pvp inputs reach the layer and its border correctly (non-shared 3x3 weights)."""
    work = tmp_path / "InputSystemTest"
    shutil.copytree(openpv_tests / "InputSystemTest", work)
    proc = subprocess.run([sys.executable, "-m", "pvmpi", f"input/{params}", "-q"], cwd=work,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr  # the RequireAllZeroActivityProbe exits non-zero on failure
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("comparison")]
    assert len(lines) == 321 and all("nnz==0" in ln for ln in lines)


@pytest.mark.parametrize("ranks, layout", [(1, []), (4, ["--batchwidth", "2", "--rows", "2"])])
def test_reduce_across_batch_test(openpv_tests, tmp_path, ranks, layout):
    """Non-shared dW is summed over the batch, across batch processes too: W = the sum of the inputs."""
    import h5py

    work = tmp_path / "ReduceAcrossBatchTest"
    shutil.copytree(openpv_tests / "ReduceAcrossBatchTest", work)
    mpiexec = [str(Path(sys.executable).parent / "mpiexec"), "-n", str(ranks), sys.executable, "-m", "mpi4py"]
    proc = subprocess.run([*mpiexec, "-m", "pvmpi", "input/ReduceAcrossBatchTest.params", "-q", *layout],
                          cwd=work, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NUMBA_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    with h5py.File(work / "output" / "Last" / "checkpoint.h5") as h:
        W = h["connections/InputToOutput/W"][...]
    want = pvp.read(work / "input" / "suminputs.pvp").values[0, 0, :, :, 0]
    assert want.max() > 0
    np.testing.assert_array_equal(W[0, :, :, 0, 0, 0, 0], want)


PROBE_TESTS = {"L1NormProbeTest": ["InputL1Norm", "OutputL1Norm"],
               "L2NormProbeTest": ["InputL2Norm", "OutputL2Norm"],
               "StatsProbeTest": ["InputStats", "OutputAStats", "OutputVStats"]}
CONFIGS = {"1": 1, "4": 4, "4batch": 4, "8MtoN": 8}


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("test", PROBE_TESTS)
def test_probe_tests_under_every_layout(openpv_tests, tmp_path, test, config):
    """OpenPV's config files (1 process, 2x2, BatchWidth 4, 2x2x2): probe files equal the references."""
    work = tmp_path / test
    shutil.copytree(openpv_tests / test, work)
    ranks = CONFIGS[config]
    mpiexec = [str(Path(sys.executable).parent / "mpiexec"), "-n", str(ranks), sys.executable, "-m", "mpi4py"]
    proc = subprocess.run([*mpiexec, "-m", "pvmpi", f"input/config_{config}.txt", "-q"], cwd=work,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NUMBA_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    outputs = [p for p in work.rglob("*_batchElement_*.txt") if p.parent.name != "input"]
    assert len(outputs) == 4 * len(PROBE_TESTS[test])
    for out in outputs:
        reference = work / "input" / out.name
        assert out.read_text() == reference.read_text(), out
