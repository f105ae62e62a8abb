"""Every example in configs/ runs: a few steps each, the cluster template as a dry run.

The three batching examples must feed the same frames to the same batch
elements where OpenPV's rules (facts 3.9b) say they are equivalent:
bySpecified with start_frame_index [0, 1, 2, 3] and skip_frame_index
[4, 4, 4, 4] is byImage (= byFile), and byMovie (= byList) is bySpecified
with start [0, 4, 8, 12] and skip [1, 1, 1, 1].
"""
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pvmpi.data.dead_leaves import make_image_set
from pvmpi.io import pvp

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"

# config -> (image set, --set overrides for a short run); None: run in its own test below
SHORT = ["column.stopTime=10", "Input.displayPeriod=5"]  # two display periods, one dictionary update
EXAMPLES = {
    "lca_demo.yaml": ("gray", SHORT),
    "lca_colour.yaml": ("colour", SHORT + ["Input.writeStep=5", "Input.initialWriteTime=5"]),
    "lca_hierarchy.yaml": ("gray", SHORT),
    "lca_bench.yaml": ("bench", ["column.stopTime=2", "column.checkpointWrite=false",
                                 "column.lastCheckpointDir=checkpoint"]),
    "batch_byspecified.yaml": None,
    "batch_byimage.yaml": None,
    "batch_bymovie.yaml": None,
    "lca_cluster.yaml": None,
}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Small image sets standing in for demo_data/ (the configs' own paths are for users)."""
    root = tmp_path_factory.mktemp("images")
    return {"gray": make_image_set(root / "gray", count=8, size=64, seed=1),
            "colour": make_image_set(root / "colour", count=8, size=64, seed=1, colour=True),
            "bench": make_image_set(root / "bench", count=4, size=128, seed=1),
            "movie": make_image_set(root / "movie", count=16, size=32, seed=1)}


def pvmpi(config, *args, sets=(), cwd=None):
    cmd = [sys.executable, "-m", "pvmpi", str(CONFIGS / config), *map(str, args)]
    for s in sets:
        cmd += ["--set", s]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=cwd)


def test_every_config_is_covered():
    assert sorted(p.name for p in CONFIGS.glob("*.yaml")) == sorted(EXAMPLES)


@pytest.mark.parametrize("config", [c for c, v in EXAMPLES.items() if v is not None])
def test_example_runs(config, images, tmp_path):
    kind, sets = EXAMPLES[config]
    out = tmp_path / "out"
    proc = pvmpi(config, "-o", out, "-q", sets=[f"Input.inputPath={images[kind]}", *sets], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    energies = sorted(out.glob("energy_batchElement_*.txt")) or sorted(out.glob("TotalEnergyProbe_batchElement_*.txt"))
    assert energies
    for path in energies:
        e = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
        assert len(e) >= 2 and np.isfinite(e[:, -1]).all() and (e[:, -1] > 0).all()
    if config == "lca_colour.yaml":
        frames = pvp.read(out / "Input.pvp").values  # [writes, batch, y, x, f]
        assert frames.shape[-1] == 3 and not np.allclose(frames[..., 0], frames[..., 1])
        assert pvp.read(out / "V1ToInputError.pvp").values.shape[-1] == 3  # colour patches: nfp = 3
    if config == "lca_hierarchy.yaml":
        for name in ("V2Energy", "V1ErrorL2Norm", "V2L0Norm"):
            assert len(list(out.glob(f"{name}_batchElement_*.txt"))) == 8
        assert pvp.read(out / "V2ToV1Error.pvp").values.shape[1:] == (1, 64, 4, 4, 32)


def frames_shown(out):
    """{batch element: [frame index at each update]} from timestamps/Input.txt."""
    shown = {}
    for line in (out / "timestamps" / "Input.txt").read_text().splitlines():
        head, _, index = line.rpartition("index: ")
        g = int(head.split("batch element: ")[1].split(",")[0])
        shown.setdefault(g, []).append(int(index.split(",")[0]))
    return shown


def test_batching_examples_agree_with_openpv_rules(images, tmp_path):
    runs = {}
    for name, config, sets in (
            ("specified", "batch_byspecified.yaml", []),
            ("image", "batch_byimage.yaml", []),
            ("movie", "batch_bymovie.yaml", []),
            ("specified_as_movie", "batch_byspecified.yaml",
             ["Input.start_frame_index=[0, 4, 8, 12]", "Input.skip_frame_index=[1, 1, 1, 1]"])):
        out = tmp_path / name
        proc = pvmpi(config, "-o", out, "-q", sets=[f"Input.inputPath={images['movie']}", *sets], cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        runs[name] = (frames_shown(out), pvp.read(out / "Input.pvp"))
    # OpenPV's rules with N = 16 frames, B = 4, 5 updates (the last one wraps around)
    assert runs["specified"][0] == {g: [(g + 4 * k) % 16 for k in range(5)] for g in range(4)}
    assert runs["movie"][0] == {g: [(4 * g + k) % 16 for k in range(5)] for g in range(4)}
    for a, b in (("specified", "image"), ("movie", "specified_as_movie")):
        assert runs[a][0] == runs[b][0]
        np.testing.assert_array_equal(runs[a][1].values, runs[b][1].values)
        np.testing.assert_array_equal(runs[a][1].time, runs[b][1].time)
    assert not np.array_equal(runs["specified"][1].values, runs["movie"][1].values)


def test_cluster_template_dry_run(images, tmp_path):
    proc = pvmpi("lca_cluster.yaml", "-n", "--batchwidth", 64, sets=[f"Input.inputPath={images['gray']}"],
                 cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "512x512, nbatch 256" in out and "= 64 processes (4 batch elements" in out
    assert "V1                       HyPerLCALayer    256x256x128" in out
    assert "memory (estimate)" in out and "the run could start" in out
    figures = re.search(r"memory \(estimate\): (\S+ \S+) of arrays per process.* (\S+ \S+) over 64", out)
    for doc in (REPO / "docs" / "examples.md", REPO / "configs" / "lca_cluster.yaml"):  # one source
        text = " ".join(doc.read_text().split())
        assert all(f in text for f in figures.groups()), (doc, figures.groups())
    assert not (tmp_path / "output").exists()  # a dry run writes nothing
    proc = pvmpi("lca_cluster.yaml", "-n", "--batchwidth", 3, sets=[f"Input.inputPath={images['gray']}"],
                 cwd=tmp_path)
    assert proc.returncode != 0 and "nbatch=256 is not divisible by BatchWidth=3" in proc.stderr
    listed = tmp_path / "list.txt"  # a list naming an image that is not there: found before the run
    listed.write_text(Path(images["gray"]).read_text() + str(tmp_path / "gone.png") + "\n")
    proc = pvmpi("lca_cluster.yaml", "-n", sets=[f"Input.inputPath={listed}"], cwd=tmp_path)
    assert proc.returncode != 0 and "1 of the 9 listed images not found" in proc.stderr
