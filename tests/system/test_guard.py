"""The numerical guard: a NaN or Inf stops the run at its step, names layer, batch element and step,
and leaves the outputs and checkpoints of the steps before intact (issue: robustness, item 3)."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from generated.networks import networks
from hypothesis import HealthCheck, given, settings
from running import mpi_command

from pvmpi.io import pvp

REPO = Path(__file__).resolve().parents[2]

NET = """
column: {class: HyPerCol, nx: 4, ny: 4, nbatch: 2, stopTime: 6, checkpointWrite: true,
         checkpointWriteDir: out/ck, checkpointWriteStepInterval: 1, errorOnNotANumber: ENOAN}
Input: {class: PvpLayer, inputPath: in.pvp, displayPeriod: 2, batchMethod: byFile, phase: 0}
Out: {class: HyPerLayer, phase: 1, InitVType: ZeroV}
InputToOut: {class: IdentConn, channelCode: 0}
"""


def launch(tmp_path, bad, ranks=1, errorOnNotANumber=False, extra="", fresh=False, layout=None, interval=1,
           stop=6):
    """Frames of value index + 1; frame 3 (element 1's second image, shown from t = 3) holds `bad`."""
    with pvp.DenseWriter(tmp_path / "in.pvp", 4, 4, 1) as w:
        for i in range(6):
            frame = np.full((1, 4, 4, 1), i + 1, np.float32)
            if i == 3:
                frame[0, 2, 1, 0] = bad
            w.write(float(i), frame)
    text = textwrap.dedent(NET).replace("ENOAN", str(errorOnNotANumber).lower()) + extra
    text = text.replace("checkpointWriteStepInterval: 1", f"checkpointWriteStepInterval: {interval}")
    text = text.replace("stopTime: 6", f"stopTime: {stop}")
    (tmp_path / "net.yaml").write_text(text)
    args = ["-m", "pvmpi", "net.yaml", "-o", "out", "-q"] + (["--overwrite"] if fresh else [])
    layout = ["-batchwidth", str(ranks)] if layout is None else layout
    cmd = [sys.executable, *args] if ranks == 1 else mpi_command(ranks, *args, *layout)
    env = dict(os.environ, NUMBA_NUM_THREADS="1")
    return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_non_finite_input_stops_the_run_at_its_step(tmp_path, bad):
    proc = launch(tmp_path, bad)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines == ["pvmpi: error: Input: activity A is not finite (NaN or Inf) at t = 3 (step 3), batch "
                     "element 1 (the run stopped before writing this step; outputs and checkpoints of the "
                     "steps before are intact)"], proc.stderr
    for name in ("Input", "Out"):  # steps 0, 1, 2 were written, the poisoned step 3 not
        out = pvp.read(tmp_path / "out" / f"{name}.pvp")
        np.testing.assert_array_equal(out.times, [0, 1, 2])
        assert np.isfinite(out.values).all()
    steps = sorted(int("".join(ch for ch in p.name if ch.isdigit())) for p in (tmp_path / "out" / "ck").iterdir()
                   if p.name.startswith("Checkpoint"))
    assert steps == [0, 1, 2]  # no checkpoint of the poisoned state


def test_guard_is_collective_under_mpi(tmp_path):
    """Element 1 lives on rank 1 of a batch split: rank 0 still prints the one message, exit 2."""
    proc = launch(tmp_path, np.nan, ranks=2)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Input: activity A is not finite" in lines[0] and "batch element 1" in lines[0]


@pytest.mark.parametrize("ranks, layout", [(2, ["-batchwidth", "2"]), (4, ["-batchwidth", "2", "-rows", "2"])],
                         ids=["2 ranks", "4 ranks"])
@pytest.mark.parametrize("interval", [2, 100], ids=["checkpoints every 2 steps", "no checkpoint before the end"])
def test_a_poisoned_step_leaves_every_output_at_the_step_before(tmp_path, ranks, layout, interval):
    """With more than one rank, step 3's verdict arrives during step 7 (or at a checkpoint before):
    the outputs steps 3-6 wrote meanwhile (layers, probe text) are cut back on every rank, and no
    checkpoint holds step 3 or later."""
    extra = ("OutNorm: {class: L2NormProbe, targetLayer: Out, probeOutputFile: OutNorm.txt}\n"
             "InputStats: {class: StatsProbe, targetLayer: Input, probeOutputFile: InputStats.txt}\n")
    proc = launch(tmp_path, np.nan, ranks=ranks, layout=layout, extra=extra, interval=interval, stop=12)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "at t = 3 (step 3), batch element 1" in lines[0], proc.stderr
    for name in ("Input", "Out"):
        np.testing.assert_array_equal(pvp.read(tmp_path / "out" / f"{name}.pvp").times, [0, 1, 2])
    for probe in ("OutNorm", "InputStats"):
        for b in (0, 1):
            text = (tmp_path / "out" / f"{probe}_batchElement_{b}.txt").read_text()
            times = [float(ln.replace("t==", " ").split(",")[0].split()[0]) for ln in text.splitlines()]
            assert times == [0, 1, 2], (probe, b, text)
    steps = sorted(int(p.name[len("Checkpoint"):]) for p in (tmp_path / "out" / "ck").iterdir()
                   if p.name.startswith("Checkpoint"))
    assert steps == ([0, 2] if interval == 2 else [0]), steps


def test_error_on_not_a_number_also_checks_membrane_potentials(tmp_path):
    """-Inf in V that a threshold turns into A = AMin: found only with errorOnNotANumber."""
    extra = ("Thresholded: {class: ANNLayer, phase: 1, InitVType: ZeroV, VThresh: 0}\n"
             "Scaled: {class: RescaleConn, scale: 10, channelCode: 0, preLayerName: Input, "
             "postLayerName: Thresholded}\n")
    proc = launch(tmp_path, -3e38, extra=extra)  # finite input; 10x overflows to -Inf in V only
    assert proc.returncode == 0, proc.stderr
    proc = launch(tmp_path, -3e38, errorOnNotANumber=True, extra=extra, fresh=True)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if not ln.startswith("pvmpi: --overwrite: removed")]
    assert lines == [
        "pvmpi: error: Thresholded: membrane potential V is not finite (NaN or Inf) at t = 3 (step 3), batch "
        "element 1 (the run stopped before writing this step; outputs and checkpoints of the steps before are "
        "intact)"]


