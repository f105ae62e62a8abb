"""OpenPV's time-loop semantics on tiny networks: phases, delays, triggers, display timing, writes."""
import textwrap

import numpy as np

from pvmpi.io import pvp
from pvmpi.model.config import parse_yaml
from pvmpi.model.network_model import build_model


def run(tmp_path, text, frames=6):
    """Run a YAML network on one rank; the input file holds frames whose pixels all equal index + 1."""
    from mpi4py import MPI
    from running import run_network

    with pvp.DenseWriter(tmp_path / "in.pvp", 4, 4, 1) as w:
        for i in range(frames):
            w.write(float(i), np.full((1, 4, 4, 1), i + 1, np.float32))
    text = textwrap.dedent(text).replace("IN_PVP", str(tmp_path / "in.pvp"))
    model = build_model(parse_yaml(text, "net.yaml"))
    column = run_network(model, MPI.COMM_SELF, output_path=str(tmp_path / "out"))

    def read(name):
        return pvp.read(tmp_path / "out" / f"{name}.pvp")

    read.column = column
    return read


HEAD = """
column: {class: HyPerCol, nx: 4, ny: 4, nbatch: 2, stopTime: 6}
Input: {class: PvpLayer, inputPath: IN_PVP, displayPeriod: 2, batchMethod: byFile, phase: 0}
"""


def pixel(data):
    """The value of pixel (0, 0) for every write and batch element: [T, B]."""
    return data.values[:, :, 0, 0, 0]


def test_display_timing_and_batch_method(tmp_path):
    out = run(tmp_path, HEAD)
    inp = out("Input")
    np.testing.assert_array_equal(inp.times, np.arange(7))
    # byFile: element b starts at frame b and steps by nbatch (2); loads at t = 0 and t = 1, 3, 5
    np.testing.assert_array_equal(pixel(inp), [[1, 2], [1, 2], [1, 2], [3, 4], [3, 4], [5, 6], [5, 6]])


def test_phases_decide_same_step_or_previous_step(tmp_path):
    out = run(tmp_path, HEAD + textwrap.dedent("""
    Late: {class: HyPerLayer, phase: 1, InitVType: ZeroV}
    Early: {class: HyPerLayer, phase: 0, InitVType: ZeroV}
    InputToLate: {class: IdentConn, channelCode: 0}
    LateToEarly: {class: IdentConn, channelCode: 0}
    """))
    inp, late, early = pixel(out("Input")), pixel(out("Late")), pixel(out("Early"))
    np.testing.assert_array_equal(late[1:], inp[1:])        # a later phase sees this step's input
    np.testing.assert_array_equal(early[2:], late[1:-1])    # the same or an earlier phase sees the last step's


def test_a_layer_read_within_its_phase_keeps_its_published_activity(tmp_path):
    """Same phase: Second's delivery runs after First's update and must see First's published A (the
    last step's), so First keeps a second buffer; a layer no one of its phase reads updates in place."""
    out = run(tmp_path, HEAD + textwrap.dedent("""
    First: {class: HyPerLayer, phase: 1, InitVType: ZeroV}
    Second: {class: HyPerLayer, phase: 1, InitVType: ZeroV}
    Third: {class: HyPerLCALayer, phase: 2, InitVType: ZeroV, timeConstantTau: 2, VThresh: 0.5}
    InputToFirst: {class: IdentConn, channelCode: 0}
    FirstToSecond: {class: IdentConn, channelCode: 0}
    SecondToThird: {class: IdentConn, channelCode: 0}
    """))
    first, second = pixel(out("First")), pixel(out("Second"))
    np.testing.assert_array_equal(first[1:], pixel(out("Input"))[1:])
    np.testing.assert_array_equal(second[2:], first[1:-1])
    layers = out.column.layers
    assert not layers["First"].in_place
    assert layers["Second"].in_place and layers["Third"].in_place and layers["Input"].in_place
    third = layers["Third"]
    assert third.A is third.store[0] and len(third.store) == 1


