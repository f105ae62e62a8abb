"""Hostile input for the PVP reader, the params parser and the YAML loader: a clean PvmpiError, never a
traceback, a hang or a large allocation.

Hypothesis draws headers with absurd fields, frames that claim more data than
the file holds, byte-level damage to valid files, and params text made of
OpenPV's own tokens shuffled and damaged. Each fuzz test has a bounded number
of examples (the file takes well under 30 s). What the fuzzing found is kept
below as explicit regression tests.
"""
import struct
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pvmpi.errors import PvmpiError
from pvmpi.io import pvp
from pvmpi.model.config import parse_yaml
from pvmpi.model.network_model import build_model
from pvmpi.model.params import parse_params

FUZZ = settings(max_examples=150, deadline=2000, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
#: what reading a file of a few KiB may allocate at most (the reader's own tables and one frame)
ALLOCATION_LIMIT = 64 * 2 ** 20

# ------------------------------------------------------------------ PVP

INT32 = st.one_of(st.integers(-4, 16), st.sampled_from([80, 104, 20, 26, 2 ** 16, 2 ** 30, 2 ** 31 - 1, -2 ** 31]),
                  st.integers(-2 ** 31, 2 ** 31 - 1))


#: a size field: small, or large enough that a product of two or three overflows what numpy can describe
DIM = st.integers(1, 4) | st.sampled_from([2 ** 15, 2 ** 30, 2 ** 31 - 1])


@st.composite
def pvp_file(draw):
    """A header (sensible by default, a field or two hostile now and then) and frames that fit it, or not."""
    ftype = draw(st.sampled_from([2, 4, 5, 6, 2, 4, 5, 6, 0, 1, 3, 7, -1]))
    weights = ftype in (3, 5)
    f = dict(headersize=104 if weights else 80, numparams=26 if weights else 20, filetype=ftype,
             nx=draw(DIM), ny=draw(DIM), nf=draw(DIM), numrecords=1, recordsize=0,
             datasize=1 if weights and draw(st.booleans()) else 4, datatype=3, nxprocs=1, nyprocs=1,
             nxExtended=0, nyExtended=0, kx0=0, ky0=0, nbatch=1, nbands=draw(st.integers(1, 3)),
             nxp=draw(DIM), nyp=draw(DIM), nfp=draw(DIM), numpatches=draw(DIM))
    if f["datasize"] == 1:
        f["datatype"] = 1
    for name in draw(st.lists(st.sampled_from(list(f)), max_size=2)):
        f[name] = draw(INT32)
    head = struct.pack("<18id", *list(f.values())[:18], 0.0)
    if weights:
        head += struct.pack("<3i2fi", f["nxp"], f["nyp"], f["nfp"], -1.0, 1.0, f["numpatches"])
    if ftype in (2, 6):
        body = draw(sparse_frames())
    elif weights:
        patch = 8 + f["nxp"] * f["nyp"] * f["nfp"] * (1 if f["datasize"] == 1 else 4)
        size = f["nbands"] * f["numpatches"] * patch
        frame = draw(st.binary(min_size=size, max_size=size)) if 0 < size <= 2048 else b""
        body = frame + (head + frame) * draw(st.integers(0, 2))
    else:
        size = 8 + 4 * f["nx"] * f["ny"] * f["nf"]
        body = draw(st.binary(min_size=size, max_size=size)) * draw(st.integers(0, 3)) if 0 < size <= 2048 else b""
    return head + body + draw(st.binary(max_size=8) | st.just(b""))


@st.composite
def sparse_frames(draw):
    """Sparse frames whose counts may be negative or claim more entries than follow."""
    out = b""
    for _ in range(draw(st.integers(0, 3))):
        count = draw(st.integers(0, 4) | INT32)
        entries = draw(st.integers(0, 4))
        out += struct.pack("<di", 1.0, count)
        out += b"".join(struct.pack("<If", draw(st.integers(0, 2 ** 32 - 1) | st.integers(0, 40)), 1.0)
                        for _ in range(entries))
    return out


def valid_files():
    """Bytes of one valid file of each kind, as the writers make them."""
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        with pvp.DenseWriter(d / "a.pvp", 3, 2, 2) as w:
            w.write(1.0, np.arange(24, dtype=np.float32).reshape(2, 2, 3, 2))
        with pvp.SparseWriter(d / "s.pvp", 3, 2, 2) as w:
            w.write(1.0, np.eye(12, dtype=np.float32)[:2].reshape(2, 2, 3, 2))
        with pvp.WeightsWriter(d / "w.pvp", compressed=True) as w:
            w.write(0.0, np.linspace(-1, 1, 2 * 4 * 2 * 2 * 1).reshape(2, 4, 2, 2, 1), 2, 2, 1)
        return [(d / n).read_bytes() for n in ("a.pvp", "s.pvp", "w.pvp")]


VALID = valid_files()


@st.composite
def damaged_file(draw):
    """A valid file with bytes overwritten, cut off, or garbage appended."""
    raw = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(raw) - 1))
        chunk = draw(st.binary(min_size=1, max_size=4))
        raw[pos:pos + len(chunk)] = chunk
    if draw(st.booleans()):
        del raw[draw(st.integers(0, len(raw))):]
    return bytes(raw) + draw(st.binary(max_size=16))