@settings(max_examples=20, derandomize=True, deadline=None, database=None, print_blob=False,
          suppress_health_check=list(HealthCheck))
@given(net=networks())
def test_the_guards_sums_are_each_layers_activity_after_every_step(net):
    """Drawn networks, every class the generator knows: after each step the sums the guard reads
    (from the pass that wrote A, or from A's cached stats) are those of every layer's A as it is
    then — a class that changes A after its transfer must drop them. Fails if one keeps them."""
    import tempfile

    from pvmpi import PvmpiError, Simulation
    from pvmpi.model.config import parse_yaml
    from pvmpi.model.network_model import build_model

    with tempfile.TemporaryDirectory() as root:
        model = build_model(parse_yaml(net.yaml(net.inputs.write(Path(root) / "in"), Path(root) / "out"), "g.yaml"))
        with Simulation(model, output_path=str(Path(root) / "out"), overwrite=True) as sim:
            col = sim.column
            while col.t < col.stop_time - col.dt / 2:
                try:
                    sim.step()
                except PvmpiError:  # a drawn network that diverges: the guard's own tests cover that
                    break
                for layer in col.layers.values():
                    _check_sums(layer, col.kernels.to_host(layer.A), f"at t = {col.t}")


def _check_sums(layer, A, when):
    """The guard's sums of ``layer`` against A's own, within summation order."""
    from pvmpi.kernels import numpy_ref

    t = layer.tile
    stats = numpy_ref.layer_stats(A, layer.margin_x, layer.margin_y, t.ny, t.nx, 0.0)
    got, want, scale = layer.activity_sums(), stats[:, 0], stats[:, 1]
    where = f"{layer.name} ({type(layer).__name__}) {when}: {got} against {want}"
    np.testing.assert_array_equal(np.isfinite(got), np.isfinite(want), err_msg=where)
    ok = np.isfinite(want)  # summation order: within 1e-9 of the sum of magnitudes
    assert np.all(np.abs(got[ok] - want[ok]) <= 1e-9 * scale[ok]), where


def test_dropout_and_mask_layers_drop_the_sums_their_transfer_took(tmp_path):
    """DropoutLayer and MaskLayer change A after the transfer that summed A: the sums the guard
    reads are those of A as it is at the end of the step."""
    from pvmpi import Simulation
    from pvmpi.model.config import parse_yaml
    from pvmpi.model.network_model import build_model

    rng = np.random.default_rng(2)
    with pvp.DenseWriter(tmp_path / "in.pvp", 4, 4, 1) as w:
        for i in range(2):
            w.write(float(i), (1 + rng.random((1, 4, 4, 1))).astype(np.float32))
    text = f"""
column: {{class: HyPerCol, nx: 4, ny: 4, nbatch: 2, stopTime: 3, outputPath: {tmp_path / 'out'}}}
Input: {{class: PvpLayer, inputPath: {tmp_path / 'in.pvp'}, displayPeriod: 1, batchMethod: byFile, phase: 0}}
Dropped: {{class: DropoutLayer, phase: 1, InitVType: ZeroV, probability: 50, VThresh: -infinity}}
Masked: {{class: MaskLayer, phase: 1, InitVType: ZeroV, maskMethod: maskFeatures, featureIdxs: [0]}}
InputToDropped: {{class: IdentConn, channelCode: 0}}
InputToMasked: {{class: IdentConn, channelCode: 0}}
"""
    with Simulation(build_model(parse_yaml(text, "net.yaml")), output_path=str(tmp_path / "out")) as sim:
        for _ in range(3):
            sim.step()
            for name in ("Dropped", "Masked"):
                _check_sums(sim.column.layers[name], sim.column.layers[name].A, f"at t = {sim.column.t}")
