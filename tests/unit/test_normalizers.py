"""Normalizers against a scalar float32 model, and OpenPV's GPULCATest weights."""
import math

import numpy as np
import pytest

from pvmpi.errors import PvmpiError
from pvmpi.network.initializers import init_v_seed_count, init_weights, weights_seed_count
from pvmpi.network.normalizers import normalize
from pvmpi.network.random import SeedAllocator

F = np.float32


def random_weights(shape, seed=0, zero_kernels=()):
    w = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    for k in zero_kernels:
        w[:, k] = 0
    return w


# ---------------------------------------------------------------- scalar model
def ref_normalize(W, method, strength=1.0, individually=False, tol=0.0, scale=1.0):
    """Element-by-element float32 model of facts 3.11(g) / 4.8 (no preprocessing)."""
    W = W.copy()
    arbors, nk = W.shape[:2]
    s = F(F(scale) * F(strength))
    groups = [[a] for a in range(arbors)] if individually else [list(range(arbors))]
    for arb in groups:
        for k in range(nk):
            acc = F(0)
            for a in arb:
                for w in W[a, k].ravel():
                    if method == "normalizeL2":
                        acc = F(acc + F(w * w))
                    elif method == "normalizeSum":
                        acc = F(acc + w)
                    elif w > acc:
                        acc = w
            if method == "normalizeL2":
                l2 = F(math.sqrt(acc))  # sqrt of a float32 is correctly rounded
                if (abs(l2) if individually else abs(acc)) <= tol:
                    if individually:
                        continue
                    return W  # OpenPV's break: this and later patches untouched
                mult = F(s / l2)
            elif method == "normalizeSum":
                if abs(acc) <= tol:
                    continue
                mult = F(s / acc)
            else:
                if acc <= tol:
                    continue
                mult = F(s / acc)
            for a in arb:
                W[a, k] = (W[a, k] * mult).astype(np.float32)
    return W


@pytest.mark.parametrize("method", ["normalizeL2", "normalizeSum", "normalizeMax"])
@pytest.mark.parametrize("individually", [False, True])
def test_matches_scalar_model(method, individually):
    W = random_weights((2, 5, 3, 4, 2), seed=3)
    want = ref_normalize(W, method, strength=1.7, individually=individually)
    got = normalize(W.copy(), method, {"strength": 1.7,
                                       "normalizeArborsIndividually": individually})
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))


def test_sequential_sum_is_not_pairwise():
    # many small terms after a large one: pairwise and sequential float32 sums differ
    W = np.full((1, 1, 1, 1, 4097), 1e-4, np.float32)
    W[..., 0] = 1.0
    want = ref_normalize(W, "normalizeSum")
    got = normalize(W.copy(), "normalizeSum", {})
    assert np.array_equal(got, want)


def test_in_place_and_unit_norm():
    W = random_weights((1, 8, 5, 5, 3), seed=1)
    out = normalize(W, "normalizeL2", {"strength": 2.0})
    assert out is W
    norms = np.sqrt((W.astype(np.float64) ** 2).sum(axis=(2, 3, 4)))
    assert np.allclose(norms, 2.0, rtol=1e-6)


def test_l2_break_quirk():
    W = random_weights((1, 6, 2, 2, 1), seed=2, zero_kernels=(2,))
    msgs = []
    got = normalize(W.copy(), "normalizeL2", {}, warn=msgs.append)
    assert len(msgs) == 1 and "patch 2" in msgs[0]
    assert np.array_equal(got[:, 2:], W[:, 2:])  # kernel 2 and every later one untouched
    assert not np.array_equal(got[:, :2], W[:, :2])
    assert np.array_equal(got, ref_normalize(W, "normalizeL2"))


def test_l2_tolerance_applies_to_sumsq_together_and_l2_individually():
    W = np.zeros((2, 2, 1, 1, 1), np.float32)
    W[:, 0] = 0.5  # sumsq over arbors 0.5; l2 per arbor 0.5, sumsq per arbor 0.25
    W[:, 1] = 1.0
    together = normalize(W.copy(), "normalizeL2", {"minL2NormTolerated": 0.4}, warn=lambda m: 0)
    assert np.array_equal(together, ref_normalize(W, "normalizeL2", tol=0.4))
    assert not np.array_equal(together, W)  # sumsq 0.5 > 0.4: normalised
    individually = normalize(W.copy(), "normalizeL2",
                             {"minL2NormTolerated": 0.6, "normalizeArborsIndividually": True},
                             warn=lambda m: 0)
    assert np.array_equal(individually[:, 0], W[:, 0])  # l2 0.5 <= 0.6: skipped
    assert np.all(individually[:, 1] == 1.0)  # later patches still done (continue)