PVP_BYTES = st.one_of(
    pvp_file(),
    damaged_file(),
    st.binary(max_size=200),
)


def read_everything(path):
    """What the network and analysis code do with a PVP file; returns nothing, raises PvmpiError."""
    h = pvp.read_header(path)
    if h["filetype"] in (pvp.PVP_WGT_FILE_TYPE, pvp.PVP_KERNEL_FILE_TYPE):
        pvp.read(path)
        pvp.read_weights(path, 0)
        return
    with pvp.ActivityFile(path) as af:
        for k in range(min(af.num_frames, 3)):
            af.read_frame_sparse(k)
            if af.num_neurons * 4 <= ALLOCATION_LIMIT // 4:  # an expansion the caller asked for
                af.read_frame(k)
    pvp.read(path, sparse=True)


def assert_clean(call, name):
    """`call()` raises nothing but a one-line PvmpiError naming `name`, allocates little, returns quickly."""
    tracemalloc.start()
    t0 = time.monotonic()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            call()
    except PvmpiError as e:
        assert "\n" not in str(e) and name in str(e)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < ALLOCATION_LIMIT, peak
    assert time.monotonic() - t0 < 2


def assert_pvp_clean(data):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "fuzz.pvp"
        path.write_bytes(data)
        assert_clean(lambda: read_everything(path), "fuzz.pvp")


@FUZZ
@given(PVP_BYTES)
def test_fuzz_pvp_reader(data):
    assert_pvp_clean(data)


# regression tests: what fuzzing (and the bad-input table) found

def header(**changes):
    """A valid 2x2x1 dense header with fields changed."""
    fields = dict(headersize=80, numparams=20, filetype=4, nx=2, ny=2, nf=1, numrecords=1, recordsize=4,
                  datasize=4, datatype=3, nxprocs=1, nyprocs=1, nxExtended=2, nyExtended=2, kx0=0, ky0=0,
                  nbatch=1, nbands=1)
    fields.update(changes)
    return struct.pack("<18id", *fields.values(), 0.0)


def weights_header(nxp, nyp, nfp, numpatches=1):
    return header(headersize=104, numparams=26, filetype=5) + struct.pack("<3i2fi", nxp, nyp, nfp, 0, 1, numpatches)


@pytest.mark.parametrize("data, message", [
    # patch sizes whose numpy record type cannot exist (was: ValueError from numpy)
    (weights_header(2 ** 31 - 1, 2 ** 31 - 1, 2 ** 31 - 1), "truncated file"),
    (weights_header(2 ** 30, 2 ** 30, 4, 2 ** 31 - 1), "truncated file"),
    # a sparse file of a few bytes claiming 2^93 neurons (was: an attempt to allocate the dense frame)
    (header(filetype=6, nx=2 ** 31 - 1, ny=2 ** 31 - 1, nf=2 ** 31 - 1) + struct.pack("<di", 0.0, 0),
     "more than a sparse file's 32-bit indices"),
    (header(filetype=6, nx=2 ** 16, ny=2 ** 15, nf=2) + struct.pack("<di", 0.0, 0), "more than half"),
    (header(filetype=6) + struct.pack("<di", 0.0, 2 ** 31 - 1), "numActive 2147483647"),
    (header(filetype=6) + struct.pack("<di", 0.0, 3) + struct.pack("<If", 1, 1.0), "runs past the end"),
    (header(headersize=2 ** 31 - 1), "headersize 2147483647"),
    (header(numparams=-5), "numparams -5"),
    (header(nf=-1), "nf -1"),
    (header()[:79], "truncated PVP header"),
])
def test_hostile_pvp_regressions(data, message):
    def dense(path):
        with pvp.ActivityFile(path) as af:
            af.read_frame(0)

    def read(path):
        if pvp.read_header(path)["filetype"] == 5:
            pvp.read_weights(path)
        else:
            dense(path)

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "bad.pvp"
        path.write_bytes(data)
        with pytest.raises(PvmpiError, match=message) as err:
            read(path)
        assert str(path) in str(err.value)


# ------------------------------------------------------------------ params

