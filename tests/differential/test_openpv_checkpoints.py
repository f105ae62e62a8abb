"""Checkpoints cross between OpenPV and pvmpi: each continues the other's run of the benchmark network
and writes what the other's uninterrupted run writes; OpenPV's LCA-CIFAR tutorial and its own
analysis script run on pvmpi's checkpoints unchanged."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from shared_data import OPENPV_SUITE, SHARED_BENCH, require

from pvmpi.conformance.compare import compare_runs
from pvmpi.conformance.oracle import openpv_env
from pvmpi.conformance.suite import ORACLE_RTOL

PVMPI_ONLY = ("pvmpi_state.h5", "checksums.sha256")  # beside OpenPV's files; OpenPV ignores them
# the params echo and its Lua twin (pvmpi writes its own header, no Lua twin); OpenPV's restart writes
# prev_dW into <conn>.prevDelta.pvp at the first steps after it (its own -c does the same), so that
# file and its position follow OpenPV's restart, not the run
NOT_COMPARED = ("LCA_bench_run.params", ".lua", ".prevDelta")


def bench_copy(tmp_path, name):
    """A writable copy of OpenPV's benchmark folder (its params, its images)."""
    folder = tmp_path / name
    shutil.copytree(require(SHARED_BENCH, "OpenPV's benchmark folder", "PVMPI_SHARED"), folder)
    return folder


def compared(ref, other):
    """The files both runs must agree on: every file of ``ref`` less NOT_COMPARED and PVMPI_ONLY."""
    ref = Path(ref)
    return [str(p.relative_to(ref)) for p in sorted(ref.rglob("*")) if p.is_file()
            and p.name not in PVMPI_ONLY + ("timers.txt",) and not any(s in p.name for s in NOT_COMPARED)]


def run(cmd, cwd):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600, env=openpv_env())
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc


def pvmpi(*args):
    return [sys.executable, "-m", "pvmpi", *args]


def test_openpv_continues_a_pvmpi_checkpoint_of_the_benchmark_network(tmp_path, openpv):
    whole = bench_copy(tmp_path, "pvmpi")
    run(pvmpi("LCA_bench.params", "-q"), whole)
    ck = whole / "output" / "Checkpoints" / "Checkpoint100"
    assert (ck / "V1ToInputError_W.pvp").is_file() and (ck / "timeinfo.bin").is_file()
    cont = bench_copy(tmp_path, "openpv")
    shutil.copytree(whole / "output", cont / "output")
    shutil.rmtree(cont / "output" / "Checkpoints" / "Checkpoint200")
    run([openpv, "-p", "LCA_bench.params", "-t", "1", "-c", "output/Checkpoints/Checkpoint100"], cont)
    files = compared(cont / "output", whole / "output")
    assert "Checkpoints/Checkpoint200/V1ToInputError_W.pvp" in files and "V1.pvp" in files
    diff = compare_runs(whole / "output", cont / "output", rtol=ORACLE_RTOL, files=files)
    assert not diff.problems, diff.problems[:5]
    read_with_pvtools(ck)


def read_with_pvtools(ck):
    """OpenPV's own Python reader (suite/python/pvtools) reads a pvmpi checkpoint's files as pvmpi does."""
    pytest.importorskip("scipy", reason="OpenPV's pvtools need scipy (pip install -e .[test])")
    from pvmpi.io import pvp

    sys.path.insert(0, str(require(OPENPV_SUITE / "python", "OpenPV's Python readers", "PVMPI_OPENPV_SUITE")))
    try:
        import pvtools
    finally:
        sys.path.pop(0)
    for name in ("V1_V.pvp", "V1_A.pvp", "V1_Delays.pvp", "InputError_V.pvp"):
        theirs = pvtools.readpvpfile(str(ck / name))
        mine = pvp.read(ck / name)
        np.testing.assert_array_equal(np.asarray(theirs["values"]), mine.values.reshape(np.shape(theirs["values"])))
        assert list(theirs["time"]) == [100.0] * 4
    theirs = pvtools.readpvpfile(str(ck / "V1ToInputError_W.pvp"))
    _, W, _ = pvp.read_weights(ck / "V1ToInputError_W.pvp", 0)
    np.testing.assert_array_equal(np.squeeze(theirs["values"]), np.squeeze(W))


