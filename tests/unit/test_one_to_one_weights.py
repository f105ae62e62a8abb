"""OneToOneWeights, IdentWeight and OneToOneWeightsWithDelays: OpenPV's unit-cell rule, patch by patch."""
import numpy as np

from pvmpi.network.initializers import Gauss2DGeometry, init_weights


def _geometry(nk, nf_pre, nf_post, sx=1, sy=1):
    """Shared weights: kernel k = f + nf*(kx + sx*ky), its unit cell (kx, ky)."""
    k = np.arange(nk)
    kx, ky = (k // nf_pre) % sx, k // (nf_pre * sx)
    return Gauss2DGeometry(patch_index=k, unit_x=kx, unit_y=ky, log2_diff_x=int(np.log2(sx)),
                           log2_diff_y=int(np.log2(sy)), nf_pre=nf_pre, nf_post=nf_post)


def test_one_to_one_puts_weight_init_at_the_centre_of_the_matching_feature():
    w = init_weights("OneToOneWeights", {"weightInit": 2.5}, shape=(1, 3, 3, 5, 4), geometry=_geometry(3, 3, 4))
    for k in range(3):
        want = np.zeros((3, 5, 4), np.float32)
        want[1, 2, k] = 2.5
        np.testing.assert_array_equal(w[0, k], want)


def test_many_to_one_indexes_the_unit_cell():
    """Pre twice as dense in x and y: kernel (f, kx, ky) feeds post feature f + nf*(kx + 2*ky)."""
    w = init_weights("IdentWeight", {"weightInit": 7.0}, shape=(1, 8, 1, 1, 8), geometry=_geometry(8, 2, 8, 2, 2))
    for k in range(8):
        assert w[0, k, 0, 0].tolist() == [1.0 if f == k else 0.0 for f in range(8)]


def test_with_delays_spreads_the_arbors_over_features():
    w = init_weights("OneToOneWeightsWithDelays", {"weightInit": 1.0}, shape=(2, 2, 1, 1, 4),
                     geometry=_geometry(2, 2, 4))
    for arbor in range(2):
        for k in range(2):
            assert np.flatnonzero(w[arbor, k, 0, 0]).tolist() == [2 * k + arbor]
