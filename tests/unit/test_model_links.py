"""Links between groups: transposes of transposes, FeedbackConn's layers, QuotientProbe operands."""
import warnings

import pytest

from pvmpi.errors import PvmpiError
from pvmpi.model.network_model import UnusedParameterWarning, build_model
from pvmpi.model.params import parse_params

HEAD = """
HyPerCol "column" = { nx = 16; ny = 16; };
HyPerLayer "A" = { nf = 2; };
HyPerLayer "B" = { nxScale = 0.5; nyScale = 0.5; nf = 3; };
HyPerConn "AToB" = { channelCode = 0; nxp = 3; nyp = 3; weightInitType = "UniformRandomWeight";
                     normalizeMethod = "none"; plasticityFlag = false; };
"""


def build(text):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnusedParameterWarning)
        return build_model(parse_params(HEAD + text, "net.params").to_raw_config())


def test_feedback_conn_takes_the_swapped_layers_of_its_original():
    m = build('FeedbackConn "BackToA" = { channelCode = 0; originalConnName = "AToB"; };\n'
              'FeedbackConn "ForwardAgain" = { channelCode = 1; originalConnName = "BackToA"; };\n'
              'TransposeConn "T2" = { preLayerName = "A"; postLayerName = "B"; channelCode = 1;'
              ' originalConnName = "BackToA"; };')
    back, again = m.group("BackToA"), m.group("ForwardAgain")
    assert (back["preLayerName"], back["postLayerName"]) == ("B", "A")  # "BackToA" is not read as B->A
    assert (again["preLayerName"], again["postLayerName"]) == ("A", "B")
    assert m.group("T2")["originalConnName"] == "BackToA"


def test_feedback_conn_layer_names_are_not_read():
    with pytest.warns(UnusedParameterWarning, match="BackToA.preLayerName"):
        m = build_model(parse_params(HEAD + 'FeedbackConn "BackToA" = { channelCode = 0; '
                                     'originalConnName = "AToB"; preLayerName = "A"; };',
                                     "net.params").to_raw_config())
    assert m.group("BackToA")["preLayerName"] == "B"


@pytest.mark.parametrize("text, what", [
    (('IdentConn "AToA2" = { preLayerName = "A"; postLayerName = "A"; channelCode = -1; };\n'
      'TransposeConn "T" = { preLayerName = "A"; postLayerName = "A"; channelCode = 0; '
      'originalConnName = "AToA2"; };'), "T.originalConnName: 'AToA2' is a IdentConn"),
    (('TransposeConn "T1" = { preLayerName = "B"; postLayerName = "A"; channelCode = 0; '
      'originalConnName = "T2"; };\n'
      'TransposeConn "T2" = { preLayerName = "A"; postLayerName = "B"; channelCode = 0; '
      'originalConnName = "T1"; };'), "loop: T1 -> T2 -> T1"),
    (('TransposeConn "BToA" = { channelCode = 0; originalConnName = "AToB"; };\n'
      'CloneConn "C" = { preLayerName = "B"; postLayerName = "A"; channelCode = 0; originalConnName = "BToA"; };'),
     "C.originalConnName: 'BToA' is a TransposeConn; a CloneConn needs a HyPerConn"),
    (('TransposeConn "BToA" = { channelCode = 0; originalConnName = "AToB"; };\n'
      'CopyConn "C" = { preLayerName = "B"; postLayerName = "A"; channelCode = 0; originalConnName = "BToA"; '
      'normalizeMethod = "none"; };'),
     "C.originalConnName: 'BToA' is a TransposeConn; a CopyConn needs a connection with weights of its own"),
])
def test_bad_originals_are_one_line_errors(text, what):
    with pytest.raises(PvmpiError, match=what) as e:
        build(text)
    assert "\n" not in str(e.value)


PROBES = """
L2NormProbe "Err" = { targetLayer = "B"; energyProbe = "Energy"; };
ColumnEnergyProbe "Energy" = { };
L2NormProbe "In" = { targetLayer = "A"; };
"""


def test_quotient_probe_operands_and_time_scale_target():
    m = build(PROBES + 'QuotientProbe "Q" = { numerator = "In"; denominator = "Energy"; };\n'
                       'AdaptiveTimeScaleProbe "ATS" = { targetName = "Q"; };')
    assert (m.group("Q")["numerator"], m.group("Q")["denominator"]) == ("In", "Energy")
    assert m.group("ATS")["targetName"] == "Q"


@pytest.mark.parametrize("text, what", [
    ('QuotientProbe "Q" = { numerator = "In"; };', "Q.denominator: required"),
    ('QuotientProbe "Q" = { numerator = "In"; denominator = "Nope"; };', "no probe named 'Nope'"),
    ('StatsProbe "S" = { targetLayer = "A"; };\nQuotientProbe "Q" = { numerator = "S"; denominator = "In"; };',
     "'S' is a StatsProbe"),
    ('QuotientProbe "Q" = { numerator = "In"; denominator = "Energy"; energyProbe = "Energy"; };',
     "loop"),
])
def test_quotient_probe_errors(text, what):
    with pytest.raises(PvmpiError, match=what):
        build(PROBES + text)
