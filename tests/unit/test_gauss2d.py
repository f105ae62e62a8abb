"""Gauss2DWeight (OpenPV's InitGauss2DWeights) against formulas written out independently.

Offsets are in pre-layer units from the pre neuron to each post cell of its
patch; a post feature f has orientation theta_f = f * pi * thetaMax /
numOrientationsPost, and the weight is strength * exp(-d2 / (2 sigma^2)) with
d2 = x'^2 + aspect^2 y'^2 in the frame rotated by theta_f, kept where
rMin^2 <= d2 <= rMax^2.
"""
import math

import numpy as np
import pytest

from pvmpi.model.schema import params_of
from pvmpi.network.initializers import Gauss2DGeometry, gauss2d_weights, init_weights

DEFAULTS = {name: p.default for name, p in params_of("HyPerConn").items()
            if name in ("aspect", "sigma", "rMax", "rMin", "strength", "numOrientationsPost",
                        "numOrientationsPre", "deltaThetaMax", "thetaMax", "numFlanks", "flankShift",
                        "rotate", "bowtieFlag", "bowtieAngle")}


def weights(nxp, nyp, nfp, *, nf_pre=1, kernels=((0, 0),), diff=(0, 0), self_connection=False, **params):
    """Gauss2D weights [kernel, y, x, f] for kernels given as unit-cell (kx, ky) positions."""
    p = {**DEFAULTS, **params}
    nk = len(kernels) * nf_pre
    index = np.arange(nk)
    kx = np.repeat([k[0] for k in kernels], nf_pre)
    ky = np.repeat([k[1] for k in kernels], nf_pre)
    geo = Gauss2DGeometry(patch_index=index, unit_x=kx, unit_y=ky, log2_diff_x=diff[0], log2_diff_y=diff[1],
                          nf_pre=nf_pre, nf_post=nfp, self_connection=self_connection)
    return gauss2d_weights(p, shape=(1, nk, nyp, nxp, nfp), geometry=geo)[0]


def gauss(dx, dy, theta, sigma, aspect=1.0, shift=0.0, r_max=math.inf, r_min=0.0):
    xp = dx * math.cos(theta) + dy * math.sin(theta)
    yp = -dx * math.sin(theta) + dy * math.cos(theta)
    d2 = xp * xp + aspect * aspect * (yp - shift) ** 2
    return math.exp(-d2 / (2 * sigma * sigma)) if r_min ** 2 <= d2 <= r_max ** 2 else 0.0


def test_defaults_are_openpvs():
    assert DEFAULTS["aspect"] == 1.0 and DEFAULTS["sigma"] == 0.8 and DEFAULTS["rMax"] == 1.4
    assert DEFAULTS["rMin"] == 0.0 and DEFAULTS["thetaMax"] == 1.0 and DEFAULTS["numFlanks"] == 1
    assert DEFAULTS["numOrientationsPost"] <= 0 and DEFAULTS["numOrientationsPre"] <= 0  # the layers' nf
    assert DEFAULTS["deltaThetaMax"] == pytest.approx(2 * math.pi)


def test_one_to_one_isotropic_gaussian_cut_at_rmax():
    w = weights(5, 5, 1, sigma=1.2, rMax=2.5, strength=3.0)
    for y in range(5):
        for x in range(5):
            want = 3.0 * gauss(x - 2, y - 2, 0.0, 1.2, r_max=2.5)
            assert w[0, y, x, 0] == pytest.approx(want, rel=1e-6, abs=1e-7), (x, y)
    assert w[0, 0, 0, 0] == 0 and w[0, 2, 0, 0] > 0  # corner beyond rMax, (dx=-2, 0) inside


def test_orientations_rotate_an_elongated_gaussian():
    w = weights(7, 7, 4, sigma=1.0, aspect=3.0, rMax=np.float32(3.4028235e38), numOrientationsPost=4)
    for f in range(4):
        theta = f * math.pi / 4
        for y in range(7):
            for x in range(7):
                assert w[0, y, x, f] == pytest.approx(gauss(x - 3, y - 3, theta, 1.0, aspect=3.0),
                                                      rel=1e-5, abs=1e-7), (f, x, y)
    # orientation 0 is long along x: (dx=2, dy=0) is strong, (0, 2) weak
    assert w[0, 3, 5, 0] > 100 * w[0, 5, 3, 0]