def test_pvmpi_continues_an_openpv_checkpoint_of_the_benchmark_network(tmp_path, openpv):
    whole = bench_copy(tmp_path, "openpv")
    run([openpv, "-p", "LCA_bench.params", "-t", "1"], whole)
    cont = bench_copy(tmp_path, "pvmpi")
    shutil.copytree(whole / "output", cont / "output")
    shutil.rmtree(cont / "output" / "Checkpoints" / "Checkpoint200")
    run(pvmpi("LCA_bench.params", "-q", "-c", "output/Checkpoints/Checkpoint100"), cont)
    files = compared(whole / "output", cont / "output")
    diff = compare_runs(whole / "output", cont / "output", rtol=ORACLE_RTOL, files=files)
    assert not diff.problems, diff.problems[:5]


def tutorial_copy(tmp_path):
    """A writable copy of OpenPV's LCA-CIFAR tutorial."""
    tutorial = require(OPENPV_SUITE / "tutorials" / "LCA-CIFAR", "OpenPV's LCA-CIFAR tutorial", "PVMPI_OPENPV_SUITE")
    folder = tmp_path / "LCA-CIFAR"
    shutil.copytree(tutorial, folder)
    return folder


def test_lca_cifar_lua_runs_unchanged(tmp_path):
    """``python -m pvmpi input/LCA_CIFAR.lua`` from the tutorial's folder, as its README has OpenPV run
    it, with the one CIFAR image it names (a stand-in: CIFAR-10 is not here)."""
    from PIL import Image

    from pvmpi.data.dead_leaves import dead_leaves_image

    folder = tutorial_copy(tmp_path)
    image = folder / "cifar-10-images" / "6" / "CIFAR_10000.png"
    image.parent.mkdir(parents=True)
    Image.fromarray(dead_leaves_image(32, np.random.default_rng(6), colour=True)).save(image)
    run(pvmpi("input/LCA_CIFAR.lua", "-q"), folder)
    out = folder / "output"
    assert sorted(p.name for p in (out / "Checkpoints").iterdir()) == ["Checkpoint000", "Checkpoint400"]
    from pvmpi.io import pvp

    assert pvp.read(out / "LeakyIntegrator.pvp").values.shape[0] == 401  # every step, t = 0 included


def test_the_lca_cifar_tutorial_runs_and_plot_weights_draws_its_checkpoints(tmp_path):
    """LCA_CIFAR_full.lua as it is (the run shortened to two display periods of 4 images), then the
    tutorial's scripts/plot_weights.py, reading the checkpoints with OpenPV's pvtools."""
    pytest.importorskip("imageio", reason="plot_weights.py needs imageio (pip install -e .[test])")
    pytest.importorskip("scipy", reason="OpenPV's pvtools need scipy (pip install -e .[test])")
    folder = tutorial_copy(tmp_path)
    from PIL import Image

    from pvmpi.data.dead_leaves import dead_leaves_image

    images = folder / "cifar-10-batches-mat"  # where the tutorial's extraction puts CIFAR-10
    images.mkdir()
    rng = np.random.default_rng(10)
    for k in range(8):
        Image.fromarray(dead_leaves_image(32, rng, colour=True)).save(images / f"{k}.png")
    (images / "mixed_cifar.txt").write_text("".join(f"{images / f'{k}.png'}\n" for k in range(8)))
    run(pvmpi("LCA_CIFAR_full.lua", "-q", "--set", "column.nbatch=4", "--set", "column.stopTime=800",
              "--set", "column.checkpointWriteStepInterval=400"), folder / "input")
    checkpoints = sorted(p.name for p in (folder / "output" / "Checkpoints").iterdir())
    assert checkpoints == ["Checkpoint000", "Checkpoint400", "Checkpoint800"]
    env = {**os.environ, "PYTHONPATH": str(OPENPV_SUITE / "python"), "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, "plot_weights.py"], cwd=folder / "scripts", env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    drawn = folder / "Analysis" / "weights"
    assert sorted(p.name for p in drawn.glob("weights_*.png")) == [f"weights_{c}.png" for c in checkpoints]
    from pvmpi.io import pvp

    for c in checkpoints:  # the tableau shows the dictionary of that checkpoint: 128 patches of 8x8x3
        grid = np.asarray(Image.open(drawn / f"weights_{c}.png"))
        assert grid.shape == (8 * 12, 8 * 11, 3) and grid.std() > 0, grid.shape
        _, W, _ = pvp.read_weights(folder / "output" / "Checkpoints" / c / "V1ToInputError_W.pvp", 0)
        patch = W[0, 0] / np.abs(W[0, 0]).max()
        np.testing.assert_array_equal(grid[:8, :8], np.uint8(127.5 * patch + 127.500001))
