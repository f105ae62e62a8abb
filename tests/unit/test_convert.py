"""params <-> YAML conversion: lossless round trips, and the same model either way."""
import math
from pathlib import Path

import pytest
from shared_data import params_files

from pvmpi.errors import PvmpiError
from pvmpi.model.config import RawConfig, RawGroup, load_yaml, parse_yaml
from pvmpi.model.convert import params_to_yaml, yaml_to_params
from pvmpi.model.network_model import build_model
from pvmpi.model.params import load_params, parse_params
from pvmpi.model.schema import FLT_MAX

REPO = Path(__file__).resolve().parents[2]
PARAMS_FILES = [p for p, _ in params_files()]
IDS = [i for _, i in params_files()]
YAML_CONFIGS = [REPO / "configs" / "lca_demo.yaml"]


def exact(raw, known_only=False):
    """A RawConfig as comparable data: names, classes, order, values with their types.

    known_only: leave out the parameters pvmpi does not know (YAML keeps them as comments).
    """
    from pvmpi.model import schema

    def typed(v):
        return [typed(x) for x in v] if isinstance(v, list) else (type(v).__name__, v)

    def keep(cls, k):
        return not known_only or cls not in schema.CLASSES or k in schema.params_of(cls)
    return [(g.name, g.cls, [(k, typed(v)) for k, v in g.values.items() if keep(g.cls, k)])
            for g in raw.groups]


def model_data(model):
    return [(g.name, g.cls, dict(g.params)) for g in (model.column,) + model.groups]


def try_build(raw):
    try:
        return build_model(raw)
    except PvmpiError:
        return None


@pytest.mark.parametrize("path", PARAMS_FILES, ids=IDS)
def test_params_yaml_params_round_trip(path):
    pf = load_params(path)
    original = pf.to_raw_config()
    yaml_text = params_to_yaml(pf)
    from_yaml = parse_yaml(yaml_text, "converted.yaml")
    back = parse_params(yaml_to_params(from_yaml), "back.params").to_raw_config()
    assert exact(back) == exact(original, known_only=True)
    # The YAML means the same network: where the params build a model, the YAML builds the same.
    model = try_build(pf.to_raw_config())
    if model is not None:
        assert model_data(build_model(from_yaml)) == model_data(model)


@pytest.mark.parametrize("path", YAML_CONFIGS, ids=lambda p: p.name)
def test_yaml_params_yaml_gives_the_same_model(path):
    raw = load_yaml(path)
    text = yaml_to_params(raw)
    again = parse_params(text, "x.params").to_raw_config()
    assert model_data(build_model(again)) == model_data(build_model(load_yaml(path)))
    assert model_data(build_model(parse_yaml(params_to_yaml(again)))) == model_data(build_model(raw))


def test_yaml_text_is_readable_and_exact():
    pf = parse_params('HyPerCol "column" = {\n nx = 8; ny = 8; dt = 1.0; writeProgressToErr = false;\n'
                      ' outputPath = "out/"; lastCheckpointDir = NULL; stopTime = 1e-06;\n};\n'
                      'ANNLayer "A" = {\n VThresh = -infinity; AMax = infinity; verticesV = [0, infinity];\n'
                      ' mirrorBCflag = 1; sparseLayer = true; valueV = 0.1;\n};\n', "net.params")
    text = params_to_yaml(pf)
    assert text.splitlines()[0] == "# Converted by pvmpi from the OpenPV params file net.params"
    assert "column:\n  class: HyPerCol\n  nx: 8\n" in text
    for line in ("  dt: 1.0", "  writeProgressToErr: false", "  outputPath: out/",
                 "  lastCheckpointDir: null", "  stopTime: 1e-06", "  VThresh: -infinity", "  AMax: infinity",
                 "  verticesV: [0, 3.4028234663852886e+38]", "  mirrorBCflag: 1", "  sparseLayer: true",
                 "  valueV: 0.1"):
        assert line in text.splitlines(), line


def test_yaml_quotes_strings_that_would_read_as_something_else():
    raw = RawConfig("x", [RawGroup("123", "SomeKeyword", {"a": "true", "b": "1e5", "c": "", "d": "null",
                                                       "e": "a b", "f": "~/x", "g": "12", "h": "on"})])
    back = parse_yaml(params_to_yaml(raw))
    assert exact(back) == exact(raw)


