"""OpenPV params files: lexical rules, grammar, directives, sweeps (facts §2.1, §2.2)."""
import warnings

import pytest
from shared_data import params_files

from pvmpi.errors import PvmpiError
from pvmpi.model.network_model import build_model
from pvmpi.model.params import load_params, parse_params, tokenize
from pvmpi.model.schema import FLT_MAX

PARAMS_FILES = [p for p, _ in params_files()]
IDS = [i for _, i in params_files()]

# Files whose classes and parameters the schema knows today: they must build.
BUILDS = {
    "openpv-tests/GPULCATest/input/GPULCATest.params",
    "openpv-tests/LCATest/input/LCATest.params",
    "openpv-tests/MomentumTest/input/momentumTest.params",
    "openpv-tests/MomentumTest/input/viscosityTest.params",
    "bench/LCA_bench.params",
} | {f"openpv-tests/{t}Test/input/{t}Test_{s}.params"
     for t in ("L1NormProbe", "L2NormProbe", "StatsProbe") for s in ("1", "4", "4batch", "8MtoN")}


def col(body, extra=""):
    """A params text: one HyPerCol group holding `body`, then `extra`."""
    return f'HyPerCol "column" = {{\n{body}\n}};\n{extra}'


def values(text):
    return parse_params(text, "t.params").groups[0].values


def error(text, match):
    with pytest.raises(PvmpiError, match=match) as e:
        parse_params(text, "t.params")
    assert e.value.file == "t.params"
    return e.value


# ---------------------------------------------------------------- OpenPV's own files

def test_every_openpv_params_file_is_found(openpv_tests):
    assert len(PARAMS_FILES) >= 31
    assert "openpv-tests/BatchMethodTest/input/images/test.params" in IDS


@pytest.mark.parametrize("path", PARAMS_FILES, ids=IDS)
def test_openpv_params_file_parses(path):
    pf = load_params(path)
    assert pf.groups and pf.groups[0].cls == "HyPerCol"
    assert not pf.sweeps
    for g in pf.groups:
        assert isinstance(g.line, int) and set(g.lines) == set(g.values)


@pytest.mark.parametrize("path", PARAMS_FILES, ids=IDS)
def test_openpv_params_file_builds_or_fails_cleanly(path):
    raw = load_params(path).to_raw_config()
    rel = dict(params_files())[path]
    try:
        model = build_model(raw)
    except PvmpiError as e:
        assert rel not in BUILDS, str(e)
        assert e.file == str(path) and e.line is not None
        return
    assert model.column.name == raw.groups[0].name


def test_gpulcatest_values_includes_and_overrides(openpv_tests):
    pf = load_params(openpv_tests / "GPULCATest/input/GPULCATest.params")
    v1 = pf.group("V1CPU")
    assert v1.cls == "HyPerLCALayer"
    assert v1.values["VThresh"] == 0.025 and v1.values["AMax"] == FLT_MAX
    assert v1.values["updateGpu"] == 0.0 and v1.values["nf"] == 24
    assert pf.group("ResidualCPU").values["VThresh"] == -FLT_MAX
    assert pf.group("Input").values["dataType"] is None
    assert pf.group("InputToResidualCPU").values["delay"] == [0.0]
    v1gpu = pf.group("V1GPU")
    assert v1gpu.values["updateGpu"] == 1.0
    assert v1gpu.values["adaptiveTimeScaleProbe"] == "AdaptiveTimeScalesGPU"
    # Everything else is V1CPU's, in V1CPU's order.
    assert list(v1gpu.values) == list(v1.values)
    assert {k: v for k, v in v1gpu.values.items() if k not in ("updateGpu", "adaptiveTimeScaleProbe")} \
        == {k: v for k, v in v1.values.items() if k not in ("updateGpu", "adaptiveTimeScaleProbe")}
    t = pf.group("ResidualGPUToV1GPU")
    assert t.values["receiveGpu"] == 1.0 and t.values["originalConnName"] == "V1GPUToResidualGPU"
    assert t.values["preLayerName"] == "ResidualGPU" and t.values["postLayerName"] == "V1GPU"
    assert pf.group("ResidualGPU").values == pf.group("ResidualCPU").values
    assert pf.debug_parsing is True


