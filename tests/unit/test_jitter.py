"""Input jitter (facts 3.9b(c) "Jitter"): the draws, their timing and how they move a frame.

numpy's legacy RandomState seeded with an integer is the standard MT19937
(init_genrand), and randint over [0, 2**32) returns its raw 32-bit outputs, so
it serves as an independent std::mt19937 here.
"""
import numpy as np
import pytest

from pvmpi.errors import PvmpiError
from pvmpi.model.config import parse_yaml
from pvmpi.model.network_model import build_model
from pvmpi.network.input_frames import Jitter, prepare_frame


def jitter(nbatch=3, interval=1, unit="timestep", period=1, mx=0, my=0, flips=(False, False),
           toggles=(False, False), seed=123456789):
    return Jitter(nbatch=nbatch, interval=interval, unit=unit, display_period=period, max_shift_x=mx,
                  max_shift_y=my, x_flip_enabled=flips[0], y_flip_enabled=flips[1], x_flip_toggle=toggles[0],
                  y_flip_toggle=toggles[1], seed=seed)


def raw_draws(seed, n):
    return [int(v) for v in np.random.RandomState(seed).randint(0, 2 ** 32, size=n, dtype=np.uint64)]


def expected(seed, nbatch, changes, mx, my, flip_x, flip_y, toggle_x, toggle_y):
    """The rules written out: per change, per batch element: shiftX, shiftY, flipX?, flipY?."""
    draws = iter(raw_draws(seed, 10 * nbatch * changes))
    fx, fy = [False] * nbatch, [False] * nbatch
    out = []
    for _ in range(changes):
        sx, sy = [], []
        for b in range(nbatch):
            sx.append(-mx + next(draws) % (2 * mx + 1))
            sy.append(-my + next(draws) % (2 * my + 1))
            if flip_x:
                fx[b] = (not fx[b]) if toggle_x else next(draws) % 100 > 50
            if flip_y:
                fy[b] = (not fy[b]) if toggle_y else next(draws) % 100 > 50
        out.append((sx, sy, list(fx), list(fy)))
    return out


@pytest.mark.parametrize("mx, my, flips, toggles", [(3, 2, (True, True), (False, True)),
                                                     (0, 0, (False, False), (False, False)),
                                                     (5, 0, (True, False), (True, False))])
def test_draws_follow_the_rules(mx, my, flips, toggles):
    j = jitter(nbatch=3, mx=mx, my=my, flips=flips, toggles=toggles, seed=31415926)
    want = expected(31415926, 3, 6, mx, my, *flips, *toggles)
    for k, (sx, sy, fx, fy) in enumerate(want):
        j.load(float(k), 1.0)  # interval 1 step: a change at every load
        assert j.shift_x.tolist() == sx and j.shift_y.tolist() == sy
        assert j.flip_x.tolist() == fx and j.flip_y.tolist() == fy
        assert all(-mx <= v <= mx for v in sx) and all(-my <= v <= my for v in sy)
        assert j.of(2) == {"jitter_x": sx[2], "jitter_y": sy[2], "flip_x": fx[2], "flip_y": fy[2]}
    if mx == 3:  # the draws really vary (and a random flip happens at least once)
        assert len({tuple(w[0]) for w in want}) > 1 and any(any(w[2]) for w in want)


def test_zero_shift_still_consumes_draws():
    """maxShift 0 draws anyway, so switching on y shifts does not change the x sequence."""
    a, b = jitter(mx=2, my=0), jitter(mx=2, my=4)
    a.load(0.0, 1.0)
    b.load(0.0, 1.0)
    assert a.shift_x.tolist() == b.shift_x.tolist() and not a.shift_y.any()


@pytest.mark.parametrize("unit, interval, period, loads, due", [
    ("timestep", 2, 3, [0, 1, 4, 7, 10, 13], [0, 4, 10]),
    ("displayPeriod", 2, 3, [0, 1, 4, 7, 10, 13], [0]),   # loads at 1 + 3k are never multiples of 6
    ("displayPeriod", 1, 1, [0, 1, 2, 3], [0, 1, 2, 3]),
    ("DISPLAYPERIOD", 3, 1, [0, 1, 2, 3, 4, 5, 6], [0, 3, 6]),
])
def test_changes_happen_when_the_step_is_a_multiple_of_the_interval(unit, interval, period, loads, due):
    j = jitter(nbatch=1, interval=interval, unit=unit, period=period, mx=4, seed=7)
    draws = iter(raw_draws(7, 100))
    current = 0
    for t in loads:
        j.load(float(t), 1.0)
        if t in due:
            current = -4 + next(draws) % 9
            next(draws)  # the y draw
        assert j.shift_x[0] == current, t


