"""Dead-leaves test images: deterministic, readable, natural-ish statistics."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pvmpi.data.dead_leaves import dead_leaves_image, make_image_set
from pvmpi.errors import PvmpiError
from pvmpi.io.images import load_image, read_image_list


def test_deterministic_and_seed_dependent():
    a = dead_leaves_image(48, np.random.default_rng(3))
    b = dead_leaves_image(48, np.random.default_rng(3))
    c = dead_leaves_image(48, np.random.default_rng(4))
    assert a.dtype == np.uint8 and a.shape == (48, 48)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_statistics_look_natural():
    img = dead_leaves_image(128, np.random.default_rng(0)).astype(float)
    assert 20 < img.std() < 100 and 60 < img.mean() < 200
    grad = np.hypot(np.diff(img, axis=0)[:, :-1], np.diff(img, axis=1)[:-1])
    assert (grad > 30).mean() > 0.01  # occlusion edges
    assert (grad < 10).mean() > 0.4  # flat interiors (noise only)
    amp = np.abs(np.fft.fft2(img - img.mean()))
    f = np.fft.fftfreq(128)
    radius = np.hypot(*np.meshgrid(f, f)).ravel()
    band = (radius > 2 / 128) & (radius < 0.25)
    slope = np.polyfit(np.log(radius[band]), np.log(amp.ravel()[band]), 1)[0]
    assert -2.0 < slope < -0.8  # roughly 1/f amplitude spectrum


def test_image_set_is_readable_and_cached(tmp_path):
    listfile = make_image_set(tmp_path / "set", count=3, size=24, seed=5)
    names = read_image_list(listfile)
    assert len(names) == 3 and names[0].endswith("image_000.png")
    first = [load_image(n) for n in names]
    assert all(x.shape == (24, 24, 1) and x.std() > 0 for x in first)
    stamp = [(tmp_path / "set" / n).stat().st_mtime_ns for n in names]
    assert make_image_set(tmp_path / "set", count=3, size=24, seed=5) == listfile
    assert [(tmp_path / "set" / n).stat().st_mtime_ns for n in names] == stamp
    make_image_set(tmp_path / "set", count=3, size=24, seed=6)  # our own set: remade
    assert not np.array_equal(load_image(names[0]), first[0])
    other = make_image_set(tmp_path / "again", count=2, size=24, seed=5)
    assert np.array_equal(load_image(read_image_list(other)[1]), first[1])
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "images.txt").write_text("mine\n")
    with pytest.raises(PvmpiError, match="overwrite"):
        make_image_set(tmp_path / "user", count=1, size=8, seed=0)


def test_command_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "pvmpi.data.dead_leaves", str(tmp_path),
                          "--count", "2", "--size", "16", "--seed", "1"],
                         capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip().endswith("images.txt")
    assert len(read_image_list(tmp_path / "images.txt")) == 2