def test_gpulcatest_lines_point_into_the_file(openpv_tests):
    path = openpv_tests / "GPULCATest/input/GPULCATest.params"
    lines = path.read_text().splitlines()
    pf = load_params(path)
    v1gpu = pf.group("V1GPU")
    assert lines[v1gpu.line - 1].startswith('HyPerLCALayer "V1GPU"')
    assert "@updateGpu" in lines[v1gpu.lines["updateGpu"] - 1]
    assert '#include "V1CPU"' in lines[v1gpu.lines["VThresh"] - 1]
    v1 = pf.group("V1CPU")
    assert lines[v1.lines["VThresh"] - 1].strip().startswith("VThresh")


def test_lcatest_first_group_is_the_column(openpv_tests):
    pf = load_params(openpv_tests / "LCATest/input/LCATest.params")
    assert (pf.groups[0].cls, pf.groups[0].name) == ("HyPerCol", "column")


def test_validation_errors_point_into_the_params_file():
    from pvmpi.model.network_model import UnusedParameterWarning

    text = col("nx = 8; ny = 8;", 'HyPerLayer "L" = {\n  nf = 1;\n  bogus = 2;\n};\n')
    with pytest.warns(UnusedParameterWarning, match="net.params:6: L.bogus: unknown parameter"):
        build_model(parse_params(text, "net.params").to_raw_config())  # OpenPV warns, and so do we
    strict = text.replace("ny = 8;", "ny = 8; errorOnUnusedParam = true;")
    with pytest.raises(PvmpiError) as e:
        build_model(parse_params(strict, "net.params").to_raw_config())
    assert (e.value.file, e.value.line, e.value.group, e.value.param) == ("net.params", 6, "L", "bogus")


# ---------------------------------------------------------------- lexical rules

def test_numbers():
    v = values(col("a = 123; b = -7; c = +7; d = 1.; e = .5; f = -.5; g = 1.5e-3; h = 1e5; "
                   "i = 1.e2; j = 2E+3; k = 010;"))
    assert v == {"a": 123, "b": -7, "c": 7, "d": 1.0, "e": 0.5, "f": -0.5, "g": 1.5e-3, "h": 1e5,
                 "i": 100.0, "j": 2000.0, "k": 10}
    assert [type(v[k]) for k in "abcdh"] == [int, int, int, float, float]


@pytest.mark.parametrize("number", ["15e-4", ".5e3", "12.5e1"])
def test_exponent_needs_exactly_one_leading_digit(number):
    # flex reads '15' as a number and 'e' as an identifier: a syntax error.
    e_col = 5 + number.index("e")  # the error is at the 'e', where flex's number ends
    e = error(col(f"a = {number};"), f"syntax error at column {e_col}: expected ';'")
    assert e.line == 2 and f"'{number}' is not an OpenPV number" in e.hint


def test_infinity_true_false_null():
    v = values(col("a = infinity; b = +infinity; c = -infinity; d = true; e = false; f = NULL; "
                   "g = [1, -infinity];"))
    assert v == {"a": FLT_MAX, "b": FLT_MAX, "c": -FLT_MAX, "d": 1.0, "e": 0.0, "f": None,
                 "g": [1, -FLT_MAX]}
    assert FLT_MAX == 3.4028234663852886e38 and type(v["d"]) is float


def test_longest_match_makes_identifiers():
    # 'trueValue' and 'infinityX' are identifiers, not a number followed by something.
    assert [t.kind for t in tokenize("trueValue infinityX NULLs true")] == ["ID", "ID", "ID", "NUMBER", "EOF"]
    error(col("a = infinityX;"), "column 5: expected a value for 'a'")


def test_single_slash_comments():
    v = values(col("a = 1; / one slash is a comment\nb = 2; // two as well\nc = 3;/no space needed"))
    assert v == {"a": 1, "b": 2, "c": 3}


