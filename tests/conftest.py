"""Shared test fixtures: where OpenPV's own system-test data lives (see shared_data.py)."""
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
