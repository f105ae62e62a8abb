"""OpenPV's LCATest and GPULCATest networks on the cuda backend.

Without a GPU (CI) the cuda run uses Numba's CUDA simulator in a child
process (the simulator must be on before numba is imported). The simulator
runs every CUDA thread as a Python thread, so it runs LCATest cut to 8x4
pixels (V1 4x2x24, the 18x18 patches and their transpose unchanged) for 3
steps and must give the numba backend's outputs on the same cut network,
its state on the device the whole run. On a GPU machine
(``PVMPI_CUDA_TESTS=gpu``) the whole LCATest runs its 40 steps on the
device and must reproduce OpenPV's certified Reconstruction.

The command line does not offer ``--backend cuda`` yet, so the runs go
through :class:`pvmpi.network.column.Column` with ``get_backend(name)``.
"""
import importlib.util
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from pvmpi.io import pvp

MODE = os.environ.get("PVMPI_CUDA_TESTS")  # "gpu" on a GPU machine
HAVE_NUMBA_CUDA = importlib.util.find_spec("numba_cuda") is not None

RUN = """
import sys
sys.setswitchinterval(1e-4)  # the simulator's block manager polls its threads
from mpi4py import MPI
from pvmpi import load as load_model
from pvmpi.kernels import get_backend
from pvmpi.network.column import Column
from pvmpi.parallel.comm import Comms
from pvmpi.parallel.decomposition import Layout

params, backend, out, sets = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
model = load_model(params, ["column.checkpointWrite=false", *sets])
with Comms(Layout(1, 1, 1), MPI.COMM_SELF) as comms:
    column = Column(model, comms, get_backend(backend), output_path=out)
    failures = column.run()
print("FAILURES", failures)
print("STATE", *sorted({type(b).__name__ for la in column.layers.values() for b in (la.A, la.gsyn, *la.store)}))
"""

CUT = ["column.nx=8", "column.ny=4", "column.stopTime=3",
       # the cut network's Reconstruction is not OpenPV's: keep the comparison probe quiet
       "ComparisonTest.nnzThreshold=1e30"]


def run(work, backend, out, sets, simulator, params="input/LCATest.params"):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    if simulator:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    proc = subprocess.run([sys.executable, "-c", RUN, params, backend, out, *sets], cwd=work, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout


@pytest.fixture
def lcatest(openpv_tests, tmp_path):
    work = tmp_path / "LCATest"
    shutil.copytree(openpv_tests / "LCATest", work)
    return work


@pytest.mark.skipif(not HAVE_NUMBA_CUDA, reason="numba-cuda not installed (pip install -e '.[test]')")
def test_cut_lcatest_cuda_equals_numba(lcatest):
    run(lcatest, "numba", "out_numba", CUT, simulator=False)
    state = run(lcatest, "cuda", "out_cuda", CUT, simulator=MODE != "gpu").split("STATE", 1)[1].split()
    assert "ndarray" not in state, state  # the layers' state lived on the device
    for name in ("Reconstruction", "V1"):  # written every step
        want = pvp.read(lcatest / "out_numba" / f"{name}.pvp")
        got = pvp.read(lcatest / "out_cuda" / f"{name}.pvp")
        np.testing.assert_array_equal(got.times, want.times)
        scale = max(float(np.abs(want.values).max()), 1e-3)
        np.testing.assert_allclose(got.values, want.values, rtol=0, atol=1e-5 * scale, err_msg=name)
    recon = pvp.read(lcatest / "out_cuda" / "Reconstruction.pvp")
    assert recon.values.shape == (3, 1, 4, 8, 1) and np.abs(recon.values).max() > 0
    energy = [(lcatest / d / "total_energy_batchElement_0.txt").read_text().splitlines() for d in
              ("out_numba", "out_cuda")]
    e_numba, e_cuda = (np.array([float(l.split(",")[2]) for l in lines[1:]]) for lines in energy)
    np.testing.assert_allclose(e_cuda, e_numba, rtol=1e-5)


@pytest.mark.skipif(not HAVE_NUMBA_CUDA, reason="numba-cuda not installed (pip install -e '.[test]')")
def test_cut_gpulcatest_on_cuda(openpv_tests, tmp_path):
    """GPULCATest on the cuda backend: its updateGpu/receiveGpu column and its CPU column give the same
    Reconstruction (its own RequireAllZeroActivityProbe passes), and both equal the numba run's."""
    work = tmp_path / "GPULCATest"
    shutil.copytree(openpv_tests / "GPULCATest", work)
    params = "input/GPULCATest.params"
    # the saved V1 does not fit the cut layers: a constant V above threshold makes V1 active at once
    cut = ["column.nx=8", "column.ny=4", "column.stopTime=3",
           "V1CPU.InitVType=ConstantV", "V1CPU.valueV=0.05", "V1GPU.InitVType=ConstantV", "V1GPU.valueV=0.05"]
    run(work, "numba", "out_numba", cut, simulator=False, params=params)
    out = run(work, "cuda", "out_cuda", cut, simulator=MODE != "gpu", params=params)
    assert "FAILURES []" in out, out
    assert "ndarray" not in out.split("STATE", 1)[1].split()
    want = pvp.read(work / "out_numba" / "ReconstructionCPU.pvp")
    for name in ("ReconstructionCPU", "ReconstructionGPU"):
        got = pvp.read(work / "out_cuda" / f"{name}.pvp")
        assert got.values.shape == (3, 1, 4, 8, 1) and np.abs(got.values).max() > 0
        scale = float(np.abs(want.values).max())
        np.testing.assert_allclose(got.values, want.values, rtol=0, atol=1e-5 * scale, err_msg=name)


@pytest.mark.skipif(MODE != "gpu", reason="needs a GPU (PVMPI_CUDA_TESTS=gpu)")
def test_lcatest_matches_openpv_on_gpu(lcatest):
    out = run(lcatest, "cuda", "output", [], simulator=False)
    assert "FAILURES []" in out, out
    recon = pvp.read(lcatest / "output" / "Reconstruction.pvp")
    correct = pvp.read(lcatest / "input" / "correct.pvp")
    assert recon.values.shape == correct.values.shape == (40, 1, 64, 128, 1)
    err = np.abs(recon.values - correct.values).reshape(40, -1).max(axis=1)
    print("max |Reconstruction - correct| per step:", err)
    assert err.max() < 1e-6, err
