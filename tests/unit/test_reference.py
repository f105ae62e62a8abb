"""The parameter reference in docs/ is generated from the schema and must be up to date."""
import subprocess
import sys
from pathlib import Path

from pvmpi.model import schema
from pvmpi.model.reference import describe, markdown_reference

DOC = Path(__file__).resolve().parents[2] / "docs" / "reference" / "parameters.md"


def test_generated_reference_is_up_to_date():
    assert DOC.read_text() == markdown_reference(), (
        "docs/reference/parameters.md is stale: regenerate it with "
        "`python -m pvmpi describe --markdown > docs/reference/parameters.md`")


def test_every_concrete_class_and_parameter_is_documented():
    text = markdown_reference()
    for spec in schema.concrete_classes():
        assert f"### {spec.name}\n" in text
        for name in schema.params_of(spec.name):
            assert f"| `{name}` |" in text
    assert all(p.doc for c in schema.CLASSES.values() for p in c.params), "every parameter needs a meaning"


def test_describe_in_the_terminal():
    text = describe("HyPerLCALayer")
    assert text.startswith("HyPerLCALayer (layer)") and "timeConstantTau" in text and "(from ANNLayer)" in text
    proc = subprocess.run([sys.executable, "-m", "pvmpi", "describe", "HyPerLCALayr"], capture_output=True,
                          text=True)
    assert proc.returncode == 1 and "did you mean 'HyPerLCALayer'" in proc.stderr