def test_l2_individually_skips_only_that_patch():
    W = random_weights((2, 4, 2, 2, 1), seed=5)
    W[1, 1] = 0
    msgs = []
    got = normalize(W.copy(), "normalizeL2", {"normalizeArborsIndividually": True},
                    warn=msgs.append)
    assert len(msgs) == 1
    assert np.array_equal(got, ref_normalize(W, "normalizeL2", individually=True))
    assert np.array_equal(got[1, 1], W[1, 1]) and not np.array_equal(got[1, 2], W[1, 2])


def test_sum_and_max_skip_only_bad_patches():
    W = random_weights((1, 4, 2, 2, 1), seed=6)
    W[0, 1] = -np.abs(W[0, 1])  # max of a non-positive patch is 0
    msgs = []
    got = normalize(W.copy(), "normalizeMax", {}, warn=msgs.append)
    assert len(msgs) == 1 and np.array_equal(got[0, 1], W[0, 1])
    assert np.allclose(got[0, [0, 2, 3]].max(axis=(1, 2, 3)), 1.0)
    W[0, 2] = 0
    got = normalize(W.copy(), "normalizeSum", {"minSumTolerated": 1e-3}, warn=lambda m: 0)
    assert np.array_equal(got, ref_normalize(W, "normalizeSum", tol=F(1e-3)))
    assert np.array_equal(got[0, 2], W[0, 2])


def test_post_perspective_scale():
    W = random_weights((1, 3, 3, 3, 1), seed=7)
    got = normalize(W.copy(), "normalizeL2", {"normalizeFromPostPerspective": True,
                                              "strength": 0.5}, num_pre=32 * 16 * 24,
                    num_post=64 * 32)
    want = ref_normalize(W, "normalizeL2", strength=0.5, scale=F(2048) / F(12288))
    assert np.array_equal(got, want)
    with pytest.raises(PvmpiError):
        normalize(W.copy(), "normalizeL2", {"normalizeFromPostPerspective": True})


def test_preprocessing_rmin_nonnegative_cutoff():
    W = random_weights((2, 3, 7, 6, 2), seed=8)
    # rMin 1.5: floor(3) wide box, offsetX = ceil((6-3)/2) = 2 -> width 2; offsetY = 2 -> 3 rows
    got = normalize(W.copy(), "normalizeMax", {"rMinX": 1.5, "rMinY": 1.5}, warn=lambda m: 0)
    pre = W.copy()
    pre[:, :, 2:5, 2:4, :] = 0
    assert np.array_equal(got, ref_normalize(pre, "normalizeMax"))
    # rMin <= 0.5 in either direction does nothing
    got = normalize(W.copy(), "normalizeMax", {"rMinX": 3, "rMinY": 0.5}, warn=lambda m: 0)
    assert np.array_equal(got, ref_normalize(W, "normalizeMax"))
    # negatives clipped, then |w| < cutoff * (max |w| over the whole connection) zeroed
    got = normalize(W.copy(), "normalizeL2",
                    {"nonnegativeConstraintFlag": True, "normalize_cutoff": 0.3})
    pre = np.where(W < 0, F(0), W)
    pre[np.abs(pre) < np.abs(pre).max() * F(0.3)] = 0
    assert np.array_equal(got, ref_normalize(pre, "normalizeL2"))
    # normalizeSum ignores all of it
    got = normalize(W.copy(), "normalizeSum", {"nonnegativeConstraintFlag": True,
                                               "rMinX": 2, "rMinY": 2})
    assert np.array_equal(got, ref_normalize(W, "normalizeSum"))


def test_none_and_unknown():
    W = random_weights((1, 2, 2, 2, 1))
    for m in ("none", None, ""):
        assert np.array_equal(normalize(W.copy(), m, {}), W)
    with pytest.raises(PvmpiError) as e:
        normalize(W.copy(), "normalizeGroup", {})
    assert e.value.param == "normalizeMethod"


def test_contrast_zero_mean():
    """Each patch gets mean 0 and standard deviation = strength (population std); a patch whose sum is
    within minSumTolerated of 0 is left alone, and the arbors are one patch unless individually."""
    W = random_weights((2, 3, 3, 3, 2))
    W[:, 1] -= W[:, 1].mean()  # patch 1 sums to ~0 over both arbors
    W[:, 1, 0, 0, 0] -= W[:, 1].sum() / 2  # exactly 0 in float32 is not guaranteed: make it tiny
    out = normalize(W.copy(), "normalizeContrastZeroMean", {"strength": 2.0, "minSumTolerated": 1e-3})
    for k in (0, 2):
        patch = out[:, k].astype(np.float64)
        assert abs(patch.mean()) < 1e-5 and patch.std() == pytest.approx(2.0, rel=1e-4)
    np.testing.assert_array_equal(out[:, 1], W[:, 1])
    each = normalize(W.copy(), "normalizeContrastZeroMean", {"normalizeArborsIndividually": True})
    assert each[1, 0].std() == pytest.approx(1.0, rel=1e-4)


