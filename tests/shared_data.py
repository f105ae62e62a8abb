"""Where the tests find files that live beside the repository, not in it: OpenPV's system tests
(``PVMPI_OPENPV_TESTS``, default ``../shared/openpv-tests``), OpenPV's own suite, tutorials and Lua
module (``PVMPI_OPENPV_SUITE``, default ``../shared/openpv/suite``) and OpenPV's benchmark folder
(``PVMPI_SHARED``/bench, default ``../shared/bench``). Without them a test skips with one line
saying what it needs; under CI (``CI`` set) their absence is a failure."""
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
OPENPV_TESTS = Path(os.environ.get("PVMPI_OPENPV_TESTS", REPO.parent / "shared" / "openpv-tests"))
SHARED_BENCH = Path(os.environ.get("PVMPI_SHARED", REPO.parent / "shared")) / "bench"
OPENPV_SUITE = Path(os.environ.get("PVMPI_OPENPV_SUITE", REPO.parent / "shared" / "openpv" / "suite"))


def params_files():
    """OpenPV's params files under OPENPV_TESTS and SHARED_BENCH, as (path, id) (none without them)."""
    found = [(p, f"openpv-tests/{p.relative_to(OPENPV_TESTS)}")
             for p in sorted(OPENPV_TESTS.glob("*/input/**/*.params"))]
    return found + [(p, f"bench/{p.name}") for p in sorted(SHARED_BENCH.glob("*.params"))]


def require(path, what, setting):
    """``path`` if it exists; else skip (fail under CI) with one line naming ``what`` and ``setting``."""
    path = Path(path)
    if path.exists():
        return path
    unavailable(f"{what} not found at {path} (set {setting})")


def unavailable(why):
    """Skip with ``why``; under CI, which always has what the tests need, fail instead."""
    if os.environ.get("CI"):
        pytest.fail(why)
    pytest.skip(why)