def test_no_jitter_without_an_interval():
    j = jitter(interval=0, mx=3, flips=(True, True))
    assert not j.active
    j.load(0.0, 1.0)
    assert not j.shift_x.any() and not j.flip_x.any()


def test_state_round_trip_continues_the_sequence():
    a = jitter(nbatch=2, mx=3, my=3, flips=(True, False), seed=99)
    for t in range(5):
        a.load(float(t), 1.0)
    b = jitter(nbatch=2, mx=3, my=3, flips=(True, False), seed=1)
    b.set_state(a.state())
    for t in range(5, 9):
        a.load(float(t), 1.0)
        b.load(float(t), 1.0)
        assert a.of(0) == b.of(0) and a.of(1) == b.of(1)


PIPE = {"offsetAnchor": "tl", "offsetX": 0, "offsetY": 0, "autoResizeFlag": False,
        "aspectRatioAdjustment": "crop", "interpolationMethod": "bicubic", "inverseFlag": False,
        "normalizeLuminanceFlag": False, "normalizeStdDev": True, "useInputBCflag": False}


def test_shifts_move_the_picture_and_flips_mirror_it():
    img = np.arange(1, 1 + 6 * 8, dtype=np.float32).reshape(6, 8, 1)
    d, r = prepare_frame(img, nx_global=8, ny_global=6, margin_x=0, margin_y=0, params=PIPE,
                         jitter_x=2, jitter_y=-1)
    np.testing.assert_array_equal(d[:5, 2:], img[1:, :6])  # pixel (x, y) moved to (x + 2, y - 1)
    assert not d[:, :2].any() and not d[5].any() and not r[:, :2].any() and r[:5, 2:].all()
    d, r = prepare_frame(img, nx_global=8, ny_global=6, margin_x=0, margin_y=0, params=PIPE, flip_x=True)
    np.testing.assert_array_equal(d, img[:, ::-1])
    d, r = prepare_frame(img, nx_global=8, ny_global=6, margin_x=0, margin_y=0,
                         params={**PIPE, "offsetX": 1}, jitter_x=1, flip_y=True)
    np.testing.assert_array_equal(d, img[::-1])  # a jitter shift cancels the same offset


LAYER = """
column: {class: HyPerCol, nx: 4, ny: 4, nbatch: 2}
Input: {class: PvpLayer, inputPath: in.pvp, displayPeriod: 1%s}
"""


def model(extra):
    return build_model(parse_yaml(LAYER % extra, "net.yaml"))


def test_model_accepts_jitter_and_checks_it():
    g = model(", jitterChangeInterval: 2, jitterChangeIntervalUnit: TimeStep, maxShiftX: 3, "
              "yFlipEnabled: true").group("Input")
    assert g["jitterChangeIntervalUnit"] == "timestep" and g["maxShiftX"] == 3 and g["yFlipEnabled"]
    assert model("").group("Input")["jitterChangeInterval"] == 0
    with pytest.raises(PvmpiError, match="maxShiftX.*needs jitterChangeInterval"):
        model(", maxShiftX: 3")
    with pytest.raises(PvmpiError, match="maxShiftY.*>= 0"):
        model(", jitterChangeInterval: 1, maxShiftY: -1")
    with pytest.raises(PvmpiError, match="jitterChangeIntervalUnit"):
        model(", jitterChangeInterval: 1, jitterChangeIntervalUnit: frames")


def test_interpolation_method_in_any_case():
    """OpenPV lower-cases interpolationMethod before use ("nearestneighbor" in its own tests)."""
    for given in ("nearestneighbor", "NearestNeighbor", "nearestNeighbor"):
        g = model(f", autoResizeFlag: true, interpolationMethod: {given}").group("Input")
        assert g["interpolationMethod"] == "nearestNeighbor"
    with pytest.raises(PvmpiError, match="interpolationMethod"):
        model(", autoResizeFlag: true, interpolationMethod: bilinear")