def test_c_comment_only_comments_its_first_line():
    e = error(col("/* a = 1;\n   b = 2;\n*/"), r"syntax error at column 1: unexpected character '\*'")
    assert e.line == 4
    assert values(col("/* a = 1; */\nb = 2;")) == {"b": 2}
    e = error(col("/* a = 1;\n b = 2; */"), r"column 9: unexpected character '\*'")
    assert e.line == 3


def test_slash_inside_quotes_is_not_a_comment():
    assert values(col('p = "output/run.1/";')) == {"p": "output/run.1/"}


def test_quoted_token_kinds():
    kinds = [(t.kind, t.value) for t in tokenize('"V1" "a b" "" "_x" "in/put.pvp" "~/a+b-c"')][:-1]
    assert kinds == [("GROUPID", "V1"), ("STRING", "a b"), ("STRING", ""), ("STRING", "_x"),
                     ("FILENAME", "in/put.pvp"), ("FILENAME", "~/a+b-c")]


@pytest.mark.parametrize("token, col_, what", [
    ('"a:b"', 7, "character ':' is not allowed"),
    ('"a,b"', 7, "character ',' is not allowed"),
    ('"x*"', 7, r"character '\*' is not allowed"),
    ('"a b/c"', 5, 'quoted token "a b/c" mixes a space with file-name characters'),
    ('"abc', 5, "unterminated quoted token"),
])
def test_bad_quoted_tokens(token, col_, what):
    e = error(col(f"p = {token};"), f"syntax error at column {col_}: {what}")
    assert e.line == 2


@pytest.mark.parametrize("text, col_, what", [
    ("a = 1 $;", 7, r"unexpected character '\$'"),
    ("#includ \"x\";", 1, "'#' must start '#include'"),
    ("@ a = 1;", 1, "'@' must be followed"),
    ("a = 1;\tb = 'x';", 12, "unexpected character \"'\""),
])
def test_bad_characters_name_line_and_column(text, col_, what):
    e = error(col(text), f"syntax error at column {col_}: {what}")
    assert e.line == 2 and str(e).startswith("t.params:2: syntax error")


def test_crlf_and_tabs_are_whitespace():
    assert values('HyPerCol "c" = {\r\n\ta = 1;\r\n};\r\n') == {"a": 1}


# ---------------------------------------------------------------- grammar

def test_no_groups_is_an_error():
    error("", "defines no groups")
    error("debugParsing = 1; // nothing else\n", "defines no groups")


@pytest.mark.parametrize("text, line, match", [
    (col("a = 1;\nb = 2"), 4, "expected ';' after the value of 'b', found '}'"),
    (col("a = 1;").rstrip(";\n"), 3, "expected ';' after '}' of group 'column', found end of file"),
    ('HyPerCol "c" = {\na = 1;\n', 3, "expected '}' to close group 'c'"),
    ('HyPerCol "c" {};', 1, "expected '=' after HyPerCol \"c\", found '{'"),
    (col("a = [];"), 2, "expected a number in the array"),
    (col("a = [1, \"x\"];"), 2, "expected a number in the array"),
    (col("a = 1, 2;"), 2, "expected ';'"),
    ("foo;", 1, "expected '=' \\(a directive\\) or a quoted group name"),
    ("debugParsing = \"x\";", 1, "a directive \\(debugParsing = ...\\) takes a number"),
    ("42;", 1, "expected a group"),
])
def test_syntax_errors(text, line, match):
    e = error(text, "syntax error at column .*" + match)
    assert e.line == line


def test_group_names_are_quoted_identifiers():
    e = error('HyPerCol "a.b" = { };', '"a.b" is not a valid group name')
    assert e.line == 1
    error('HyPerCol "" = { };', "not a valid group name")
    error('HyPerCol NULL = { };', "not a valid group name")
    assert parse_params('HyPerCol "my column" = { };').groups[0].name == "my column"


def test_values_lines_and_order():
    pf = parse_params('debugParsing = 0;\n\nHyPerCol "c" = {\n  b = 2;\n  a = "x";\n  c = [1, 2.5];\n};\n'
                      'HyPerLayer "L" = {\n  nf = 3;\n};\n')
    c, layer = pf.groups
    assert (c.name, c.cls, c.line, layer.line) == ("c", "HyPerCol", 3, 8)
    assert list(c.values) == ["b", "a", "c"] and c.values["c"] == [1, 2.5]
    assert c.lines == {"b": 4, "a": 5, "c": 6} and layer.lines == {"nf": 9}