def test_delays_rescale_and_inhibition(tmp_path):
    out = run(tmp_path, HEAD + textwrap.dedent("""
    Out: {class: HyPerLayer, phase: 1, InitVType: ZeroV}
    InputToOut: {class: RescaleConn, channelCode: 0, scale: 3, delay: [2]}
    Inh: {class: IdentConn, preLayerName: Input, postLayerName: Out, channelCode: 1}
    """))
    inp, o = pixel(out("Input")), pixel(out("Out"))
    np.testing.assert_array_equal(o[3:], 3 * inp[1:-2] - inp[3:])  # 3·A(t−2) − A(t)


def test_trigger_updates_only_when_the_trigger_layer_does(tmp_path):
    out = run(tmp_path, HEAD + textwrap.dedent("""
    Held: {class: HyPerLayer, phase: 1, InitVType: ZeroV, triggerLayerName: Input, triggerOffset: 0}
    Acc: {class: HyPerLCALayer, phase: 1, InitVType: ZeroV, timeConstantTau: 1, selfInteract: false,
          triggerLayerName: Input}
    InputToHeld: {class: IdentConn, channelCode: 0}
    InputToAcc: {class: IdentConn, channelCode: 0}
    """))
    held, inp = pixel(out("Held")), pixel(out("Input"))
    np.testing.assert_array_equal(held[[1, 3, 5]], inp[[1, 3, 5]])
    np.testing.assert_array_equal(held[[2, 4, 6]], held[[1, 3, 5]])  # unchanged between triggers
    acc = pixel(out("Acc"))  # exp(-1) leak per update: V_k = e·V_{k−1} + (1−e)·input
    e = np.float32(np.exp(-1.0))
    assert acc[2, 0] == acc[1, 0] and abs(acc[3, 0] - (e * acc[1, 0] + (1 - e) * 3)) < 1e-6


def test_write_step_and_initial_write_time(tmp_path):
    out = run(tmp_path, HEAD.replace("phase: 0}", "phase: 0, writeStep: 2, initialWriteTime: 1}"))
    np.testing.assert_array_equal(out("Input").times, [1, 3, 5])


def test_the_guard_reads_v_through_a_only_where_the_transfer_is_the_identity(tmp_path):
    """ANNLayer's defaults (no threshold, no cap) make A = V: the guard's sums of A check V too."""
    out = run(tmp_path, HEAD + textwrap.dedent("""
    Plain: {class: ANNLayer, phase: 1, InitVType: ZeroV}
    Capped: {class: ANNLayer, phase: 1, InitVType: ZeroV, AMax: 2}
    Thresholded: {class: ANNLayer, phase: 1, InitVType: ZeroV, VThresh: 1.5}
    InputToPlain: {class: IdentConn, channelCode: 0}
    InputToCapped: {class: IdentConn, channelCode: 0}
    InputToThresholded: {class: IdentConn, channelCode: 0}
    """))
    inp = pixel(out("Input"))
    np.testing.assert_array_equal(pixel(out("Plain"))[1:], inp[1:])
    np.testing.assert_array_equal(pixel(out("Capped"))[1:], np.minimum(inp[1:], 2))
    layers = out.column.layers
    assert layers["Plain"].a_is_v and not layers["Capped"].a_is_v and not layers["Thresholded"].a_is_v


def test_stepping_freezes_the_set_up_heap_and_leaves_it_unfrozen(tmp_path, monkeypatch):
    """The collector skips set-up objects while stepping (no full scans of numba's ~10^5 objects
    mid-run), and a finished run unfreezes them so a process building many networks frees them."""
    import gc

    from pvmpi.network.column import Column

    seen = []
    advance = Column.advance

    def counting(self):
        seen.append(gc.get_freeze_count())
        advance(self)

    monkeypatch.setattr(Column, "advance", counting)
    before = gc.get_freeze_count()
    run(tmp_path, HEAD)
    assert len(seen) == 6 and min(seen) > before + 1000
    assert gc.get_freeze_count() == before