def test_other_colours_and_far_orientations_stay_zero():
    # numOrientationsPost 2 over nf 4: features 2 and 3 are a second colour the one-feature pre lacks
    w = weights(3, 3, 4, sigma=1.0, rMax=5, numOrientationsPost=2)
    assert w[..., :2].max() > 0 and not w[..., 2:].any()
    # two pre orientations (0 and pi/2) and deltaThetaMax 0.1: each pre feature reaches its own orientation
    w = weights(3, 3, 2, nf_pre=2, sigma=1.0, rMax=5, numOrientationsPost=2, numOrientationsPre=2,
                deltaThetaMax=0.1)
    assert w[0, ..., 0].max() > 0 and not w[0, ..., 1].any()
    assert w[1, ..., 1].max() > 0 and not w[1, ..., 0].any()


def test_two_flanks_add_gaussians_shifted_both_ways():
    w = weights(5, 5, 1, sigma=0.7, rMax=10, numFlanks=2, flankShift=1.0)
    for y in range(5):
        for x in range(5):
            want = gauss(x - 2, y - 2, 0, 0.7, shift=1.0) + gauss(x - 2, y - 2, 0, 0.7, shift=-1.0)
            assert w[0, y, x, 0] == pytest.approx(want, rel=1e-5, abs=1e-7)
    assert w[0, 1, 2, 0] > w[0, 2, 2, 0]  # the peaks sit one row above and below the centre


def test_rmin_cuts_the_centre():
    w = weights(3, 3, 1, sigma=1.0, rMax=5, rMin=0.5)
    assert w[0, 1, 1, 0] == 0 and w[0, 1, 0, 0] == pytest.approx(math.exp(-0.5), rel=1e-6)


def test_self_connection_skips_the_neuron_itself():
    w = weights(3, 3, 1, sigma=1.0, rMax=5, self_connection=True)
    assert w[0, 1, 1, 0] == 0 and w[0, 0, 1, 0] > 0
    assert weights(3, 3, 1, sigma=1.0, rMax=5)[0, 1, 1, 0] == 1.0


def test_bowtie_keeps_the_cone_around_the_y_axis():
    # OpenPV hands the bowtie test its rotated coordinates swapped, so with orientation 0 the kept
    # cone is around y, not x.
    w = weights(5, 5, 1, sigma=2.0, rMax=5, bowtieFlag=True, bowtieAngle=math.pi / 8)
    assert w[0, 2, 4, 0] == 0 and w[0, 2, 0, 0] == 0  # (dx=+-2, dy=0)
    assert w[0, 4, 2, 0] > 0 and w[0, 0, 2, 0] > 0  # (dx=0, dy=+-2)
    assert w[0, 3, 4, 0] == 0  # (2, 1) is 63 degrees off the y axis


@pytest.mark.parametrize("unit, want", [(0, [-1.5, 0.5, 2.5]), (1, [-2.5, -0.5, 1.5])])
def test_many_to_one_offsets(unit, want):
    """Pre 2x denser than post: pre cell u of the unit cell sees post cells at these pre-unit offsets."""
    sigma = 1.3
    w = weights(3, 1, 1, kernels=((unit, 0),), diff=(1, 0), sigma=sigma, rMax=10)
    got = [math.sqrt(-2 * sigma * sigma * math.log(v)) for v in w[0, 0, :, 0]]
    np.testing.assert_allclose(got, np.abs(want), rtol=1e-5)
    w2 = weights(3, 3, 1, kernels=((unit, unit),), diff=(1, 1), sigma=sigma, rMax=10)
    for y, dy in enumerate(want):
        for x, dx in enumerate(want):
            assert w2[0, y, x, 0] == pytest.approx(gauss(dx, dy, 0, sigma), rel=1e-5)