def test_params_text_uses_openpv_tokens():
    raw = RawConfig("net.yaml", [RawGroup("column", "HyPerCol", {
        "a": True, "b": False, "c": FLT_MAX, "d": -FLT_MAX, "e": math.inf, "f": "infinity",
        "g": "-infinity", "h": None, "i": [1, 2.5, True], "j": "out/x.pvp", "k": "a b", "l": "",
        "m": 3, "n": 1e-06, "o": 0.1})], parallel={"NumRows": 2})
    text = yaml_to_params(raw)
    lines = [line.split("//")[0].strip() for line in text.splitlines()]
    for want in ("a = true;", "b = false;", "c = infinity;", "d = -infinity;", "e = infinity;",
                 "f = infinity;", "g = -infinity;", "h = NULL;", "i = [1, 2.5, true];",
                 'j = "out/x.pvp";', 'k = "a b";', 'l = "";', "m = 3;", "n = 1e-06;", "o = 0.1;"):
        name, _, value = want.partition(" = ")
        assert f"{name:<35} = {value}" in lines, want
    assert "//   NumRows = 2" in text
    assert text.startswith("// Converted by pvmpi from net.yaml")
    v = parse_params(text).groups[0].values
    assert v["c"] == v["e"] == v["f"] == FLT_MAX and v["i"] == [1, 2.5, 1.0] and v["n"] == 1e-06


def test_infinity_string_of_a_string_parameter_stays_a_string():
    raw = RawConfig("x", [RawGroup("column", "HyPerCol", {"outputPath": "infinity"})])
    assert parse_params(yaml_to_params(raw)).groups[0].values["outputPath"] == "infinity"


@pytest.mark.parametrize("group, match", [
    (RawGroup("c", "HyPerCol", {"p": "a:b"}), "string 'a:b' cannot be written"),
    (RawGroup("c", "HyPerCol", {"p": "a b/c"}), "cannot be written"),
    (RawGroup("c", "HyPerCol", {"p": []}), "an empty array cannot be written"),
    (RawGroup("c", "HyPerCol", {"p": ["x"]}), "'x' cannot be written"),
    (RawGroup("c", "HyPerCol", {"p": {"x": 1}}), "cannot be written"),
    (RawGroup("c", "HyPerCol", {"p": math.nan}), "NaN cannot be written"),
    (RawGroup("c", "HyPerCol", {"true": 1}), "parameter name cannot be written"),
    (RawGroup("c", "HyPerCol", {"a-b": 1}), "parameter name cannot be written"),
    (RawGroup("a.b", "HyPerCol", {}), "group name 'a.b' cannot be written"),
    (RawGroup("c", "Hyper Col", {}), "not an OpenPV keyword"),
])
def test_what_params_syntax_cannot_hold(group, match):
    group.line, group.lines = 3, {k: 4 for k in group.values}
    with pytest.raises(PvmpiError, match=match) as e:
        yaml_to_params(RawConfig("net.yaml", [group]))
    assert e.value.file == "net.yaml" and e.value.line in (3, 4)


def test_sweeps_are_not_converted_yet():
    pf = parse_params('HyPerCol "c" = { outputPath = "o"; nx = 1; };\nParameterSweep "c":nx = { 1; 2; };')
    with pytest.raises(PvmpiError, match="cannot convert a ParameterSweep to YAML yet") as e:
        params_to_yaml(pf)
    assert (e.value.line, e.value.group, e.value.param) == (2, "c", "nx")
    # each run converts on its own
    for raw in pf.sweep_configs():
        assert exact(parse_yaml(params_to_yaml(raw))) == exact(raw)


def test_gpulcatest_yaml_keeps_the_resolved_includes(openpv_tests):
    pf = load_params(openpv_tests / "GPULCATest/input/GPULCATest.params")
    raw = parse_yaml(params_to_yaml(pf))
    v1gpu = raw.group("V1GPU")
    assert v1gpu.cls == "HyPerLCALayer" and v1gpu.values["updateGpu"] is True
    assert v1gpu.values["AMax"] == "infinity" and v1gpu.values["VThresh"] == 0.025
    assert v1gpu.values["adaptiveTimeScaleProbe"] == "AdaptiveTimeScalesGPU"


def test_convert_file_both_ways(tmp_path, capsys, openpv_tests):
    from pvmpi.model.convert import convert_file, main

    src = openpv_tests / "LCATest/input/LCATest.params"
    yaml_path = tmp_path / "lca.yaml"
    text = convert_file(src, yaml_path)
    assert yaml_path.read_text() == text
    with pytest.raises(PvmpiError, match="will not overwrite"):
        convert_file(src, yaml_path)
    params_path = tmp_path / "lca.params"
    assert main([str(yaml_path), str(params_path)]) == 0
    assert exact(load_params(params_path).to_raw_config()) == exact(load_params(src).to_raw_config())
    assert main([str(tmp_path / "missing.params")]) == 2
    assert "cannot read params file" in capsys.readouterr().err
    assert main([str(params_path), str(tmp_path / "wrong.params")]) == 2  # a params file makes YAML
    assert "the output's name says otherwise" in capsys.readouterr().err and not (tmp_path / "wrong.params").exists()
    (tmp_path / "n.txt").write_text(yaml_path.read_text())
    assert main([str(tmp_path / "n.txt")]) == 2 and "which way to convert" in capsys.readouterr().err