# ---------------------------------------------------------------- OpenPV data
def _read_shared_weights(path):
    """Plain numpy reader: 104-byte header, then per patch 8-byte header + nyp*nxp*nfp."""
    raw = np.fromfile(path, np.uint8)
    hdr = raw[:104].view(np.int32)
    nxp, nyp, nfp, npatch, arbors = hdr[20], hdr[21], hdr[22], hdr[25], hdr[17]
    body = raw[104:104 + arbors * npatch * (8 + 4 * nxp * nyp * nfp)]
    body = body.reshape(arbors, npatch, 8 + 4 * nxp * nyp * nfp)[:, :, 8:].copy()
    return body.view(np.float32).reshape(arbors, npatch, nyp, nxp, nfp)


def _lcatest_weights():
    """V1ToResidual of LCATest: V1 (32x64, nbatch 1) allocates its V seeds first."""
    alloc = SeedAllocator(1234567890)
    alloc.allocate(init_v_seed_count("UniformRandomV", 1, 32, 64))
    base = alloc.allocate(weights_seed_count("UniformRandomWeight", 24))
    assert base == 1234569938
    return init_weights("UniformRandomWeight",
                        {"wMinInit": -1, "wMaxInit": 1, "sparseFraction": 0.9},
                        shape=(1, 24, 18, 18, 1), seed_base=base)


def test_gpulcatest_weights(openpv_tests):
    ref = _read_shared_weights(openpv_tests / "GPULCATest" / "input" / "weights.pvp")
    assert ref.shape == (1, 24, 18, 18, 1)
    raw = _lcatest_weights()
    W = normalize(raw.copy(), "normalizeL2", {"strength": 1})
    assert np.array_equal(W == 0, ref == 0)
    assert np.abs(W - ref).max() <= 6e-8  # facts 3.11(h): older build, 1-ulp differences
    # That older build summed squares in double; with that rounding the file is
    # reproduced exactly, which pins down the random values themselves.
    flat = raw.reshape(24, -1)
    sumsq = np.array([sum(float(F(w * w)) for w in row) for row in flat])  # sequential double
    mult = (1.0 / np.sqrt(sumsq)).astype(np.float32)
    old = (flat * mult[:, None]).astype(np.float32)
    assert np.array_equal(old.view(np.uint32), ref.reshape(24, -1).view(np.uint32))


def test_params_may_be_a_group_without_get():
    class G:
        def __getitem__(self, k):
            return {"strength": 2.0}[k]

    W = random_weights((1, 3, 2, 2, 1), seed=9)
    assert np.array_equal(normalize(W.copy(), "normalizeL2", G()),
                          normalize(W.copy(), "normalizeL2", {"strength": 2.0}))


def test_l2_break_follows_the_global_patch_order_over_tiles():
    """Non-shared weights on two tiles: each tile holds some patches, numbered in OpenPV's global
    order, and the stop at the first failing patch is the global first, so the tiles together
    equal the whole layer normalised in one piece (a tile alone would stop at its own first)."""
    rng = np.random.default_rng(4)
    W = rng.standard_normal((1, 10, 2, 2, 1)).astype(np.float32)
    W[:, 6] = 0  # the first failing patch: 6 and every later one stay as they are
    whole = normalize(W.copy(), "normalizeL2", {}, warn=lambda m: None)
    tiles = [np.array([7, 8, 0, 1, 2]), np.array([3, 4, 5, 6, 9])]  # out of order, as on a tile
    firsts = [int(t[np.flatnonzero((W[0, t] ** 2).sum(axis=(1, 2, 3)) == 0)].min(initial=2**62))
              for t in tiles]
    for order in tiles:
        part = normalize(W[:, order].copy(), "normalizeL2", {}, warn=lambda m: None, order=order,
                         first_of_all=lambda n: min(firsts))
        np.testing.assert_array_equal(part, whole[:, order])
    alone = normalize(W[:, tiles[0]].copy(), "normalizeL2", {}, warn=lambda m: None)
    assert not np.array_equal(alone, whole[:, tiles[0]])  # patches 7, 8 must stay unnormalised


def test_group_normalisation_is_one_patch_over_its_members():
    """A normalizeGroup head normalises each patch over its own and its members' weights together."""
    from pvmpi.network.normalizers import normalize

    a, b = random_weights((1, 3, 2, 2, 1)), random_weights((1, 3, 1, 1, 2))
    both = np.concatenate([a.reshape(1, 3, -1), b.reshape(1, 3, -1)], axis=2)[:, :, None, None, :].copy()
    normalize(both, "normalizeL2", {"strength": 1.0})
    l2 = np.sqrt((both.astype(np.float64) ** 2).sum(axis=(2, 3, 4)))
    np.testing.assert_allclose(l2, 1.0, rtol=1e-6)
