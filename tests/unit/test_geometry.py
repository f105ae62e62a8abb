"""Connection geometry (facts 4.1): axis maps, post tables, TransposeConn weights."""
import numpy as np
import pytest

from pvmpi.errors import PvmpiError
from pvmpi.geometry import AxisMap, axis_map, post_table, transpose_weights
from pvmpi.kernels import numpy_ref as ref

# (n_pre, n_post, patch) of every ratio kind, odd and even patches where allowed.
MAPS = [
    (6, 6, 1), (6, 6, 3), (5, 5, 5),            # one-to-one
    (4, 8, 2), (4, 8, 8), (3, 6, 6), (2, 8, 4), (2, 8, 12),  # one-to-many
    (8, 4, 1), (8, 4, 4), (8, 4, 3), (16, 4, 3), (16, 4, 2),  # many-to-one
]


def test_lca_bench_one_to_many():
    m = axis_map(64, 128, 8)
    assert (m.mul, m.off, m.div, m.n_kernels, m.margin, m.patch_post) == (2, -3, 1, 1, 2, 4)
    assert m.kind == "one-to-many"
    for kx in (-2, 0, 5, 65):
        for px in range(8):
            assert m.start(kx) + px == 2 * kx + px - 3


def test_lca_bench_transpose_many_to_one():
    m = axis_map(128, 64, 4)
    assert (m.n_kernels, m.margin, m.patch_post, m.kind) == (2, 3, 8, "many-to-one")
    assert [m.start(i) for i in range(-3, 5)] == [-3, -3, -2, -2, -1, -1, 0, 0]


