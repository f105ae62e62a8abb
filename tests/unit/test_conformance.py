"""The conformance harness itself, with stand-ins for OpenPV (no OpenPV binary needed)."""
import stat
import sys

from pvmpi.conformance.oracle import ONE_PROCESS_MCA, Case, Step, run_openpv
from pvmpi.conformance.suite import classify, find_cases, run_suite, summary, write_markdown

PARAMS = """
HyPerCol "column" = { nx = 8; ny = 8; dt = 1; stopTime = 3; outputPath = "output";
                      randomSeed = 1234567890; checkpointWrite = false; };
ConstantLayer "Input" = { nf = 1; InitVType = "ConstantV"; valueV = 1; writeStep = 1; };
%s "Output" = { nf = 1; InitVType = "ZeroV"; writeStep = 1; phase = 1; };
IdentConn "InputToOutput" = { channelCode = 0; };
"""


def case(tmp_path, name, output_class="HyPerLayer", source=None):
    folder = tmp_path / "suite" / name
    (folder / "input").mkdir(parents=True)
    (folder / "input" / f"{name}.params").write_text(PARAMS % output_class)
    if source:
        (folder / "src").mkdir()
        (folder / "src" / f"{output_class}.hpp").write_text(source)
    return Case.single(folder, f"input/{name}.params")


