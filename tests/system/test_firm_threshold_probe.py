"""FirmThresholdCostFnProbe on a tiny network: Σ c(a) per batch element; maskLayerName read and not
applied, as in OpenPV (facts §5.2)."""
import textwrap

import numpy as np
import pytest

from pvmpi.io import pvp
from pvmpi.model.config import parse_yaml
from pvmpi.model.network_model import build_model

NET = """
column: {class: HyPerCol, nx: 4, ny: 4, nbatch: 2, stopTime: 2}
Input: {class: PvpLayer, inputPath: IN_PVP, displayPeriod: 1, batchMethod: byFile, phase: 0}
Mask: {class: PvpLayer, inputPath: MASK_PVP, displayPeriod: 1, batchMethod: byFile, phase: 0}
Cost: {class: FirmThresholdCostFnProbe, targetLayer: Input, VThresh: 0.5, VWidth: 0.25,
       probeOutputFile: cost.txt}
MaskedCost: {class: FirmThresholdCostFnProbe, targetLayer: Input, maskLayerName: Mask, VThresh: 0.5,
             VWidth: 0.25, probeOutputFile: masked.txt}
"""


def cost(a, w):
    x = np.abs(a.astype(np.float64))
    return np.where(x < w, x * (1 - x / (2 * w)), w / 2).sum()


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_firm_threshold_cost_probe(tmp_path, backend):
    from mpi4py import MPI
    from running import run_network

    rng = np.random.default_rng(4)
    frames = rng.uniform(-1.2, 1.2, (6, 4, 4, 1)).astype(np.float32)  # some above w, some below
    masks = (rng.random((6, 4, 4, 1)) < 0.5).astype(np.float32)
    for name, data in (("in.pvp", frames), ("mask.pvp", masks)):
        with pvp.DenseWriter(tmp_path / name, 4, 4, 1) as w:
            for i, frame in enumerate(data):
                w.write(float(i), frame[None])
    text = NET.replace("IN_PVP", str(tmp_path / "in.pvp")).replace("MASK_PVP", str(tmp_path / "mask.pvp"))
    model = build_model(parse_yaml(textwrap.dedent(text), "net.yaml"))
    with pytest.warns(UserWarning, match="MaskedCost: maskLayerName is read and not applied"):
        run_network(model, MPI.COMM_SELF, backend=backend, output_path=str(tmp_path / "out"))
    w = 0.75
    shown = pvp.read(tmp_path / "out" / "Input.pvp").values  # [t, b, y, x, f]: what the probes saw
    mask = pvp.read(tmp_path / "out" / "Mask.pvp").values
    assert shown.shape[:2] == (3, 2) and mask.any() and not mask.all()
    for b in range(2):
        lines = {n: (tmp_path / "out" / f"{n}_batchElement_{b}.txt").read_text().splitlines()
                 for n in ("cost", "masked")}
        assert len(lines["cost"]) == len(lines["masked"]) == 3  # t = 0, 1, 2
        for t in range(3):
            got = float(lines["cost"][t].split(",")[-1])
            got_masked = float(lines["masked"][t].split(",")[-1])
            assert got == pytest.approx(cost(shown[t, b], w), abs=2e-6), (b, t)
            assert got_masked == got  # OpenPV's norm probes never apply their mask