def test_duplicate_group():
    e = error(col("a = 1;", 'HyPerLayer "column" = { };'),
              "group 'column' is defined twice \\(first at line 1\\)")
    assert (e.line, e.group) == (4, "column")


def test_duplicate_parameter():
    e = error(col("a = 1;\na = 2;"), "parameter defined twice \\(first at line 2\\)")
    assert (e.line, e.group, e.param) == (3, "column", "a")
    error(col('a = 1;\na = "x";'), "defined twice")
    error(col("a = [1];\na = 2;"), "defined twice")


INCLUDE_BASE = col("nx = 8;",
                   'HyPerLayer "A" = {\n  nf = 2;\n  phase = 1;\n  delay = [1, 2];\n  s = "x";\n};\n')


def test_include_copies_everything_and_overrides():
    pf = parse_params(INCLUDE_BASE
                      + 'HyPerLayer "B" = {\n  #include "A";\n  @nf = 4;\n  extra = 5;\n};\n'
                      + 'HyPerLayer "C" = {\n  #include "B";\n  @phase = 3;\n'
                      + '  @delay = [0];\n  @s = NULL;\n};\n')
    a, b, c = (pf.group(n) for n in "ABC")
    assert b.values == {"nf": 4, "phase": 1, "delay": [1, 2], "s": "x", "extra": 5}
    assert list(b.values) == ["nf", "phase", "delay", "s", "extra"]
    assert c.values == {"nf": 4, "phase": 3, "delay": [0], "s": None, "extra": 5}
    assert b.lines == {"nf": 12, "phase": 11, "delay": 11, "s": 11, "extra": 13}
    assert a.values["nf"] == 2  # the included group is untouched
    c.values["delay"].append(9)
    assert b.values["delay"] == [1, 2]


def test_overwrite_of_a_param_set_earlier_in_the_group():
    assert values(col("a = 1;\n@a = 2;")) == {"a": 2}


@pytest.mark.parametrize("body, match", [
    ('  nf = 1;\n  #include "A";', '#include "A" must be the first statement'),
    ('  #include "B";', "no group named 'B' is defined before this one"),
    ('  #include "X";', "no group named 'X'"),
    ('  #include "column";', "cannot #include 'column', a HyPerCol, into a HyPerLayer"),
    ('  #include "A";\n  nf = 3;', "already defined: it was copied from 'A' by #include"),
    ('  #include "A";\n  @missing = 3;', "@missing overwrites nothing"),
    ('  #include "A";\n  @nf = [3];', "cannot overwrite a number parameter with an array"),
    ('  #include "A";\n  @delay = 3;', "cannot overwrite a array parameter with a number"),
    ('  #include "A";\n  @nf = "x";', "cannot overwrite a number parameter with a string"),
    ('  #include "A";\n  @s = 1;', "cannot overwrite a string parameter with a number"),
])
def test_include_and_overwrite_errors(body, match):
    text = INCLUDE_BASE + f'HyPerLayer "B" = {{\n{body}\n}};\nHyPerLayer "D" = {{ }};\n'
    e = error(text, match)
    assert e.group == "B" and e.line > 10


def test_include_self_hint():
    e = error(INCLUDE_BASE + 'HyPerLayer "B" = { #include "B"; };', "no group named 'B'")
    assert "cannot include itself" in e.hint


def test_duplicate_after_include_hints_at_overwrite():
    e = error(INCLUDE_BASE + 'HyPerLayer "B" = {\n #include "A";\n phase = 2;\n};', "copied from 'A'")
    assert e.hint == "write @phase = ...; to override it" and e.param == "phase"


def test_batchsweep_was_removed():
    error(col("a = 1;", 'BatchSweep "column":a = { 1; };'), "BatchSweep was removed")


# ---------------------------------------------------------------- directives

