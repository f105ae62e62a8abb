"""The command line: a dry run prints the network; a mistake is one line on stderr and exit 2."""
import subprocess
import sys
from pathlib import Path

import pytest

from pvmpi.data.dead_leaves import make_image_set

DEMO = Path(__file__).resolve().parents[2] / "configs" / "lca_demo.yaml"
IMAGES = None


@pytest.fixture(autouse=True, scope="module")
def demo_images(tmp_path_factory):
    """The demo config reads demo_data/images.txt; the tests point it at images made here."""
    global IMAGES
    IMAGES = make_image_set(tmp_path_factory.mktemp("images"), count=8, size=64, seed=1)


def pvmpi(*args, cwd=None):
    args = [str(a) for a in args]
    if not any(a.startswith("Input.inputPath=") for a in args):
        args += ["--set", f"Input.inputPath={IMAGES}"]
    return subprocess.run([sys.executable, "-m", "pvmpi", *args], capture_output=True,
                          text=True, timeout=300, cwd=cwd)


def test_dry_run_prints_the_network():
    proc = pvmpi(DEMO, "-n", "--set", "column.nbatch=4")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "nbatch 4" in out and "4000 steps" in out
    assert "V1                       HyPerLCALayer    32x32x32   phase 2 margin 2,2 sparse" in out
    assert "V1ToInputError           MomentumConn   V1 -> InputError ch -1 8x8 patches, 32 kernels" in out


def one_line_error(proc):
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pvmpi: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_bad_parameter_is_one_line(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(DEMO.read_text().replace("  VThresh: 0.15 ", "  VTresh: 0.15 "))
    line = one_line_error(pvmpi(cfg, "-n"))
    assert "bad.yaml:" in line and "V1.VTresh: unknown parameter for HyPerLCALayer (did you mean 'VThresh'?)" in line


def test_bad_override_and_missing_files(tmp_path):
    assert "V1.VThresh: must be a number" in one_line_error(pvmpi(DEMO, "-n", "--set", "V1.VThresh=high"))
    assert "cannot read config" in one_line_error(pvmpi(tmp_path / "nope.yaml"))
    # a missing input file is found while building the network, before the first step
    line = one_line_error(pvmpi(DEMO, "-o", tmp_path / "out", "--set", "Input.inputPath=missing.txt"))
    assert "missing.txt: Input.inputPath: input file not found" in line


def test_seed_below_openpv_minimum():
    assert "randomSeed 5 is below 10000000" in one_line_error(pvmpi(DEMO, "-n", "-s", "5"))


def test_refuses_to_mix_into_another_runs_outputs(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "V1.pvp").write_bytes(b"someone else's")
    line = one_line_error(pvmpi(DEMO, "-o", out, "--set", "column.stopTime=2"))
    assert "already holds files of another run" in line and "--overwrite" in line
    assert (out / "V1.pvp").read_bytes() == b"someone else's"


def test_unwritable_output_directory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    line = one_line_error(pvmpi(DEMO, "-o", blocker / "out", "--set", "column.stopTime=2"))
    assert "cannot write the output directory" in line


def test_cuda_backend_without_a_gpu_is_one_clear_error():
    line = one_line_error(pvmpi(DEMO, "-n", "--backend", "cuda"))
    assert "--backend cuda needs an NVIDIA GPU" in line


SWEEP = """HyPerCol "column" = { nx = 4; ny = 4; dt = 1; stopTime = 2; outputPath = "out";
                         randomSeed = 1234567890; };
ConstantLayer "Input" = { nf = 1; InitVType = "ConstantV"; valueV = 1; writeStep = 1; };
HyPerLayer "Output" = { nf = 1; InitVType = "ZeroV"; phase = 1; writeStep = 1; };
IdentConn "InputToOutput" = { channelCode = 0; };
L2NormProbe "OutputNorm" = { targetName = "Output"; probeOutputFile = "norm.txt"; };
ParameterSweep "Input":valueV = { 1; 2; };
"""


def test_parameter_sweep_runs_every_member(tmp_path):
    """OpenPV runs a ParameterSweep's members in sequence, each into <outputPath>/paramsweep_<i>/
    (under -o too); a layer probe's deprecated targetName still names its layer."""
    from pvmpi import load_sweep as load_models

    (tmp_path / "sweep.params").write_text(SWEEP)
    with pytest.warns(UserWarning, match="targetName is deprecated"):
        models = load_models(tmp_path / "sweep.params", ["column.stopTime=3"], output_path="elsewhere")
    assert [m.column["outputPath"] for m in models] == ["elsewhere/paramsweep_0/", "elsewhere/paramsweep_1/"]
    assert [m.group("Input")["valueV"] for m in models] == [1, 2] and models[1].column["stopTime"] == 3
    assert models[0].group("OutputNorm")["targetLayer"] == "Output"
    proc = subprocess.run([sys.executable, "-m", "pvmpi", "-p", "sweep.params", "-q"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    for i, value in enumerate((1, 2)):
        norm = (tmp_path / "out" / f"paramsweep_{i}" / "norm_batchElement_0.txt").read_text()
        assert norm.splitlines()[-1].endswith(f"{4.0 * value:f}")  # sqrt(16 * value^2)
