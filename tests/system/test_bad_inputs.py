"""A table of bad inputs: each ends the job with exit 2 and one line ``pvmpi: error: ...`` naming the culprit.

Every case writes a tiny network (8x8 images, two layers) into its own
directory, breaks one thing, and runs ``python -m pvmpi`` on it for one step.
Some cases run under ``mpiexec -n 2`` to show that rank 0 alone prints the
message and that no rank is left waiting.
"""
import subprocess
import sys
import time

import numpy as np
import pytest
from running import MPIEXEC

NET_YAML = """\
column:
  class: HyPerCol
  nx: 8
  ny: 8
  nbatch: 2
  dt: 1
  stopTime: 1
  outputPath: out
Input:
  class: ImageLayer
  nf: 1
  phase: 0
  inputPath: list.txt
  displayPeriod: 1
  batchMethod: byFile
Err:
  class: HyPerLayer
  phase: 1
InputToErr:
  class: IdentConn
  channelCode: 0
"""

NET_PARAMS = """\
debugParsing = false;
HyPerCol "column" = {
    nx = 8; ny = 8; nbatch = 2; dt = 1; stopTime = 1;
    outputPath = "out";
};
ImageLayer "Input" = {
    nxScale = 1; nyScale = 1; nf = 1; phase = 0;
    inputPath = "list.txt"; displayPeriod = 1; batchMethod = "byFile";
};
HyPerLayer "Err" = {
    nxScale = 1; nyScale = 1; nf = 1; phase = 1;
};
IdentConn "InputToErr" = {
    preLayerName = "Input"; postLayerName = "Err"; channelCode = 0;
};
"""


def write_images(d):
    from PIL import Image

    rng = np.random.default_rng(1)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(d / f"img{i}.png")
    (d / "list.txt").write_text("img0.png\nimg1.png\n")


def replaced(text, old, new):
    assert old in text, old
    return text.replace(old, new)


def yaml_case(old, new, *extra, edits=()):
    """A YAML config with `old` replaced by `new` (and each (old, new) of `edits`)."""
    def make(d):
        text = NET_YAML
        for a, b in [(old, new), *edits]:
            text = replaced(text, a, b)
        (d / "net.yaml").write_text(text)
        return ["net.yaml", *extra]
    return make


def params_case(old, new, *extra, name="net.params"):
    def make(d):
        (d / name).write_text(replaced(NET_PARAMS, old, new))
        return [name, *extra]
    return make


def file_case(name, content, config_old=None, config_new=None):
    """An extra file `name` with bytes `content` (or a callable making it), used by the YAML config."""
    def make(d):
        path = d / name
        if callable(content):
            content(path)
        else:
            path.write_bytes(content)
        text = NET_YAML if config_old is None else replaced(NET_YAML, config_old, config_new)
        (d / "net.yaml").write_text(text)
        return ["net.yaml"]
    return make


# ------------------------------------------------------------------ PVP files

def dense_pvp(nx=8, ny=8, nf=1, frames=2):
    def make(path):
        from pvmpi.io.pvp import DenseWriter

        with DenseWriter(path, nx, ny, nf) as w:
            w.write(0.0, np.ones((frames, ny, nx, nf), np.float32))
    return make


def patched_pvp(offset, value, dtype="<i4", keep=None, base=None):
    """A valid dense 8x8x1 file with one header field overwritten (and optionally cut to `keep` bytes)."""
    def make(path):
        (base or dense_pvp())(path)
        raw = bytearray(path.read_bytes())
        if offset is not None:
            raw[offset:offset + np.dtype(dtype).itemsize] = np.array(value, dtype).tobytes()
        path.write_bytes(bytes(raw[:keep]))
    return make


def sparse_pvp_claiming(count):
    """A type-6 file whose one frame says it holds `count` entries but holds one."""
    def make(path):
        from pvmpi.io.pvp import SparseWriter

        with SparseWriter(path, 8, 8, 1) as w:
            w.write_sparse(0.0, [(np.array([3]), np.array([1.0]))])
        raw = bytearray(path.read_bytes())
        raw[88:92] = np.array(count, "<i4").tobytes()
        path.write_bytes(bytes(raw))
    return make


