"""Kernel launches and device allocations per step of the benchmark network on the cuda backend,
counted in Numba's CUDA simulator.

At small batches a GPU step is a few dozen small kernels, each paying a launch (5-10 us), so the
count is a budget: a change that adds a launch to the step fails here. A step allocates no device
memory: an allocation is a driver call, and freeing it later synchronises the device. The count does not depend
on the network's size, so the network is cut to toy sizes (every simulated thread is a Python thread).
"""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# LCA step of the benchmark network (Input, InputError, V1, InputRecon; 4 deliveries, 3 probes):
# gathers 2, rowptr 1, copies and V/A updates 5, channel sum 1, LCA update 1, active list 3,
# sums for the guard and probes 4 (their partials copied to the host without waiting)
BUDGET = 17
# Waits for the device (the host idle until the device has run everything launched, the device idle
# until the host launches again): the active list's length, and one read of the step's sums (the
# guard's); constants (e.g. channel coefficients) are copied only when they change.
WAITS = 2


@pytest.mark.skipif(importlib.util.find_spec("numba_cuda") is None,
                    reason="numba-cuda not installed (pip install -e '.[test]')")
def test_launches_and_waits_per_step_of_the_benchmark_network_stay_within_budget_and_allocate_nothing():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    cmd = [sys.executable, "-m", "pvmpi", "bench", str(REPO / "configs" / "lca_bench.yaml"), "--backend", "cuda",
           "--json", "--steps", "2", "--repeat", "1", "--warmup", "4",
           *[a for kv in ("column.nx=8", "column.ny=8", "column.nbatch=1", "V1.nf=8") for a in ("--set", kv)]]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert 10 <= result["kernel_launches_per_step"] <= BUDGET, result["kernel_launches_per_step"]
    assert result["device_allocations_per_step"] == 0, result["device_allocations_per_step"]
    assert result["host_waits_per_step"] == WAITS, result["host_waits_per_step"]