def test_directives_are_recorded():
    pf = parse_params("debugParsing = true;\n" + col("a = 1;") + "debugParsing = 0;\n")
    assert [(d.name, d.value, d.line) for d in pf.directives] == [("debugParsing", 1.0, 1),
                                                                 ("debugParsing", 0.0, 5)]
    assert pf.debug_parsing is False


def test_unknown_directive_warns():
    with pytest.warns(UserWarning, match="unrecognized directive 'verbose'"):
        pf = parse_params("verbose = 1;\n" + col("a = 1;"))
    assert pf.directives[0].name == "verbose"


def test_disable_ignores_everything_until_enabled():
    text = (col("a = 1;") + "disable = 1;\n"
            'HyPerLayer "gone" = { nf = 1; nf = 2; };\n'          # duplicates are not checked either
            'HyPerLayer "column" = { #include "nothing"; };\n'
            'ParameterSweep "column":a = { 1; 2; };\n'
            "disable = 0;\n"
            'HyPerLayer "kept" = { nf = 1; };\n')
    pf = parse_params(text)
    assert [g.name for g in pf.groups] == ["column", "kept"] and not pf.sweeps


def test_disabled_text_must_still_be_valid_syntax():
    error(col("a = 1;") + 'disable = 1;\nHyPerLayer "x" = { nf = 1 };\n', "syntax error")


# ---------------------------------------------------------------- ParameterSweep

SWEEP_BASE = col('nx = 8;\noutputPath = "out";\ncheckpointWriteDir = "ckpt";',
                 'HyPerLayer "L" = {\n  nf = 1;\n  s = "a";\n  arr = [1];\n};\n')


def test_sweep_configs_apply_the_ith_value_and_number_output_paths():
    n = 11
    text = SWEEP_BASE + "ParameterSweep \"L\":nf = {" + "".join(f" {i};" for i in range(n)) + " };\n" \
        + "ParameterSweep \"L\":VThresh = {" + "".join(f" {i / 10};" for i in range(n)) + " };\n"
    pf = parse_params(text, "s.params")
    assert [(s.group, s.param, s.line) for s in pf.sweeps] == [("L", "nf", 11), ("L", "VThresh", 12)]
    runs = pf.sweep_configs()
    assert len(runs) == n
    for i, raw in enumerate(runs):
        layer, column = raw.group("L"), raw.group("column")
        assert layer.values["nf"] == i and layer.values["VThresh"] == i / 10
        assert layer.lines["nf"] == 11 and layer.lines["VThresh"] == 12
        assert column.values["outputPath"] == f"out/paramsweep_{i:02d}/"
        assert column.values["checkpointWriteDir"] == f"ckpt/paramsweep_{i:02d}/"
    assert pf.group("L").values["nf"] == 1  # the parsed file is unchanged
    with pytest.raises(PvmpiError, match="ParameterSweep of 11 runs") as e:
        pf.to_raw_config()
    assert "sweep_configs" in e.value.hint


def test_swept_output_path_is_not_numbered():
    text = SWEEP_BASE.replace('checkpointWriteDir = "ckpt";', "") + \
        'ParameterSweep "column":outputPath = { "run/a"; "run b"; "c"; };\n'
    runs = parse_params(text).sweep_configs()
    assert [r.groups[0].values["outputPath"] for r in runs] == ["run/a", "run b", "c"]
    assert all("checkpointWriteDir" not in r.groups[0].values for r in runs)


def test_single_run_sweep_and_no_sweep():
    runs = parse_params(SWEEP_BASE + 'ParameterSweep "L":s = { "b"; };').sweep_configs()
    assert len(runs) == 1 and runs[0].groups[0].values["outputPath"] == "out/paramsweep_0/"
    assert runs[0].group("L").values["s"] == "b"
    plain = parse_params(SWEEP_BASE)
    assert [r.groups[0].values["outputPath"] for r in plain.sweep_configs()] == ["out"]


def test_sweep_creates_a_missing_parameter():
    runs = parse_params(SWEEP_BASE + 'ParameterSweep "L":phase = { 2; 3; };').sweep_configs()
    assert [r.group("L").values["phase"] for r in runs] == [2, 3]


