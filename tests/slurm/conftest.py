"""A real SLURM for tests/slurm: the one on this machine (launch/local-slurm.sh), or skip.

The tests submit slurm/*.sbatch with ``sbatch`` and wait for them. They are
skipped, with the reason, when ``sbatch`` is not on PATH or the controller
does not answer — unless PVMPI_REQUIRE_SLURM=1 (as .ci/run sets), where that
is a failure. They only submit to the local test cluster (ClusterName
pvmpi-local, written by launch/local-slurm.sh) unless PVMPI_SLURM_ANY_CLUSTER=1,
so running the suite on a cluster's login node sends no jobs to its queue.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LOCAL_CLUSTER = "pvmpi-local"


def _unavailable():
    """Why SLURM cannot be used here (None: it can)."""
    if shutil.which("sbatch") is None:
        return "sbatch is not on PATH (install and start a local SLURM: bash launch/local-slurm.sh install; " \
               "bash launch/local-slurm.sh start — .ci/run does both)"
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError) as e:
        return f"scontrol ping failed: {e}"
    if "UP" not in ping.stdout:
        return "the SLURM controller does not answer (bash launch/local-slurm.sh start)"
    conf = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=20, check=False).stdout
    name = next((line.split("=", 1)[1].strip() for line in conf.splitlines()
                 if line.strip().startswith("ClusterName")), "?")
    if name != LOCAL_CLUSTER and os.environ.get("PVMPI_SLURM_ANY_CLUSTER") != "1":
        return f"SLURM cluster '{name}' is not the local test cluster '{LOCAL_CLUSTER}' " \
               "(set PVMPI_SLURM_ANY_CLUSTER=1 to submit the test jobs there anyway)"
    state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20, check=False).stdout
    if not any(s.startswith(("idle", "mixed", "allocated", "completing")) for s in state.split()):
        return f"no SLURM node takes jobs (sinfo: {' '.join(state.split()) or 'nothing'})"
    return None


@pytest.fixture(scope="session")
def slurm():
    """The number of CPUs of the (first) node; skips (or fails under PVMPI_REQUIRE_SLURM=1) without SLURM."""
    why = _unavailable()
    if why is not None:
        if os.environ.get("PVMPI_REQUIRE_SLURM") == "1":
            pytest.fail(f"PVMPI_REQUIRE_SLURM=1 but {why}")
        pytest.skip(why)
    cpus = subprocess.run(["sinfo", "-h", "-o", "%c"], capture_output=True, text=True, check=False).stdout.split()
    return int(cpus[0]) if cpus and cpus[0].isdigit() else 1


@pytest.fixture(scope="session")
def images(tmp_path_factory):
    """Demo images made as the brief says: python -m pvmpi.data.dead_leaves DIR --count 8 --size 64 --seed 1."""
    d = tmp_path_factory.mktemp("dead_leaves")
    subprocess.run([sys.executable, "-m", "pvmpi.data.dead_leaves", str(d), "--count", "8", "--size", "64",
                    "--seed", "1"], check=True, capture_output=True, timeout=120)
    return d / "images.txt"