def weights_pvp(path):
    from pvmpi.io.pvp import WeightsWriter

    with WeightsWriter(path) as w:
        w.write(0.0, np.ones((1, 1, 3, 3, 1), np.float32), 1, 1, 1)


def pvp_input(maker):
    return file_case("in.pvp", maker, "class: ImageLayer\n  nf: 1\n  phase: 0\n  inputPath: list.txt",
                     "class: PvpLayer\n  nf: 1\n  phase: 0\n  inputPath: in.pvp")


# ------------------------------------------------------------------ restarts and outputs

def checkpoint_of_other_network(d):
    """A complete checkpoint of a 16x16 network, offered to the 8x8 one."""
    other = replaced(replaced(NET_YAML, "nx: 8", "nx: 16"), "ny: 8", "ny: 16")
    (d / "other.yaml").write_text(other)
    proc = run(d, ["other.yaml", "-o", "other_out", "-q", "--set", "column.lastCheckpointDir=ck"])
    assert proc.returncode == 0, proc.stderr
    (d / "net.yaml").write_text(NET_YAML)
    return ["net.yaml", "-c", "ck"]


def incomplete_checkpoint(d):
    (d / "ck").mkdir()
    (d / "ck" / "checkpoint.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    (d / "net.yaml").write_text(NET_YAML)
    return ["net.yaml", "-c", "ck"]


def output_under_a_file(d):
    (d / "plain").write_text("a file, not a directory\n")
    (d / "net.yaml").write_text(NET_YAML)
    return ["net.yaml", "-o", "plain/out"]


def output_of_another_run(d):
    (d / "out").mkdir()
    (d / "out" / "Err.pvp").write_bytes(b"another run's output")
    (d / "net.yaml").write_text(NET_YAML)
    return ["net.yaml", "-o", "out"]


def raw_config(name, content, *extra):
    def make(d):
        (d / name).write_bytes(content)
        return [name, *extra]
    return make


def corrupt_png(path):
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0\0\0\rIHDR" + b"\xff" * 40)


LONG_NUMBER = "1" * 20000

# id, make(d) -> argv (relative to d), substrings of the message, ranks
CASES = [
    # -------------------------------------------------- YAML config
    ("yaml-syntax", yaml_case("nx: 8", "nx: [8"), ["net.yaml:", "YAML syntax error"], 1),
    ("yaml-unknown-param", yaml_case("phase: 1", "phase: 1\n  VThreshh: 0.1"), ["net.yaml:", "Err.VThreshh"], 1),
    ("yaml-unknown-class", yaml_case("class: HyPerLayer", "class: HyPerLayr"), ["net.yaml:", "Err", "HyPerLayer"], 1),
    ("yaml-wrong-type", yaml_case("nx: 8", "nx: eight"), ["net.yaml:", "column.nx"], 1),
    ("yaml-bad-value", yaml_case("dt: 1", "dt: -1"), ["net.yaml:", "column.dt"], 1),
    ("yaml-missing-link", yaml_case("channelCode: 0", "channelCode: 0\n  preLayerName: Nope"),
     ["net.yaml:", "InputToErr.preLayerName", "Nope"], 1),
    ("yaml-missing-class", yaml_case("  class: HyPerLayer\n", ""), ["net.yaml:", "Err.class"], 1),
    ("yaml-duplicate-group", yaml_case("InputToErr:", "Err:\n  class: HyPerLayer\nInputToErr:"),
     ["net.yaml:", "'Err' is defined twice"], 1),
    ("yaml-empty", raw_config("net.yaml", b""), ["net.yaml", "empty"], 1),
    ("yaml-not-a-mapping", raw_config("net.yaml", b"- column\n- Input\n"), ["net.yaml:", "mapping"], 1),
    ("yaml-not-utf8", raw_config("net.yaml", b"column:\n  class: HyPerCol\n  nx: \xff\xfe\n"), ["net.yaml", "UTF-8"], 1),
    ("config-missing", lambda d: ["nope.yaml"], ["nope.yaml", "cannot read config"], 1),
    ("config-is-a-directory", lambda d: (d / "dir.yaml").mkdir() or ["dir.yaml"], ["dir.yaml", "cannot read"], 1),
    ("set-unknown-group", yaml_case("nx: 8", "nx: 8", "--set", "Nope.nx=3"), ["--set", "Nope"], 1),
    ("bad-option", yaml_case("nx: 8", "nx: 8", "--bogus"), ["--bogus"], 1),
    # -------------------------------------------------- OpenPV .params
    ("params-syntax", params_case("nx = 8;", "nx = 8"), ["net.params:3:", "syntax error"], 1),
    ("params-unknown-class", params_case('HyPerLayer "Err"', 'HyPerLayr "Err"'), ["net.params:", "Err", "HyPerLayr"], 1),
    ("params-unknown-param", params_case('outputPath = "out";', 'outputPath = "out"; errorOnUnusedParam = true; '
                                         'bogusParam = 3;'), ["net.params:", "column.bogusParam"], 1),
    ("params-include-undefined", params_case("nxScale = 1; nyScale = 1; nf = 1; phase = 1;",
                                             '#include "Nope";'), ["net.params:", "#include", "Nope"], 1),
    ("params-include-self", params_case("nxScale = 1; nyScale = 1; nf = 1; phase = 1;",
                                        '#include "Err";'), ["net.params:", "cannot include itself"], 1),
    ("params-include-other-keyword", params_case("nxScale = 1; nyScale = 1; nf = 1; phase = 1;",
                                                 '#include "Input";'), ["net.params:", "Err", "keywords"], 1),
    ("params-unterminated-string", params_case('batchMethod = "byFile";', 'batchMethod = "byFile;'),
     ["net.params:", "unterminated"], 1),
    ("params-long-token", params_case("nf = 1; phase = 1;", f"nf = {LONG_NUMBER}; phase = 1;"),
     ["net.params:", "Err.nf"], 1),
    ("params-no-groups", raw_config("net.params", b"// nothing here\n"), ["net.params", "no groups"], 1),
    ("params-lua", raw_config("net.lua", b"print('hi')\n"), ["net.lua", "Lua"], 1),
    # -------------------------------------------------- images
    ("image-missing", file_case("list2.txt", b"img0.png\nnope.png\n", "list.txt", "list2.txt"),
     ["nope.png", "cannot read image"], 1),
    ("image-corrupt-png", file_case("bad.png", corrupt_png, "list.txt", "bad.png"), ["bad.png", "PNG"], 1),
    ("image-not-an-image", file_case("bad.jpg", b"GIF89a but not really", "list.txt", "bad.jpg"),
     ["bad.jpg", "cannot decode image"], 1),
    ("image-list-empty", file_case("empty.txt", b"\n\n", "list.txt", "empty.txt"),
     ["empty.txt", "Input.inputPath", "empty"], 1),
    ("image-list-missing", file_case("x", b"", "list.txt", "missing.txt"),
     ["missing.txt", "Input.inputPath", "not found"], 1),
    ("image-features", yaml_case("phase: 1\n", "phase: 1\n  nf: 5\n", edits=[("nf: 1", "nf: 5")]),
     ["img0.png", "Input.nf", "nf=5"], 1),
    # -------------------------------------------------- PVP files
    ("pvp-weights-as-input", pvp_input(weights_pvp), ["in.pvp", "unsupported PVP file type 5"], 1),
    ("pvp-unknown-type", pvp_input(patched_pvp(8, 9)), ["in.pvp", "unknown PVP file type 9"], 1),
    ("pvp-truncated-header", pvp_input(patched_pvp(None, 0, keep=40)), ["in.pvp", "truncated PVP header"], 1),
    ("pvp-huge-headersize", pvp_input(patched_pvp(0, 2 ** 31 - 1)), ["in.pvp", "headersize 2147483647"], 1),
    ("pvp-negative-nx", pvp_input(patched_pvp(12, -8)), ["in.pvp", "Input", "nx -8"], 1),
    ("pvp-huge-layer", pvp_input(patched_pvp(16, 2 ** 30)), ["in.pvp", "truncated"], 1),
    ("pvp-frame-past-end", pvp_input(patched_pvp(None, 0, keep=80 + 8 + 4 * 64 + 20)), ["in.pvp", "truncated"], 1),
    ("pvp-sparse-claims-more", pvp_input(sparse_pvp_claiming(50)), ["in.pvp", "frame 0 (50 active) runs past"], 1),
    ("pvp-sparse-negative-count", pvp_input(sparse_pvp_claiming(-5)), ["in.pvp", "numActive -5"], 1),
    ("pvp-wrong-nf", pvp_input(dense_pvp(nf=3)), ["in.pvp", "Input.nf"], 1),
    # -------------------------------------------------- layouts
    ("layout-more-processes", yaml_case("nx: 8", "nx: 8", "-columns", "3"), ["3"], 1),
    ("layout-zero-rows", yaml_case("nx: 8", "nx: 8", "-rows", "0"), ["NumRows", "got 0"], 1),
    ("layout-batch-indivisible", yaml_case("nbatch: 2", "nbatch: 3", "-batchwidth", "2"),
     ["nbatch=3 is not divisible by BatchWidth=2"], 2),
    ("layout-columns-indivisible", yaml_case("nx: 8", "nx: 9", "-columns", "2"), ["nx=9", "NumColumns=2"], 2),
    # -------------------------------------------------- restarts and outputs
    ("restart-missing-dir", yaml_case("nx: 8", "nx: 8", "-c", "nope"), ["nope: -c: no such checkpoint directory"], 1),
    ("restart-incomplete", incomplete_checkpoint, ["ck", "cannot continue from this checkpoint: unreadable"], 1),
    ("restart-other-network", checkpoint_of_other_network, ["ck", "another network"], 1),
    ("output-unwritable", output_under_a_file, ["plain/out", "cannot write the output directory"], 1),
    ("output-of-another-run", output_of_another_run, ["out", "--overwrite"], 1),
]

# the cases that also run under mpiexec -n 2 (rank 0 prints once; nothing hangs)
UNDER_MPI = ["yaml-syntax", "params-syntax", "image-missing", "pvp-truncated-header", "restart-other-network",
             "output-of-another-run"]


def run(d, argv, ranks=1):
    cmd = [sys.executable, "-m", "pvmpi", *argv]
    if ranks > 1:
        cmd = [str(MPIEXEC), "-n", str(ranks)] + cmd
    return subprocess.run(cmd, cwd=d, capture_output=True, text=True, timeout=60)


def with_output(argv):
    """One quiet step into ./out unless the case names its own output."""
    extra = [] if "-o" in argv else ["-o", "out"]
    return argv + extra + ["-q"]


@pytest.fixture
def d(tmp_path):
    write_images(tmp_path)
    return tmp_path


def check(d, make, expect, ranks):
    argv = with_output([str(a) for a in make(d)])
    t0 = time.monotonic()
    proc = run(d, argv, ranks)
    seconds = time.monotonic() - t0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("pvmpi: error: "), proc.stderr
    missing = [s for s in expect if s not in lines[0]]
    assert not missing, lines[0]
    assert seconds < 10, seconds
    return lines[0]


@pytest.mark.parametrize("make, expect, ranks", [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_bad_input_is_one_line_and_exit_2(d, make, expect, ranks):
    check(d, make, expect, ranks)


@pytest.mark.parametrize("make, expect", [pytest.param(c[1], c[2], id=c[0]) for c in CASES if c[0] in UNDER_MPI])
def test_bad_input_under_mpi_is_printed_once(d, make, expect):
    check(d, make, expect, 2)


def test_the_table_is_large_and_distinct():
    ids = [c[0] for c in CASES]
    assert len(ids) >= 30 and len(set(ids)) == len(ids)
    assert set(UNDER_MPI) <= set(ids)


def test_yaml_tags_run_no_code(d):
    """A python/object tag is refused, not executed."""
    check(d, yaml_case("nx: 8", "nx: !!python/object/apply:os.system ['touch pwned']"),
          ["net.yaml:3:", "python/object"], 1)
    assert not (d / "pwned").exists()
