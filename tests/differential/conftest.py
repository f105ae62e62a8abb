"""OpenPV as the oracle: where its binary and its suite are, and whether a test may skip without them.

``PVMPI_OPENPV`` names a ``pvrun`` (default ``../shared/openpv/bin/pvrun``
beside the clone) and ``PVMPI_OPENPV_SUITE`` OpenPV's tests and tutorials
(default ``../shared/openpv/suite``). Without them the tests skip with one
line saying so; with ``PVMPI_REQUIRE_OPENPV=1`` (CI) they fail instead.
"""
import os
import subprocess
from pathlib import Path

import pytest
from shared_data import OPENPV_SUITE as SUITE
from shared_data import REPO

OPENPV = Path(os.environ.get("PVMPI_OPENPV", REPO.parent / "shared" / "openpv" / "bin" / "pvrun"))


def _unavailable(why):
    if os.environ.get("PVMPI_REQUIRE_OPENPV") == "1":
        pytest.fail(why)
    pytest.skip(why)


@pytest.fixture(scope="session")
def openpv():
    """The path of a working OpenPV ``pvrun`` (exported as PVMPI_OPENPV for pvmpi's harness)."""
    if not os.access(OPENPV, os.X_OK):
        _unavailable(f"no OpenPV binary at {OPENPV}: set PVMPI_OPENPV to a pvrun (OpenPV's driver run "
                     f"as one process; ../shared/openpv/README.md says how it is built)")
    probe = subprocess.run([str(OPENPV), "--help"], capture_output=True, text=True, timeout=60)
    if probe.returncode == 2 and "libopenmpi" in (probe.stdout + probe.stderr).lower():
        _unavailable(f"{OPENPV} needs Open MPI's runtime library: apt-get install -y libopenmpi3")
    os.environ["PVMPI_OPENPV"] = str(OPENPV)
    return str(OPENPV)


@pytest.fixture(scope="session")
def openpv_suite():
    """OpenPV's tests and tutorials (read-only)."""
    if not SUITE.is_dir():
        _unavailable(f"OpenPV's suite not found at {SUITE} (set PVMPI_OPENPV_SUITE)")
    return SUITE
