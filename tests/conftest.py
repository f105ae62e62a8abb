"""Shared test fixtures: where OpenPV's own system-test data lives."""
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
OPENPV_TESTS = Path(os.environ.get("PVMPI_OPENPV_TESTS", REPO.parent / "shared" / "openpv-tests"))


@pytest.fixture(scope="session")
def openpv_tests():
    """Path of shared/openpv-tests (read-only; copy before running anything in it)."""
    if not OPENPV_TESTS.is_dir():
        why = f"OpenPV test data not found at {OPENPV_TESTS} (set PVMPI_OPENPV_TESTS)"
        if os.environ.get("CI"):  # CI always has it beside the clone: its absence is a failure there
            pytest.fail(why)
        pytest.skip(why)
    return OPENPV_TESTS
