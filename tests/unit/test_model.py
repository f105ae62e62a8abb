"""The model: YAML → validated network, with OpenPV's defaults and one clear error per mistake."""
import textwrap

import pytest

from pvmpi.errors import PvmpiError
from pvmpi.model.config import apply_overrides, parse_yaml
from pvmpi.model.network_model import build_model
from pvmpi.model.schema import FLT_MAX

BASE = """
column:
  class: HyPerCol
  nx: 16
  ny: 8
  nbatch: 2
  dt: 0.5
Input:
  class: PvpLayer
  inputPath: in.pvp
Error:
  class: HyPerLayer
V1:
  class: HyPerLCALayer
  nxScale: 0.5
  nyScale: 0.5
  nf: 4
  VThresh: 0.2
V1ToError:
  class: HyPerConn
  channelCode: -1
  nxp: 4
  nyp: 4
  weightInitType: UniformRandomWeight
  normalizeMethod: normalizeL2
  plasticityFlag: false
"""


def model_of(text, sets=()):
    raw = parse_yaml(textwrap.dedent(text), "net.yaml")
    apply_overrides(raw, sets)
    return build_model(raw)


def error_of(text, sets=()):
    with pytest.raises(PvmpiError) as info:
        model_of(text, sets)
    return str(info.value)


def test_defaults_are_openpvs():
    m = model_of(BASE)
    v1, err = m.group("V1"), m.group("Error")
    assert v1["AMin"] == 0.2  # AMin defaults to VThresh
    assert v1["AMax"] == FLT_MAX and v1["timeConstantTau"] == 1.0 and v1["selfInteract"] is True
    assert err["InitVType"] == "ConstantV" and err["valueV"] == -70.0
    assert err["writeStep"] == 0.5  # writeStep defaults to dt
    conn = m.group("V1ToError")
    assert conn["preLayerName"] == "V1" and conn["postLayerName"] == "Error"  # from 'AToB'
    assert conn["nfp"] == 1 and conn["sharedWeights"] is True and conn["normalizeDw"] is True
    assert m.layer_size("V1") == (8, 4, 4)
    assert [g.name for g in m.groups] == ["Input", "Error", "V1", "V1ToError"]


def test_infinity_spellings_and_exponents():
    m = model_of(BASE + "  \n", ["V1.AMax=-infinity", "V1.VWidth=1e-06", "Error.valueV=.inf"])
    assert m.group("V1")["AMax"] == -FLT_MAX
    assert m.group("V1")["VWidth"] == 1e-6
    assert m.group("Error")["valueV"] == FLT_MAX


@pytest.mark.parametrize("edit, expected", [
    (("V1:\n  class: HyPerLCALayer", "V1:\n  class: HyPerLCALayr"),
     "net.yaml:14: V1.class: unknown class 'HyPerLCALayr' (did you mean 'HyPerLCALayer'?)"),
    (("  VThresh: 0.2", "  VTresh: 0.2"),
     "net.yaml:18: V1.VTresh: unknown parameter for HyPerLCALayer (did you mean 'VThresh'?)"),
    (("  nf: 4", "  nf: four"), "net.yaml:17: V1.nf: must be an integer, not 'four'"),
    (("  nf: 4", "  nf: 4.5"), "net.yaml:17: V1.nf: must be an integer, not 4.5"),
    (("  weightInitType: UniformRandomWeight\n", ""),
     "V1ToError.weightInitType: required parameter of HyPerConn is missing"),
    (("  plasticityFlag: false", "  plasticityFlag: true"),
     "V1ToError.dWMax: required when plasticityFlag is true"),
    (("  nxScale: 0.5", "  nxScale: 0.3"), "V1.nxScale: nxScale*nx = 0.3*16 = 4.8 is not a positive integer"),
    (("  nxp: 4", "  nxp: 3"), "V1ToError.nxp"),
    (("  normalizeMethod: normalizeL2", "  normalizeMethod: normalizeL3"),
     "V1ToError.normalizeMethod: 'normalizeL3' is not one of"),
    (("  normalizeMethod: normalizeL2", "  normalizeMethod: normalizeContrastZeroMean\n  numAxonalArbors: 2\n"
                                        "  delay: [0, 1]"),
     "V1ToError.normalizeArborsIndividually: normalizeContrastZeroMean over several arbors together is refused"),
])
def test_each_mistake_is_one_clear_error(edit, expected):
    old, new = edit
    assert old in BASE
    assert expected in error_of(BASE.replace(old, new))


def test_unknown_layer_reference_suggests():
    text = BASE.replace("V1ToError:\n  class: HyPerConn", "V1ToError:\n  class: HyPerConn\n  postLayerName: Eror")
    assert "V1ToError.postLayerName: no layer named 'Eror' (did you mean 'Error'?)" in error_of(text)


def test_patch_geometry_is_checked_against_facts():
    # one-to-one connections need odd patches
    text = BASE + "ErrorToV1b:\n  class: HyPerConn\n  preLayerName: Error\n  postLayerName: Error\n" \
                  "  channelCode: 0\n  nxp: 2\n  weightInitType: UniformWeight\n  normalizeMethod: none\n" \
                  "  plasticityFlag: false\n"
    assert "ErrorToV1b.nxp" in error_of(text)


def test_first_group_must_be_the_column():
    text = "V1:\n  class: HyPerLayer\ncolumn:\n  class: HyPerCol\n  nx: 4\n  ny: 4\n"
    assert "the first group must be the HyPerCol" in error_of(text)


def test_duplicates_and_syntax_errors_name_the_line():
    assert "net.yaml:4: column: group 'column' is defined twice" in error_of(
        "column:\n  class: HyPerCol\n  nx: 4\ncolumn:\n  class: HyPerCol\n")
    assert "parameter defined twice" in error_of("column:\n  class: HyPerCol\n  nx: 4\n  nx: 5\n")
    assert "net.yaml:3: YAML syntax error" in error_of("column:\n  class: HyPerCol\n nx: [4\n")


def test_overrides():
    m = model_of(BASE, ["column.nbatch=8", "V1.VThresh=0.3", "Input.inputPath=other.pvp"])
    assert m.column["nbatch"] == 8 and m.group("V1")["VThresh"] == 0.3
    assert m.group("V1")["AMin"] == 0.3  # derived defaults follow the override
    assert m.group("Input")["inputPath"] == "other.pvp"
    assert "no group named 'V11' (did you mean 'V1'?)" in error_of(BASE, ["V11.VThresh=1"])
    assert "expected GROUP.PARAM=VALUE" in error_of(BASE, ["V1VThresh=1"])


def test_model_is_immutable():
    m = model_of(BASE)
    with pytest.raises(TypeError):
        m.group("V1").params["VThresh"] = 1.0