def test_one_to_one_and_many_to_one_examples():
    m = axis_map(5, 5, 5)
    assert (m.mul, m.off, m.div, m.n_kernels, m.margin, m.patch_post) == (1, -2, 1, 1, 2, 5)
    assert [m.start(i) for i in range(3)] == [-2, -1, 0]
    m = axis_map(16, 4, 3)
    assert (m.mul, m.off, m.div, m.n_kernels, m.margin, m.patch_post) == (1, -4, 4, 4, 4, 12)
    # start = floor((i - (s/2)*(p-1)) / s)
    assert [m.start(i) for i in range(-4, 9)] == [(i - 4) // 4 for i in range(-4, 9)]
    assert isinstance(m, AxisMap)
    with pytest.raises(Exception):
        m.margin = 0  # frozen


@pytest.mark.parametrize("args, text", [
    ((5, 5, 4), "odd"),
    ((4, 8, 3), "multiple of 2"),
    ((4, 16, 6), "multiple of 4"),
    ((4, 12, 4), "power-of-two"),
    ((12, 4, 3), "power-of-two"),
    ((6, 4, 3), "power-of-two"),
    ((4, 4, 0), "at least 1"),
])
def test_invalid_geometry_raises_with_hint(args, text):
    with pytest.raises(PvmpiError) as err:
        axis_map(*args)
    assert text in str(err.value)
    assert err.value.hint


@pytest.mark.parametrize("n_pre, n_post, patch", MAPS)
def test_margin_is_exactly_what_post_neurons_need(n_pre, n_post, patch):
    m = axis_map(n_pre, n_post, patch)
    wide = np.arange(-4 * patch - 8, n_pre + 4 * patch + 8)
    reach = [i for i in wide if m.start(i) <= n_post - 1 and m.start(i) + patch - 1 >= 0]
    assert min(reach) == -m.margin and max(reach) == n_pre - 1 + m.margin
    # every post neuron receives patch_post pre neurons
    hits = np.zeros(n_post, int)
    for i in reach:
        for p in range(patch):
            if 0 <= m.start(i) + p < n_post:
                hits[m.start(i) + p] += 1
    assert np.all(hits == m.patch_post)


@pytest.mark.parametrize("n_pre, n_post, patch", MAPS)
@pytest.mark.parametrize("extra", [0, 2])
def test_post_table_brute_force(n_pre, n_post, patch, extra):
    m = axis_map(n_pre, n_post, patch)
    margin = m.margin + extra
    tab = post_table(m, margin)
    assert tab.dtype == np.int32 and tab.shape == (n_post, m.patch_post, 3)
    for x in range(n_post):
        want = [(ie, x - m.start(ie - margin), (ie - margin) % m.n_kernels)
                for ie in range(n_pre + 2 * margin)
                if 0 <= x - m.start(ie - margin) < patch]
        assert [tuple(r) for r in tab[x]] == want


def test_post_table_needs_the_margin():
    with pytest.raises(ValueError):
        post_table(axis_map(64, 128, 8), 1)


def _deliver(A, W, G, xm, ym, lt, up):
    ref.deliver_pre(A, W, G, xm.mul, xm.off, xm.div, xm.n_kernels,
                    ym.mul, ym.off, ym.div, ym.n_kernels, lt, up)


@pytest.mark.parametrize("xargs, yargs", [
    ((6, 6, 3), (5, 5, 1)),
    ((4, 8, 8), (4, 8, 4)),
    ((8, 4, 4), (16, 4, 3)),
    ((4, 8, 2), (8, 4, 3)),      # mixed kinds on the two axes
    ((2, 8, 12), (6, 6, 5)),
])
@pytest.mark.parametrize("nf_pre, nfp", [(1, 3), (4, 2)])
def test_transpose_is_the_adjoint(xargs, yargs, nf_pre, nfp):
    """<G_T(e), a> == <e, G(a)>: delivering through W_T is the adjoint of delivering through W."""
    rng = np.random.default_rng(7)
    xm, ym = axis_map(*xargs), axis_map(*yargs)
    nb, narb = 2, 2
    W = rng.standard_normal((narb, nf_pre * xm.n_kernels * ym.n_kernels, ym.patch, xm.patch, nfp)).astype(np.float32)
    WT = transpose_weights(W, xm, ym, nf_pre)
    txm, tym = axis_map(xm.n_post, xm.n_pre, xm.patch_post), axis_map(ym.n_post, ym.n_pre, ym.patch_post)
    assert WT.shape == (narb, nfp * txm.n_kernels * tym.n_kernels, tym.patch, txm.patch, nf_pre)
    assert WT.dtype == np.float32 and WT.flags.c_contiguous
    lt, up, tlt, tup = xm.margin + 1, ym.margin, txm.margin, tym.margin + 2
    # activities with zero halos: the adjoint identity is about restricted neurons
    a = np.zeros((nb, ym.n_pre + 2 * up, xm.n_pre + 2 * lt, nf_pre), np.float32)
    a[:, up:up + ym.n_pre, lt:lt + xm.n_pre] = rng.standard_normal((nb, ym.n_pre, xm.n_pre, nf_pre))
    e = np.zeros((nb, ym.n_post + 2 * tup, xm.n_post + 2 * tlt, nfp), np.float32)
    e[:, tup:tup + ym.n_post, tlt:tlt + xm.n_post] = rng.standard_normal((nb, ym.n_post, xm.n_post, nfp))
    for arb in range(narb):
        Ga = np.zeros((nb, ym.n_post, xm.n_post, nfp), np.float32)
        _deliver(a, W[arb], Ga, xm, ym, lt, up)
        GTe = np.zeros((nb, ym.n_pre, xm.n_pre, nf_pre), np.float32)
        _deliver(e, WT[arb], GTe, txm, tym, tlt, tup)
        lhs = np.vdot(GTe.astype(np.float64), a[:, up:up + ym.n_pre, lt:lt + xm.n_pre])
        rhs = np.vdot(e[:, tup:tup + ym.n_post, tlt:tlt + xm.n_post].astype(np.float64), Ga)
        assert lhs == pytest.approx(rhs, rel=1e-5, abs=1e-4)
    # transposing twice gives the original back
    np.testing.assert_array_equal(transpose_weights(WT, txm, tym, nfp), W)


def test_transpose_of_lca_dictionary_shape():
    m = axis_map(64, 128, 8)
    W = np.zeros((1, 64, 8, 8, 1), np.float32)
    W[0, 5, 2, 3, 0] = 1.0
    WT = transpose_weights(W, m, m, 64)
    assert WT.shape == (1, 4, 4, 4, 64)
    assert np.count_nonzero(WT) == 1 and WT.sum() == 1.0
