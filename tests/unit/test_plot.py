"""`python -m pvmpi plot`: the figures of a short demo run are non-empty PNGs of the expected size."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from PIL import Image  # noqa: E402

from pvmpi.data.dead_leaves import make_image_set  # noqa: E402
from pvmpi.plot import cli as plot_cli  # noqa: E402
from pvmpi.plot import figures  # noqa: E402

DEMO = Path(__file__).resolve().parents[2] / "configs" / "lca_demo.yaml"
NBATCH = 4


@pytest.fixture(scope="session")
def demo_output(tmp_path_factory):
    """A 200-step demo run: 2 display periods, 4 batch elements, weights saved every 100 steps."""
    tmp = tmp_path_factory.mktemp("plot_demo")
    images = make_image_set(tmp / "images", count=8, size=64, seed=1)
    out = tmp / "out"
    sets = ["column.stopTime=200", f"column.nbatch={NBATCH}", f"Input.inputPath={images}",
            "V1ToInputError.writeStep=100", "Input.displayPeriod=100"]
    for layer in ("Input", "InputError", "V1", "InputRecon"):  # one frame per display period
        sets += [f"{layer}.writeStep=100", f"{layer}.initialWriteTime=100"]
    args = [sys.executable, "-m", "pvmpi", str(DEMO), "-o", str(out), "-q"]
    for s in sets:
        args += ["--set", s]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return out


def png_size(path):
    with Image.open(path) as im:
        assert im.format == "PNG"
        im.load()
        arr = np.asarray(im.convert("L"))
    assert arr.std() > 5, f"{path} looks empty"  # some contrast: not a blank image
    return im.size


def test_plot_demo_output(demo_output, tmp_path):
    plots = tmp_path / "plots"
    assert plot_cli.main([str(demo_output), "-o", str(plots)]) == 0
    names = sorted(p.name for p in plots.iterdir())
    assert names == sorted(["tableau_V1ToInputError.png", "weight_change_V1ToInputError.png",
                            "recon_InputRecon_t100.png", "recon_InputRecon_t200.png",
                            "probe_energy.png", "probe_InputErrorL2Norm.png", "probe_V1L1Norm.png",
                            "probe_V1L0Norm.png"])
    assert png_size(plots / "tableau_V1ToInputError.png") == figures.tableau_size()
    assert png_size(plots / "weight_change_V1ToInputError.png") == figures.weight_change_size()
    for t in (100, 200):
        assert png_size(plots / f"recon_InputRecon_t{t}.png") == figures.recon_size(NBATCH)
    for name in ("energy", "InputErrorL2Norm", "V1L1Norm", "V1L0Norm"):
        # the layers are written every 100 steps: the display period, so two panels
        assert png_size(plots / f"probe_{name}.png") == figures.probe_size(with_periods=True)
    assert figures.tableau_size() == (800, 860) and figures.recon_size(4) == (750, 600)
    assert figures.probe_size(True) == (1000, 750)


def test_plot_options_and_default_dir(demo_output, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(demo_output, run)
    paths = plot_cli.plot_output(run, max_writes=1, max_batch=2, frame=0, sort=False,
                                 display_period=0)
    assert all(Path(p).parent == run / "plots" for p in paths)
    recon = [p for p in paths if "recon_" in p]
    assert [Path(p).name for p in recon] == ["recon_InputRecon_t100.png"]
    assert png_size(recon[0]) == figures.recon_size(2)
    probe = [p for p in paths if "probe_energy" in p][0]
    assert png_size(probe) == figures.probe_size(with_periods=False)


def test_tableau_image_normalises_each_kernel():
    W = np.zeros((5, 2, 3, 1))
    W[0, 0, 0, 0], W[0, 1, 2, 0] = 2.0, -1.0
    W[1, 1, 1, 0] = -0.001
    img, cols, rows = figures.tableau_image(W)
    assert (cols, rows) == (3, 2) and img.shape == (2 * 3 + 1, 3 * 4 + 1)
    k0 = img[1:3, 1:4]
    assert k0[0, 0] == 1.0 and k0[1, 2] == 0.25 and k0[0, 1] == 0.5
    k1 = img[1:3, 5:8]
    assert k1[1, 1] == 0.0 and k1[0, 0] == 0.5  # tiny kernel scaled to full range
    assert np.isnan(img[0]).all() and np.isnan(img[4:, 9:]).all()  # gaps and the empty cell
    colour, _, _ = figures.tableau_image(np.ones((4, 2, 2, 3)))
    assert colour.shape == (2 * 3 + 1, 2 * 3 + 1, 3)
    multi, _, _ = figures.tableau_image(np.ones((4, 2, 2, 2)))  # features side by side
    assert multi.shape == (2 * 3 + 1, 2 * 5 + 1)
    many, cols, rows = figures.tableau_image(np.ones((64, 4, 4, 32)))  # V2's kernels: 32 features
    assert (cols, rows) == (8, 8) and many.shape == (8 * (6 * 4 + 1) + 1,) * 2  # 6x6 features each, square
    ordered, _, _ = figures.tableau_image(W, order=[1, 0, 2, 3, 4])
    np.testing.assert_array_equal(ordered[1:3, 1:4], k1)


def test_relative_change():
    frames = np.zeros((3, 2, 4))
    frames[:, :, 0] = 1.0
    frames[2, 1, 1] = 1.0
    rel = figures.relative_change(frames)
    np.testing.assert_allclose(rel, [[0, 0], [0, 1]])
    assert figures.relative_change(frames[:1]).shape == (0, 2)


def test_nothing_to_plot_and_bad_dir(tmp_path, capsys):
    assert plot_cli.main([str(tmp_path)]) == 0
    assert "nothing to plot" in capsys.readouterr().out
    assert plot_cli.main([str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pvmpi: error: ") and "not a directory" in err
    assert plot_cli.main([str(tmp_path), "--pair", "nocolon"]) == 1


def test_reconstruction_pairs_come_from_the_network(tmp_path):
    """Layers named anything: the error layer's channel-0 input beside its channel-1 input, found in
    the params file the run wrote with its outputs."""
    from pvmpi.io import pvp

    for name in ("Image", "Guess", "Residual"):
        with pvp.DenseWriter(tmp_path / f"{name}.pvp", 4, 4, 1) as w:
            w.write(1.0, np.ones((1, 4, 4, 1), np.float32))
    (tmp_path / "pv.params").write_text(
        'HyPerCol "column" = { nx = 4; ny = 4; };\n'
        'HyPerLayer "Image" = { nf = 1; };\nHyPerLayer "Guess" = { nf = 1; };\nHyPerLayer "Residual" = { nf = 1; };\n'
        'IdentConn "ImageToResidual" = { preLayerName = "Image"; postLayerName = "Residual"; channelCode = 0; };\n'
        'IdentConn "GuessToResidual" = { preLayerName = "Guess"; postLayerName = "Residual"; channelCode = 1; };\n')
    assert plot_cli.OutputDir(tmp_path).recon_pairs() == [("Image", "Guess")]
