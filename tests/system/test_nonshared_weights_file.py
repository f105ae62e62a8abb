"""Non-shared weights read from a file land on OpenPV's patches (found by the OpenPV oracle)."""
import numpy as np

from pvmpi.io import pvp

CONFIG = """
column: {{class: HyPerCol, nx: 8, ny: 8, dt: 1, stopTime: 1, outputPath: {out}}}
Pre: {{class: ConstantLayer, nf: 1, InitVType: ConstantV, valueV: 1, writeStep: -1}}
Post: {{class: HyPerLayer, nf: 1, phase: 1, InitVType: ZeroV, writeStep: -1}}
PreToPost: {{class: HyPerConn, channelCode: 0, nxp: 3, nyp: 3, sharedWeights: false,
             weightInitType: FileWeight, initWeightsFile: {weights}, normalizeMethod: none,
             plasticityFlag: false, writeStep: -1}}
"""


def test_file_patches_follow_the_global_extended_order(tmp_path):
    """The file has one patch per neuron of the extended pre layer, numbered [y][x][f] from its
    corner; each weight here is its patch's number, so a kernel shows which patch it read."""
    from mpi4py import MPI
    from running import run_network

    from pvmpi.model.config import parse_yaml
    from pvmpi.model.network_model import build_model

    nxe = nye = 8 + 2  # margin 1 for 3x3 patches
    W = np.broadcast_to(np.arange(nye * nxe, dtype=np.float32)[None, :, None, None, None],
                        (1, nye * nxe, 3, 3, 1))
    with pvp.WeightsWriter(tmp_path / "w.pvp") as w:
        w.write(0.0, W, nxe, nye, 1)
    model = build_model(parse_yaml(CONFIG.format(out=tmp_path / "out", weights=tmp_path / "w.pvp")))
    conn = run_network(model, MPI.COMM_SELF, output_path=str(tmp_path / "out")).connections["PreToPost"]
    ye, xe, f = conn.pre_of_kernel()
    got = conn.run.kernels.to_host(conn.W)[0, :, 0, 0, 0]
    np.testing.assert_array_equal(got, ye * nxe + xe)
    corner = np.flatnonzero((ye == 1) & (xe == 1))[0]  # the first restricted neuron
    assert got[corner] == 11  # patch 1*10 + 1 of the file, not patch 0
