"""OpenPV's own system tests, run unmodified from a copy of their folders (shared/openpv-tests).

Each test passes as its README says: a Comparison layer (the network's result
minus OpenPV's certified one) stays zero, or the continued run's numbers
follow from the first run's checkpoint.
"""
import shutil
import subprocess
import sys

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
