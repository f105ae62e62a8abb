"""OpenPV's own tests and tutorials through OpenPV and through pvmpi: every file pvmpi runs agrees.

Every params file of OpenPV's suite is classified by pvmpi's conformance
harness (``python -m pvmpi conformance``). A file may be refused by pvmpi
(a class it does not implement yet, named), need a C++ class that the test
defines in its own sources, or fail in OpenPV itself; what pvmpi runs must
agree with OpenPV (``ORACLE_RTOL``), unless it is listed in DELIBERATE with
the reason, as docs/openpv-migration.md states it.
"""
import pytest

from pvmpi.conformance.suite import find_cases, run_suite

from .conftest import SUITE

# case name -> why pvmpi differs from OpenPV on purpose (docs/openpv-migration.md)
DELIBERATE = {}
# without the suite, one case stands for it, so the fixtures say why (or fail, in CI)
CASES = find_cases(SUITE) if SUITE.is_dir() else [None]


@pytest.fixture(scope="module")
def verdicts(openpv, openpv_suite):
    """Every case of the suite, run two at a time: {case name: Verdict}."""
    return {v.case.name: v for v in run_suite(openpv_suite, openpv, jobs=2)}


@pytest.mark.parametrize("case", CASES, ids=[c.name if c else "suite" for c in CASES])
def test_openpv_file_agrees_or_is_refused_clearly(verdicts, case):
    assert case is not None, "the suite vanished after collection"
    v = verdicts[case.name]
    if case.name in DELIBERATE:
        assert v.status == "differs", f"{case.name} agrees now: remove it from DELIBERATE"
        return
    assert v.status not in ("differs", "pvmpi fails"), f"{v.status}: {v.detail}"
