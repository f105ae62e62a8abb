"""launch/gpu-check.sh, rehearsed in Numba's CUDA simulator: every step runs and summary.json holds the figures.

On a GPU machine the same script runs at full size (issue #24's prepared run); here its plumbing is
checked at toy sizes, so the few minutes of GPU time are not spent finding a typo.
"""
import importlib.util
import json
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.skipif(importlib.util.find_spec("numba_cuda") is None,
                    reason="numba-cuda not installed (pip install -e '.[test]')")
def test_gpu_check_rehearsed_in_the_simulator(tmp_path):
    proc = subprocess.run(["bash", str(REPO / "launch" / "gpu-check.sh"), str(tmp_path / "results"), "--simulator"],
                          capture_output=True, text=True, timeout=850)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = tmp_path / "results"
    summary = json.loads((results / "summary.json").read_text())
    assert summary["simulator"] and summary["ok"]
    steps = summary["steps"]
    assert list(steps) == ["device", "tests", "outputs", "bench cuda", "bench numba, 1 core",
                           "bench numba, all cores"]
    assert all(s["ok"] and s["seconds"] >= 0 for s in steps.values()), steps
    assert steps["device"]["info"]["simulator"] is True
    assert " passed" in steps["tests"]["summary"] and " failed" not in steps["tests"]["summary"]
    for network in ("bench", "demo"):  # cuda's outputs against numba's, every file
        assert steps["outputs"][network]["agree"] and steps["outputs"][network]["files"] > 5, steps["outputs"]
        assert set(steps["outputs"][network]["worst_relative"]) >= {"pvp", "probe text"}
    figures = summary["figures"]
    assert set(figures) == {"1", "2"}  # JSON keys: the nbatch values swept
    for row in figures.values():
        assert row["cuda_ms_per_step"] > 0 and row["cuda_image_steps_per_s"] > 0
        assert row["launches_per_step"] >= 10  # counted at every launch (a step is ~20 kernels)
        assert 0 < row["launch_share"] < 1 and row["vs_one_core"] > 0 and row["vs_all_cores"] > 0
    assert summary["launch_us"] > 0
    for name in ("device", "tests", "run_bench_numba", "run_bench_cuda", "run_demo_numba", "run_demo_cuda",
                 "bench_cuda", "bench_numba_1_core", "bench_numba_all_cores", "launch_cost"):
        assert (results / f"{name}.log").is_file(), name