@pytest.mark.parametrize("sweeps, match", [
    ('ParameterSweep "L":nf = { 1; 2; };\nParameterSweep "L":phase = { 1; 2; 3; };',
     "same number of values: this one has 3, the first \\(L:nf\\) 2"),
    ('ParameterSweep "L":nf = { 1; "x"; };', "all numbers or all strings"),
    ('ParameterSweep "L":s = { "x"; NULL; };', "NULL is not allowed"),
    ('ParameterSweep "L":nf = { };', "at least one value"),
    ('ParameterSweep "M":nf = { 1; };', "there is no group 'M'"),
    ('ParameterSweep "L":nf = { 1; };\nParameterSweep "L":nf = { 2; };', "swept twice"),
    ('ParameterSweep "L":nf = { "x"; };', "a ParameterSweep of strings cannot set a number parameter"),
    ('ParameterSweep "L":s = { 1; };', "of numbers cannot set a string parameter"),
    ('ParameterSweep "L":arr = { 1; };', "cannot set a array parameter"),
])
def test_sweep_errors(sweeps, match):
    error(SWEEP_BASE + sweeps + "\n", match)


def test_sweep_needs_an_output_path_unless_it_sweeps_it():
    base = col("nx = 8;", 'HyPerLayer "L" = { nf = 1; };\n')
    e = error(base + 'ParameterSweep "L":nf = { 1; 2; };', "outputPath must be set")
    assert e.param == "outputPath"
    parse_params(base + 'ParameterSweep "column":outputPath = { "a"; "b"; };')


def test_sweep_syntax():
    error(SWEEP_BASE + 'ParameterSweep "L" nf = { 1; };', "expected ':'")
    error(SWEEP_BASE + 'ParameterSweep "L":nf = { 1 };', "expected ';' after the sweep value")
    error(SWEEP_BASE + 'ParameterSweep L:nf = { 1; };', "expected a quoted group name")


# ---------------------------------------------------------------- files

def test_a_lua_file_that_prints_nothing_is_one_error(tmp_path):
    """Lua params files run (tests/unit/test_lua.py); one that prints no params says so."""
    p = tmp_path / "net.lua"
    p.write_text("paramsFileString = ''")
    with pytest.raises(PvmpiError, match="printed no params") as e:
        load_params(p)
    assert "pv.printConsole" in e.value.hint


def test_missing_file(tmp_path):
    with pytest.raises(PvmpiError, match="cannot read params file"):
        load_params(tmp_path / "none.params")


def test_to_raw_config_is_a_copy():
    pf = parse_params(col("nx = 8; ny = 8;", 'HyPerLayer "AToB" = { d = [1]; };'))
    raw = pf.to_raw_config()
    raw.groups[1].values["d"].append(2)
    raw.groups[1].values["x"] = 1
    assert pf.group("AToB").values == {"d": [1]}
    assert raw.path == "<string>" and raw.parallel == {}


def test_non_ascii_in_comments_is_fine(tmp_path):
    p = tmp_path / "n.params"
    p.write_bytes('// café – naïve\n'.encode("latin-1", "replace") + col("nx = 8;").encode())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_params(p).groups[0].values == {"nx": 8}


def test_sweep_runs_work_on_any_raw_config():
    from pvmpi.model.params import ParameterSweep, check_sweeps, sweep_runs

    raw = parse_params(SWEEP_BASE).to_raw_config()
    raw.parallel = {"NumRows": 2}
    sweeps = [ParameterSweep("L", "nf", [1, 2], 30)]
    check_sweeps(raw, sweeps)
    runs = sweep_runs(raw, sweeps)
    assert [r.group("L").values["nf"] for r in runs] == [1, 2]
    assert runs[1].parallel == {"NumRows": 2}
    assert runs[1].groups[0].values["outputPath"] == "out/paramsweep_1/"
    for bad, match in (([1, "x"], "all numbers or all strings"), (["x", None], "not NULL"),
                       ([[1]], "all numbers or all strings"), ([], "at least one value")):
        with pytest.raises(PvmpiError, match=match):
            check_sweeps(raw, [ParameterSweep("L", "phase", bad, 30)])
