"""The GPU halo exchange (strips packed and unpacked by CUDA kernels, staged through the host)
equals the host exchange under mpiexec, in Numba's CUDA simulator (no GPU needed)."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from running import MPIEXEC

HERE = Path(__file__).resolve().parent


@pytest.mark.skipif(importlib.util.find_spec("numba_cuda") is None, reason="numba-cuda not installed")
@pytest.mark.parametrize("ranks", [2, 4])
def test_device_halo_equals_host_halo(ranks):
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", NUMBA_NUM_THREADS="1")
    proc = subprocess.run([str(MPIEXEC), "-n", str(ranks), sys.executable, "-m", "mpi4py",
                           str(HERE / "device_halo_check.py")], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and "device halo equal" in proc.stdout, proc.stdout + proc.stderr[-3000:]