GOOD_PARAMS = """\
debugParsing = false;
HyPerCol "column" = {
    nx = 8; ny = 8; nbatch = 2; dt = 1.0; stopTime = 10;
    outputPath = "out";
};
HyPerLayer "A" = {
    nxScale = 1; nyScale = 1; nf = 1; phase = 0; InitVType = "ZeroV";
};
HyPerLayer "B" = {
    #include "A";
    @phase = 1;
};
HyPerConn "AToB" = {
    channelCode = 0; nxp = 3; nyp = 3; weightInitType = "UniformWeight"; weightInit = 1.0;
    sharedWeights = true; normalizeMethod = "none"; writeStep = -1; plasticityFlag = false;
};
ParameterSweep "A":nf = { 1; 2; };
"""

TOKENS = ['HyPerCol', 'HyPerLayer', 'HyPerConn', 'IdentConn', '"column"', '"A"', '"B"', '"x y"', '"a/b.txt"',
          '=', '{', '}', ';', ',', '[', ']', ':', '#include', '@phase', 'nx', 'nf', 'phase', 'NULL', 'true',
          'infinity', '-infinity', '1', '-3', '2.5', '1e5', '1.5e-3', '.5', '99999999999999999999',
          'ParameterSweep', 'BatchSweep', 'disable', 'debugParsing', '// comment\n', '\n', ' ', '"', '#', '@',
          '\x00', 'é', '/', '0x10', '9' * 5000, 'x' * 5000]


def parse_and_build(text):
    """What `python -m pvmpi x.params` does with the text; raises nothing but PvmpiError."""
    pf = parse_params(text, "fuzz.params")
    for raw in pf.sweep_configs():
        build_model(raw)


@st.composite
def damaged_params(draw):
    text = GOOD_PARAMS
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 6))
        text = text[:pos] + draw(st.sampled_from(TOKENS) | st.text(max_size=3)) + text[pos + cut:]
    return text


PARAMS_TEXT = st.one_of(
    st.lists(st.sampled_from(TOKENS), max_size=60).map(" ".join),
    damaged_params(),
    st.text(max_size=200),
)


@FUZZ
@given(PARAMS_TEXT)
def test_fuzz_params_parser(text):
    assert_clean(lambda: parse_and_build(text), "fuzz.params")


def test_the_unbroken_params_text_builds():
    """The fuzz starts from a params file that is valid: damage is what makes it fail."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parse_and_build(GOOD_PARAMS)


def chain_of_includes(n):
    groups = ['HyPerCol "column" = { nx = 8; ny = 8; };', 'HyPerLayer "L0" = { nf = 1; phase = 0; };']
    groups += [f'HyPerLayer "L{i}" = {{ #include "L{i - 1}"; @phase = {i % 3}; }};' for i in range(1, n)]
    return "\n".join(groups)


@pytest.mark.parametrize("text, message", [
    ("HyPerCol \"column\" = { nx = " + "9" * 20000 + "; ny = 8; };", "column.nx"),  # was: ValueError of int()
    ("HyPerCol \"column\" = { nx = 8; ny = 8; " + "a" * 1_000_000 + " = 1; };", "unknown parameter"),
    ('HyPerCol "column" = { nx = 8; ny = 8; };\nHyPerLayer "L" = { #include "L"; };', "cannot include itself"),
    ('HyPerCol "column" = { nx = 8; ny = 8; };\nHyPerLayer "L" = { #include "M"; };\n'
     'HyPerLayer "M" = { #include "L"; };', "defined before this one"),  # a cycle needs a forward include
    ('HyPerCol "column" = { outputPath = "' + "x" * 100000, "unterminated"),
])
def test_hostile_params_regressions(text, message):
    with pytest.raises(PvmpiError, match=message):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # unknown parameters are errors here: errorOnUnusedParam
            text = text.replace('"column" = {', '"column" = { errorOnUnusedParam = true;', 1)
            parse_and_build(text)


def test_deeply_nested_includes_parse_in_linear_time():
    t0 = time.monotonic()
    pf = parse_params(chain_of_includes(3000), "chain.params")
    assert len(pf.groups) == 3001 and pf.group("L2999").values["phase"] == 2999 % 3
    assert time.monotonic() - t0 < 5


# ------------------------------------------------------------------ YAML: the safe loader only

@pytest.mark.parametrize("text, message", [
    ("column:\n  nx: !!python/object/apply:os.system ['echo pwned']\n", "python/object"),
    ("column:\n  nx: !!python/name:os.system\n", "python/name"),
    ("a: " + "[" * 100000 + "]" * 100000 + "\n", "YAML"),
    ("column:\n  ? [1, 2]\n  : x\n", "not a string"),
    ("a: &a [1]\nb: *a\n", "a group must be a mapping"),
])
def test_hostile_yaml_is_a_clean_error(text, message):
    with pytest.raises(PvmpiError, match=message):
        parse_yaml(text, "fuzz.yaml")