def test_many_to_one_y_offsets_follow_the_x_unit_cell():
    """OpenPV's quirk: the y distance to the nearest post cell is taken from the x unit-cell index."""
    sigma = 1.3
    w = weights(1, 3, 1, kernels=((0, 1), (1, 1)), diff=(1, 1), sigma=sigma, rMax=10)
    # a 1-wide patch: its post cell lies +0.5 (x unit 0) or -0.5 (x unit 1) pre units away in x.
    # In y, unit 1 should see -2.5, -0.5, 1.5 (as unit cell (1, 1) does), but unit cell (0, 1)
    # takes its nearest-cell distance from x = 0 and sees the offsets of y unit 0.
    assert [w[0, y, 0, 0] for y in range(3)] == pytest.approx(
        [gauss(0.5, dy, 0, sigma) for dy in (-1.5, 0.5, 2.5)], rel=1e-5)
    assert [w[1, y, 0, 0] for y in range(3)] == pytest.approx(
        [gauss(-0.5, dy, 0, sigma) for dy in (-2.5, -0.5, 1.5)], rel=1e-5)


def test_one_to_many_offsets():
    """Post 2x denser: a pre cell's 4 post cells lie at -0.75, -0.25, 0.25, 0.75 pre units."""
    sigma = 0.9
    w = weights(4, 4, 1, diff=(-1, -1), sigma=sigma, rMax=10)
    d = [-0.75, -0.25, 0.25, 0.75]
    for y in range(4):
        for x in range(4):
            assert w[0, y, x, 0] == pytest.approx(gauss(d[x], d[y], 0, sigma), rel=1e-6)


def test_init_weights_gives_every_arbor_the_same_weights():
    geo = Gauss2DGeometry(patch_index=[0], unit_x=[0], unit_y=[0], log2_diff_x=0, log2_diff_y=0, nf_pre=1,
                          nf_post=2)
    w = init_weights("Gauss2DWeight", {**DEFAULTS, "sigma": 1.0, "rMax": 3}, shape=(3, 1, 3, 3, 2),
                     geometry=geo)
    assert w.shape == (3, 1, 3, 3, 2) and w.flags.writeable and w.dtype == np.float32
    assert np.array_equal(w[0], w[2]) and w[0, 0, 1, 1, 0] == 1.0


def test_cocirc_without_orientations_is_the_distance_gaussian():
    """One orientation: no co-circularity factor, so a weight is exp(-d²/2σ²) within rMax, except
    the pre neuron's own position and feature (cocircSelf false), which is 0."""
    from pvmpi.network.initializers import cocirc_weights

    geo = Gauss2DGeometry(patch_index=[0], unit_x=[0], unit_y=[0], log2_diff_x=0, log2_diff_y=0,
                          nf_pre=1, nf_post=1)
    params = {"aspect": 1.0, "sigma": 1.5, "rMax": 2.0, "rMin": 0.0, "strength": 1.0, "numOrientationsPost": 1,
              "numOrientationsPre": 1, "deltaThetaMax": 6.3, "thetaMax": 1.0, "numFlanks": 1, "flankShift": 0.0,
              "rotate": 0.0, "bowtieFlag": False, "bowtieAngle": 6.3, "sigmaCocirc": 0.5, "cocircSelf": False}
    w = cocirc_weights(params, shape=(1, 1, 5, 5, 1), geometry=geo)[0, 0, :, :, 0]
    y, x = np.mgrid[-2:3, -2:3]
    d2 = (x * x + y * y).astype(np.float64)
    want = np.where(d2 <= 4.0, np.exp(-d2 / (2 * 1.5 ** 2)), 0.0)
    want[2, 2] = 0.0
    np.testing.assert_allclose(w, want, rtol=1e-6)
    params["cocircSelf"] = True
    assert cocirc_weights(params, shape=(1, 1, 5, 5, 1), geometry=geo)[0, 0, 2, 2, 0] == np.float32(1)