def stand_in(tmp_path, body):
    """A 'pvrun' that runs pvmpi itself (then ``body``, a shell line), in place of OpenPV."""
    path = tmp_path / "pvrun"
    path.write_text(f'#!/bin/sh\n"{sys.executable}" -m pvmpi -q "$@" || exit $?\n{body}\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


PERTURB = (f'"{sys.executable}" -c "import numpy as np; from pvmpi.io import pvp; '
           f"d = pvp.read('output/Output.pvp').values; "
           f"w = pvp.DenseWriter('output/Output.pvp', 8, 8, 1); "
           f"[w.write(float(t), d[t] + 0.01) for t in range(len(d))]; w.close()\"")


def test_classification(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_NUM_THREADS", "1")
    same = stand_in(tmp_path, "")
    where = tmp_path / "work"
    v = classify(case(tmp_path, "Same"), same, where)
    assert v.status == "agrees" and v.worst == 0, v.detail
    v = classify(case(tmp_path, "Perturbed"), stand_in(tmp_path, PERTURB), where / "p")
    assert v.status == "differs" and "Output.pvp" in v.detail and v.worst > 1e-3
    failing = tmp_path / "failing"
    failing.write_text("#!/bin/sh\necho 'ERROR <HyPerCol.cpp:1>: no' >&2\nexit 1\n")
    failing.chmod(0o755)
    v = classify(case(tmp_path, "OpenPVFails"), str(failing), where / "f")
    assert v.status == "OpenPV fails" and "HyPerCol.cpp" in v.detail
    runs = tmp_path / "runs"  # an OpenPV that has the class: it runs the file
    runs.write_text("#!/bin/sh\nexit 0\n")
    runs.chmod(0o755)
    unknown = case(tmp_path, "Unknown", "NoSuchLayer")
    v = classify(unknown, str(runs), where / "u")
    assert v.status == "refused" and "NoSuchLayer" in v.detail
    v = classify(unknown, same, where / "u2")  # an OpenPV that lacks it too
    assert v.status == "OpenPV fails" and "pvmpi refuses it too" in v.detail and "NoSuchLayer" in v.detail
    v = classify(case(tmp_path, "Own", "OwnTestLayer", "class OwnTestLayer : public HyPerLayer {};"),
                 same, where / "o")
    assert v.status == "test-only class" and v.detail == "OwnTestLayer"


CHAIN = """
HyPerCol "column" = { nx = 8; ny = 8; dt = 1; stopTime = 3; outputPath = "output";
                      randomSeed = 1234567890; checkpointWrite = false; lastCheckpointDir = "output/Last";
                      initializeFromCheckpointDir = "%s"; };
ConstantLayer "Input" = { nf = 1; InitVType = "ConstantV"; valueV = 1; writeStep = 1; };
HyPerLayer "%s" = { nf = 1; InitVType = "ZeroV"; writeStep = 1; phase = 1;
                    initializeFromCheckpointFlag = %s; };
IdentConn "InputTo%s" = { channelCode = 0; };
%s
"""
NONZERO = 'RequireAllZeroActivityProbe "Check" = { targetLayer = "Input"; exitOnFailure = true; };'


def test_chain_of_runs(tmp_path, monkeypatch):
    """A chain of runs in one folder (later runs start from the checkpoint an earlier one left in
    its output folder, a run that OpenPV's test expects to fail): every step compared."""
    from pvmpi.conformance.oracle import Step

    monkeypatch.setenv("NUMBA_NUM_THREADS", "1")
    folder = tmp_path / "suite" / "Chain"
    (folder / "input").mkdir(parents=True)
    for name, init, layer, flag, probe in [("Write", "", "Copy", "false", ""),
                                          ("Other", "output/Last", "Other", "false", ""),
                                          ("Read", "output/Last", "Copy", "true", ""),
                                          ("Fail", "output/Last", "Other", "true", NONZERO)]:
        (folder / f"input/{name}.params").write_text(CHAIN % (init, layer, flag, layer, probe))
    steps = (Step("input/Write.params"), Step("input/Other.params"), Step("input/Read.params"))
    v = classify(Case(folder, steps + (Step("input/Fail.params", fails=True),)), stand_in(tmp_path, ""),
                 tmp_path / "work")
    assert v.status == "agrees" and v.detail.endswith("over 4 runs"), v.detail
    from pvmpi.io.openpv_checkpoint import open_checkpoint

    rd = open_checkpoint(str(tmp_path / "work/pvmpi/Chain/output/Last"), 1)
    assert rd.has("layers/Copy") and rd.has("layers/Other")  # a later run adds to the folder
    rd.h5.close()
    v = classify(Case(folder, steps + (Step("input/Fail.params"),)), stand_in(tmp_path, ""),
                 tmp_path / "work2")
    assert v.status == "OpenPV fails" and v.detail.startswith("input/Fail.params:"), v.detail


def test_suite_table(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_NUM_THREADS", "1")
    for name in ("A", "B"):
        case(tmp_path, name)
    case(tmp_path, "C", "NoSuchLayer")
    assert [c.params for c in find_cases(tmp_path / "suite")] == ["input/A.params", "input/B.params",
                                                                  "input/C.params"]
    verdicts = run_suite(tmp_path / "suite", stand_in(tmp_path, ""), jobs=2)
    # the stand-in is pvmpi, which lacks NoSuchLayer too: "OpenPV fails" (pvmpi's refusal in the detail)
    assert summary(verdicts) == {"agrees": 2, "differs": 0, "refused": 0, "test-only class": 0,
                                 "OpenPV fails": 1, "pvmpi fails": 0, "not run by its test": 0}
    write_markdown(verdicts, tmp_path / "table.md", "suite")
    text = (tmp_path / "table.md").read_text()
    assert "| 2 | 0 | 0 | 0 | 1 | 0 | 0 |" in text and "| C/input/C.params | OpenPV fails |" in text


def test_openpv_runs_with_open_mpi_set_for_one_process(tmp_path, monkeypatch):
    """Open MPI's ob1 messaging over self, not its probed ucx/cm layers and the ofi transport that
    sleeps a second as it closes; a setting of the caller's own wins."""
    for name in ONE_PROCESS_MCA:  # a machine's own Open MPI settings would stand in for the defaults
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMPI_MCA_btl", "self")
    pvrun = tmp_path / "pvrun"
    pvrun.write_text("#!/bin/sh\nenv > seen.txt\n")
    pvrun.chmod(0o755)
    (tmp_path / "case").mkdir()
    assert run_openpv(str(pvrun), tmp_path / "case", Step("x.params")).returncode == 0
    seen = dict(line.split("=", 1) for line in (tmp_path / "case" / "seen.txt").read_text().splitlines()
                if line.startswith("OMPI_MCA_"))
    assert seen == {"OMPI_MCA_pml": "ob1", "OMPI_MCA_btl": "self", "OMPI_MCA_mtl": "^ofi", "OMPI_MCA_osc": "^ucx"}


def test_conformance_command_needs_openpv(monkeypatch, capsys):
    from pvmpi.cli import main

    monkeypatch.delenv("PVMPI_OPENPV", raising=False)
    assert main(["conformance", "."]) != 0
    assert "PVMPI_OPENPV" in capsys.readouterr().err


def test_every_layer_written():
    """The scratch copies write every layer at every step; comments, connections and classes pvmpi
    does not know stay as they are."""
    from pvmpi.conformance.oracle import every_layer_written
    from pvmpi.model.params import parse_params

    text = """HyPerCol "column" = { nx = 8; ny = 8; dt = 1; stopTime = 2; };
// HyPerLayer "Commented" = { writeStep = -1; };
HyPerLayer "Silent" = { nf = 1; writeStep = -1; // writeStep = -1; in a comment
};
ANNLayer "Default" = { nf = 1; };
HyPerConn "SilentToDefault" = { writeStep = -1; channelCode = 0; };
TestOnlyLayer "Own" = { writeStep = -1; };
"""
    out = every_layer_written(text)
    groups = {g.name: g.values for g in parse_params(out).groups}
    assert groups["Silent"]["writeStep"] == 1 and groups["Default"]["writeStep"] == 1
    assert groups["SilentToDefault"]["writeStep"] == -1 and groups["Own"]["writeStep"] == -1
    assert '// HyPerLayer "Commented" = { writeStep = -1; };' in out
    assert "// writeStep = -1; in a comment" in out
