"""The demo learns: the LCA energy at the end of a display period falls as the dictionary learns.

A shortened demo (4 batch elements, 24 dictionary elements, 6 display
periods) from a random dictionary: every batch element's energy at the end
of the last display period must be well below its energy at the end of the
first (measured: 30 % lower; the full demo goes from ~265 to ~150).
"""
import subprocess
import sys
from pathlib import Path

import numpy as np

from pvmpi.data.dead_leaves import make_image_set
from pvmpi.io import pvp

DEMO = Path(__file__).resolve().parents[2] / "configs" / "lca_demo.yaml"


def test_demo_energy_falls(tmp_path):
    images = make_image_set(tmp_path / "images", count=24, size=64, seed=1)
    out = tmp_path / "out"
    sets = ["column.nbatch=4", "column.stopTime=600", f"Input.inputPath={images}", "V1.nf=24",
            "Input.displayPeriod=100", "V1ToInputError.dWMax=0.5"]
    args = [sys.executable, "-m", "pvmpi", str(DEMO), "-o", str(out), "-q"]
    for s in sets:
        args += ["--set", s]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    for g in range(4):
        e = np.loadtxt(out / f"energy_batchElement_{g}.txt", delimiter=",", skiprows=1)
        assert e.shape == (600, 3) and np.all(e[:, 1] == g)
        at = dict(zip(e[:, 0], e[:, 2]))
        first, last = at[100.0], at[600.0]
        assert last < 0.85 * first, f"batch element {g}: energy {first} -> {last}"
    W = pvp.read(out / "V1ToInputError.pvp")
    assert W.values.shape[1:] == (1, 24, 8, 8, 1)
    norms = np.sqrt((W.values[-1] ** 2).sum(axis=(2, 3, 4)))
    np.testing.assert_allclose(norms, 1.0, rtol=1e-5)  # normalizeL2 keeps every element unit-norm
    assert not np.allclose(W.values[0], W.values[-1])  # and it learned
