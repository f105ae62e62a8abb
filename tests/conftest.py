"""Shared test fixtures: where OpenPV's own system-test data lives (see shared_data.py); CI's
record of the tests that passed in a clone alone (``PVMPI_PASSED_LOG``), which its later pass
beside ``../shared`` leaves out (``PVMPI_PASSED_ALONE``), so that each test runs once."""
import os
from pathlib import Path

import pytest
from shared_data import OPENPV_TESTS, SHARED_BENCH, require


@pytest.fixture(scope="session")
def openpv_tests():
    """Path of shared/openpv-tests (read-only; copy before running anything in it)."""
    return require(OPENPV_TESTS, "OpenPV test data", "PVMPI_OPENPV_TESTS")


@pytest.fixture(scope="session")
def shared_bench():
    """Path of OpenPV's benchmark folder (read-only)."""
    return require(SHARED_BENCH / "LCA_bench.params", "OpenPV's benchmark folder", "PVMPI_SHARED").parent


# Taken from the environment, so that a pytest a test starts (the GPU check's) neither writes nor reads them
PASSED_LOG = os.environ.pop("PVMPI_PASSED_LOG", None)
PASSED_ALONE = os.environ.pop("PVMPI_PASSED_ALONE", None)


def pytest_runtest_logreport(report):
    """With ``PVMPI_PASSED_LOG`` set, append the id of each test that passed to that file."""
    if PASSED_LOG and report.when == "call" and report.passed:
        with open(PASSED_LOG, "a") as f:
            f.write(report.nodeid + "\n")


def pytest_collection_modifyitems(config, items):
    """With ``PVMPI_PASSED_ALONE`` naming such a file, leave out the tests it lists: they passed
    without ``../shared``; the ones that skipped there (they need its files) run here."""
    if not PASSED_ALONE:
        return
    passed = set(Path(PASSED_ALONE).read_text().split("\n"))
    keep = [item for item in items if item.nodeid not in passed]
    if len(keep) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if item.nodeid in passed])
        items[:] = keep
