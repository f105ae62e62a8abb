"""OpenPV random numbers and random initial state, checked bit for bit.

The reference here is a scalar pure-Python model written from the formulas
of facts 3.11 (Python ints with explicit uint32 masks, numpy float32
scalars), plus OpenPV's own GPULCATest/input/initialV1.pvp.
"""
import ctypes
import ctypes.util

import numpy as np
import pytest

from pvmpi.errors import PvmpiError
from pvmpi.network import random as rnd
from pvmpi.network.initializers import (
    init_v,
    init_v_seed_count,
    init_weights,
    weights_seed_count,
)
from pvmpi.network.random import SeedAllocator, TausBank, bank_for_tile, tile_seeds

M = 0xFFFFFFFF
_libm = ctypes.CDLL(ctypes.util.find_library("m"))
_libm.logf.restype = ctypes.c_float
_libm.logf.argtypes = [ctypes.c_float]


# ---------------------------------------------------------------- scalar model
class RefRng:
    """One taus88 generator, written straight from facts 3.11(a)/(b)."""

    def __init__(self, seed):
        s = seed & M
        if s == 0:
            s = 1
        self.s1 = (69069 * s) & M
        self.s2 = (69069 * self.s1) & M
        self.s3 = (69069 * self.s2) & M
        for _ in range(6):
            self.uint()

    def uint(self):
        s1, s2, s3 = self.s1, self.s2, self.s3
        s1 = (((s1 & 0xFFFFFFFE) << 12) & M) ^ ((((s1 << 13) & M) ^ s1) >> 19)
        s2 = (((s2 & 0xFFFFFFF8) << 4) & M) ^ ((((s2 << 2) & M) ^ s2) >> 25)
        s3 = (((s3 & 0xFFFFFFF0) << 17) & M) ^ ((((s3 << 3) & M) ^ s3) >> 11)
        self.s1, self.s2, self.s3 = s1, s2, s3
        return s1 ^ s2 ^ s3

    def uniform(self):
        return np.float32(self.uint()) / np.float32(4294967296.0)

    def gaussian(self):
        one, two = np.float32(1), np.float32(2)
        while True:
            x1 = two * self.uniform() - one
            x2 = two * self.uniform() - one
            w = x1 * x1 + x2 * x2
            if w < one:
                break
        lw = np.float32(_libm.logf(float(w)))
        m = np.sqrt((np.float32(-2) * lw) / w)
        return np.float32(x1 * m)


def ref_bank(base, count):
    base &= M
    if base == 0:
        base = 1
    return [RefRng(base + i) for i in range(count)]


# ---------------------------------------------------------------- generator
def test_taus88_matches_scalar_model():
    seeds = [0, 1, 2, 12345, 1234567890, 2**31, M - 1, M]
    bank = TausBank(np.array(seeds, dtype=np.uint64))
    refs = [RefRng(s) for s in seeds]
    for _ in range(40):
        got = bank.uint()
        assert got.dtype == np.uint32
        assert got.tolist() == [r.uint() for r in refs]


def test_zero_seed_is_one_and_wraps():
    # seed 0 behaves as seed 1; 2^32 wraps to 0, hence also to 1
    b = TausBank([0, 1, 2**32, -1])
    first = b.uint()
    assert first[0] == first[1] == first[2]
    assert first[3] == RefRng(M).uint()


def test_from_base_zero_rule_and_wrap():
    bank = TausBank.from_base(0, 3)  # base 0 -> 1: seeds 1, 2, 3
    ref = ref_bank(0, 3)
    assert bank.uint().tolist() == [r.uint() for r in ref]
    bank = TausBank.from_base(M - 1, 4)  # seeds 2^32-2, 2^32-1, 0->1, 1
    ref = [RefRng(M - 1), RefRng(M), RefRng(1), RefRng(1)]
    for _ in range(3):
        assert bank.uint().tolist() == [r.uint() for r in ref]


def test_subset_draws_step_only_selected():
    bank = TausBank.from_base(777, 5)
    ref = ref_bank(777, 5)
    got = bank.uint(np.array([1, 3]))
    assert got.tolist() == [ref[1].uint(), ref[3].uint()]
    got = bank.uint(np.array([True, False, False, True, True]))
    assert got.tolist() == [ref[0].uint(), ref[3].uint(), ref[4].uint()]
    assert bank.uint().tolist() == [r.uint() for r in ref]


def test_uniform_matches_model_and_is_in_closed_unit_interval():
    bank = TausBank.from_base(10_000_000, 1000)
    ref = ref_bank(10_000_000, 1000)
    for _ in range(3):
        u = bank.uniform()
        assert u.dtype == np.float32
        assert np.array_equal(u, np.array([r.uniform() for r in ref], np.float32))
        assert u.min() >= 0 and u.max() <= 1


def test_uniform_exact_one():
    u = rnd.uniform_from_uint(np.array([0, 1, 4294967167, 4294967168, M], np.uint32))
    assert u[0] == 0 and 0 < u[1] < 1e-9
    assert u[2] < 1.0
    assert u[3] == 1.0 and u[4] == 1.0  # float32 rounding of s0 reaches 2^32


def test_uniform_range_rounding():
    bank = TausBank.from_base(123456789, 200)
    ref = ref_bank(123456789, 200)
    lo, hi = np.float32(-1), np.float32(0.1)
    got = bank.uniform_range(-1, 0.1)
    want = [lo + r.uniform() * (hi - lo) for r in ref]
    assert np.array_equal(got, np.array(want, np.float32))


def test_gaussian_matches_scalar_model():
    bank = TausBank.from_base(424242424, 300)
    ref = ref_bank(424242424, 300)
    for _ in range(3):
        got = bank.gaussian()
        want = np.array([r.gaussian() for r in ref], np.float32)
        assert np.array_equal(got, want)
    # the RNG states agree afterwards too: rejections consumed the same draws
    assert bank.uint().tolist() == [r.uint() for r in ref]


def test_gaussian_subset_and_range():
    bank = TausBank.from_base(55555555, 10)
    ref = ref_bank(55555555, 10)
    idx = np.array([2, 5, 7])
    got = bank.gaussian_range(0.5, 2.0, idx)
    want = [np.float32(0.5) + ref[i].gaussian() * np.float32(2.0) for i in idx]
    assert np.array_equal(got, np.array(want, np.float32))


def test_logf_is_the_c_library_one_both_paths(monkeypatch):
    rng = np.random.default_rng(1)
    x = (rng.random(5000) * 0.999 + 1e-4).astype(np.float32)
    want = np.array([_libm.logf(float(v)) for v in x], np.float32)
    assert np.array_equal(rnd.logf(x), want)  # numba path (>= threshold)
    monkeypatch.setattr(rnd, "_logf_kernel", None)
    assert np.array_equal(rnd.logf(x[:10].reshape(2, 5)), want[:10].reshape(2, 5))  # ctypes
    # glibc's logf is not numpy's float32 log: the point of calling the C one
    assert not np.array_equal(np.log(x), want)


# ---------------------------------------------------------------- seeds
def test_seed_allocator():
    a = SeedAllocator(1234567890)
    assert a.allocate(2048) == 1234567890
    assert a.allocate(24) == 1234569938
    assert a.next_seed == 1234569962
    assert a.allocate(0) == 1234569962


def test_seed_allocator_wraps_above_floor():
    a = SeedAllocator(M - 4)
    assert a.allocate(10) == M - 4  # next = u32(M+6) = 5 < floor -> 10000005
    assert a.next_seed == 10_000_005
    a = SeedAllocator(M)
    a.allocate(10_000_001)  # next = 10000000: not below the floor
    assert a.next_seed == 10_000_000


@pytest.mark.parametrize("bad", [0, 9_999_999, -5, 2**32, 1.5e7 + 0.5, "x", None])
def test_seed_allocator_refuses_bad_seeds(bad):
    with pytest.raises(PvmpiError) as e:
        SeedAllocator(bad)
    assert e.value.param == "randomSeed"


def test_tile_seeds_follow_global_index():
    base = 1_000_000_000
    s = tile_seeds(base, ny_global=6, nx_global=8, kb0=1, ky0=3, kx0=4, nb=1, ny=3, nx=4)
    y, x = np.mgrid[3:6, 4:8]
    assert np.array_equal(s[0], (base + 1 * 48 + y * 8 + x).astype(np.uint32))
    # extended, nf > 1: base + ((b*nyGE + ye)*nxGE + xe)*nf + f
    s = tile_seeds(base, ny_global=4, nx_global=4, nf=2, kb0=0, ky0=2, kx0=2, nb=1,
                   ny=2, nx=2, halo=(1, 1, 1, 1))
    ye, xe, f = np.mgrid[2:6, 2:6, 0:2]
    assert np.array_equal(s[0].reshape(4, 4, 2), (base + (ye * 6 + xe) * 2 + f).astype(np.uint32))


def test_tile_seeds_row_base_zero_rule():
    # row 1 starts exactly at 2^32: its base becomes 1, so its seeds are 1, 2, ...
    s = tile_seeds(2**32 - 4, ny_global=2, nx_global=4, kb0=0, ky0=0, kx0=0, nb=1, ny=2, nx=4)
    assert s[0, 0].tolist() == [M - 3, M - 2, M - 1, M]
    assert s[0, 1].tolist() == [1, 2, 3, 4]


# ---------------------------------------------------------------- InitV
def _read_dense_pvp(path):
    """Plain numpy reader for a 1-frame dense pvp (80-byte header, float64 time)."""
    raw = path.read_bytes()
    hdr = np.frombuffer(raw, np.int32, count=18)
    nx, ny, nf = hdr[3], hdr[4], hdr[5]
    return np.frombuffer(raw, np.float32, count=nx * ny * nf, offset=88).reshape(ny, nx, nf)


def _v(init_type, params, base, *, nbg=1, kb0=0, nb=1, nyg=32, nxg=64, ky0=0, kx0=0,
       ny=None, nx=None, nf=24, **kw):
    return init_v(init_type, params, seed_base=base, nbatch_global=nbg, kb0=kb0, nb=nb,
                  ny_global=nyg, nx_global=nxg, ky0=ky0, kx0=kx0, ny=ny or nyg,
                  nx=nx or nxg, nf=nf, **kw)


def test_initial_v1_of_gpulcatest_bit_identical(openpv_tests):
    ref = _read_dense_pvp(openpv_tests / "GPULCATest" / "input" / "initialV1.pvp")
    assert ref.shape == (32, 64, 24)
    alloc = SeedAllocator(1234567890)
    base = alloc.allocate(init_v_seed_count("UniformRandomV", 1, 32, 64))
    v = _v("UniformRandomV", {"minV": -1.0, "maxV": 0.1}, base)
    assert v.shape == (1, 32, 64, 24) and v.dtype == np.float32
    assert np.array_equal(v[0].view(np.uint32), ref.view(np.uint32))


@pytest.mark.parametrize("init_type,params", [
    ("UniformRandomV", {"minV": -1.0, "maxV": 0.1}),
    ("GaussianRandomV", {"meanV": 0.25, "maxV": 2.0}),
    ("DiscreteUniformRandomV", {"minV": -1.0, "maxV": 1.0, "numValues": 5}),
])
def test_random_v_independent_of_spatial_tiling(init_type, params):
    base = 987654321
    kw = dict(nbg=2, nb=2, nyg=8, nxg=12, nf=3)
    whole = _v(init_type, params, base, **kw)
    tiles = np.empty_like(whole)
    for ky0 in (0, 4):
        for kx0 in (0, 4, 8):
            tiles[:, ky0:ky0 + 4, kx0:kx0 + 4] = _v(init_type, params, base, ky0=ky0,
                                                    kx0=kx0, ny=4, nx=4, **kw)
    assert np.array_equal(whole.view(np.uint32), tiles.view(np.uint32))


def test_random_v_draw_order_and_batch_split():
    base, nyg, nxg, nf = 20_000_000, 3, 4, 2
    v = _v("UniformRandomV", {}, base, nbg=2, nb=2, nyg=nyg, nxg=nxg, nf=nf)
    ref = ref_bank(base, nyg * nxg)  # local batch 0's RNGs, one per (y, x)
    for b in range(2):
        for f in range(nf):
            want = np.array([r.uniform() for r in ref], np.float32).reshape(nyg, nxg)
            assert np.array_equal(v[b, :, :, f], want)  # draw b*nf + f + 1
    # batch element 1 on its own rank (kb0 = 1) gets the values it has in one process (OpenPV's
    # batch processes would seed from their own first element: pvmpi keeps V layout-independent)
    for init_type in ("UniformRandomV", "GaussianRandomV", "DiscreteUniformRandomV"):
        whole = _v(init_type, {}, base, nbg=3, nb=3, nyg=nyg, nxg=nxg, nf=nf)
        for kb0 in range(3):
            part = _v(init_type, {}, base, nbg=3, kb0=kb0, nb=1, nyg=nyg, nxg=nxg, nf=nf)
            assert np.array_equal(part[0].view(np.uint32), whole[kb0].view(np.uint32)), (init_type, kb0)


def test_uniform_v_defaults():
    v = _v("UniformRandomV", {"minV": 2.0}, 30_000_000, nyg=4, nxg=4, nf=2)
    assert v.min() >= 2 and v.max() <= 3


def test_gaussian_v_matches_model():
    base = 31_000_000
    v = _v("GaussianRandomV", {"meanV": -0.5, "maxV": 0.25}, base, nyg=3, nxg=5, nf=2)
    ref = ref_bank(base, 15)
    for f in range(2):
        want = [np.float32(-0.5) + r.gaussian() * np.float32(0.25) for r in ref]
        assert np.array_equal(v[0, :, :, f].ravel(), np.array(want, np.float32))


def test_discrete_uniform_v_matches_model():
    base = 32_000_000
    v = _v("DiscreteUniformRandomV", {"minV": -1, "maxV": 1, "numValues": 3}, base,
           nyg=4, nxg=4, nf=2)
    ref = ref_bank(base, 16)
    for f in range(2):
        want = [np.float32(-1.0 + 1.0 * np.floor(3 / 2**32 * r.uint())) for r in ref]
        assert np.array_equal(v[0, :, :, f].ravel(), np.array(want, np.float32))
    assert set(np.unique(v).tolist()) <= {-1.0, 0.0, 1.0}
    with pytest.raises(PvmpiError):
        _v("DiscreteUniformRandomV", {"numValues": 1}, base, nyg=2, nxg=2, nf=1)


def test_constant_zero_and_unknown_v():
    assert np.all(_v("ConstantV", {}, None, nyg=2, nxg=2, nf=1) == -70)
    assert np.all(_v(None, {"valueV": 1.5}, None, nyg=2, nxg=2, nf=1) == 1.5)
    assert np.all(_v("ZeroV", {}, None, nyg=2, nxg=2, nf=1) == 0)
    with pytest.raises(PvmpiError) as e:
        _v("BogusV", {}, None, nyg=2, nxg=2, nf=1)
    assert e.value.param == "InitVType"


def test_seed_counts():
    assert init_v_seed_count("UniformRandomV", 4, 32, 64) == 4 * 32 * 64
    assert init_v_seed_count("GaussianRandomV", 1, 3, 5) == 15
    for t in ("ZeroV", "ConstantV", "InitVFromFile"):
        assert init_v_seed_count(t, 4, 32, 64) == 0
    assert weights_seed_count("UniformRandomWeight", 24) == 24
    assert weights_seed_count("GaussianRandomWeight", 7) == 7
    assert weights_seed_count("UniformRandomWeight", 24, init_weights_file="w.pvp") == 0
    assert weights_seed_count("FileWeight", 24) == 0
    assert weights_seed_count("UniformWeight", 24) == 0


def test_init_v_from_file_frames_and_tiles():
    frames = np.arange(3 * 4 * 6 * 2, dtype=np.float32).reshape(3, 4, 6, 2)
    calls = []

    def read(path, frame):
        calls.append((path, frame))
        return frames[frame]

    params = {"Vfilename": "v.pvp", "frameNumber": 1}
    v = _v("InitVFromFile", params, None, nbg=4, kb0=2, nb=2, nyg=4, nxg=6, ky0=2, kx0=3,
           ny=2, nx=3, nf=2, read_pvp_frame=read, pvp_frame_count=lambda p: 3)
    assert calls == [("v.pvp", 0), ("v.pvp", 1)]  # (1 + 2) % 3, (1 + 3) % 3
    assert np.array_equal(v[0], frames[0, 2:4, 3:6])
    assert np.array_equal(v[1], frames[1, 2:4, 3:6])
    with pytest.raises(PvmpiError) as e:
        _v("InitVFromFile", {"Vfilename": "v.pvp"}, None, nyg=5, nxg=6, nf=2,
           read_pvp_frame=read)
    assert e.value.file == "v.pvp"
    with pytest.raises(PvmpiError):
        _v("InitVFromFile", {}, None, nyg=4, nxg=6, nf=2, read_pvp_frame=read)


# ---------------------------------------------------------------- weights
def ref_uniform_weights(base, arbors, nk, P, wmin, wmax, frac, min_nnz):
    """Scalar UniformRandomWeight from facts 3.11(e)."""
    rngs = ref_bank(base, nk)
    wmin, wmax = np.float32(wmin), np.float32(wmax)
    if wmax < wmin:
        wmax = wmin
    p = 0.0 if wmax <= wmin else float(np.float32(wmax - wmin)) / 4294967296.0
    T = float(np.float32(frac) * np.float32(4294967296.0))
    out = np.empty((arbors, nk, P), np.float32)
    for a in range(arbors):
        for d in range(nk):
            r = rngs[d]
            zeroes_left, start = P - min_nnz, 0
            if min_nnz != 0:
                start = r.uint() % P
            for n in range(P):
                value = wmin + np.float32(p * r.uint())
                if zeroes_left > 0 and r.uint() < T:
                    value = np.float32(0)
                    zeroes_left -= 1
                out[a, d, (n + start) % P] = value
    return out


@pytest.mark.parametrize("params,arbors", [
    ({"wMinInit": -1, "wMaxInit": 1, "sparseFraction": 0.9}, 1),
    ({"wMinInit": -0.5, "wMaxInit": 2, "sparseFraction": 0.5, "minNNZ": 7}, 2),
    ({"wMinInit": 0.3, "wMaxInit": 0.3, "sparseFraction": 0.2, "minNNZ": 3}, 2),
    ({}, 1),
])
def test_uniform_random_weights_match_model(params, arbors):
    nk, shape_p = 6, (3, 4, 2)
    P = int(np.prod(shape_p))
    w = init_weights("UniformRandomWeight", params, shape=(arbors, nk) + shape_p,
                     seed_base=1_500_000_000)
    want = ref_uniform_weights(1_500_000_000, arbors, nk, P, params.get("wMinInit", 0),
                               params.get("wMaxInit", 1), params.get("sparseFraction", 0),
                               params.get("minNNZ", 0))
    assert w.dtype == np.float32 and w.shape == (arbors, nk) + shape_p
    assert np.array_equal(w.reshape(arbors, nk, P).view(np.uint32), want.view(np.uint32))


def test_uniform_random_weights_wmax_below_wmin_warns():
    msgs = []
    w = init_weights("UniformRandomWeight", {"wMinInit": 1, "wMaxInit": 0},
                     shape=(1, 2, 2, 2, 1), seed_base=10_000_000, warn=msgs.append)
    assert msgs and np.all(w == 1)


def test_gaussian_random_weights_match_model():
    base, nk, P = 1_600_000_000, 5, 6
    w = init_weights("GaussianRandomWeight", {"wGaussMean": 0.1, "wGaussStdev": 0.5},
                     shape=(2, nk, 2, 3, 1), seed_base=base)
    rngs = ref_bank(base, nk)
    want = np.empty((2, nk, P), np.float32)
    for a in range(2):
        for d in range(nk):
            for n in range(P):
                want[a, d, n] = np.float32(0.1) + rngs[d].gaussian() * np.float32(0.5)
    assert np.array_equal(w.reshape(2, nk, P), want)
    absent = init_weights("GaussianRandomWeight", {"wGaussMean": 0}, shape=(1, 1, 1, 1, 1), seed_base=base)
    given = init_weights("GaussianRandomWeight", {"wGaussMean": 0, "wGaussStdev": 1.0}, shape=(1, 1, 1, 1, 1),
                         seed_base=base)
    assert np.array_equal(absent, given)  # an absent parameter takes the schema's default


def test_discrete_uniform_random_weights_match_model():
    base = 1_700_000_000
    w = init_weights("DiscreteUniformRandomWeight", {"wMin": -1, "wMax": 1, "numValues": 4},
                     shape=(1, 3, 2, 2, 1), seed_base=base)
    rngs = ref_bank(base, 3)
    want = [[np.float32(-1.0 + (2.0 / 3.0) * np.floor(4 / 2**32 * r.uint())) for _ in range(4)]
            for r in rngs]
    assert np.array_equal(w.reshape(3, 4), np.array(want, np.float32))


def test_patch_seeds_override():
    seeds = np.array([10_000_003, 10_000_001], np.uint32)
    w = init_weights("UniformRandomWeight", {}, shape=(1, 2, 1, 2, 1), patch_seeds=seeds)
    a = init_weights("UniformRandomWeight", {}, shape=(1, 4, 1, 2, 1), seed_base=10_000_000)
    assert np.array_equal(w[0, 0], a[0, 3]) and np.array_equal(w[0, 1], a[0, 1])


def test_uniform_weight():
    w = init_weights("UniformWeight", {"weightInit": 0.5}, shape=(1, 3, 2, 2, 3))
    assert np.all(w == 0.5)
    w = init_weights("UniformWeight", {"weightInit": 2, "connectOnlySameFeatures": True},
                     shape=(1, 4, 2, 2, 3))
    for k in range(4):
        for f in range(3):
            assert np.all(w[0, k, :, :, f] == (2 if f == k % 3 else 0))


def test_weights_from_file():
    data = np.random.default_rng(0).random((2, 3, 2, 2, 1)).astype(np.float32)
    seen = []

    def read(path, frame):
        seen.append((path, frame))
        return data

    for t in ("FileWeight", "UniformRandomWeight"):
        w = init_weights(t, {"initWeightsFile": "w.pvp", "frameNumber": 2},
                         shape=(2, 3, 2, 2, 1), read_weights=read)
        assert np.array_equal(w, data)
    assert seen == [("w.pvp", 2)] * 2
    with pytest.raises(PvmpiError) as e:
        init_weights("FileWeight", {"initWeightsFile": "w.pvp"}, shape=(1, 3, 2, 2, 1),
                     read_weights=read, group="conn")
    assert e.value.file == "w.pvp" and "1x3x2x2x1" in str(e.value)
    with pytest.raises(PvmpiError) as e:
        init_weights("FileWeight", {}, shape=(1, 3, 2, 2, 1))
    assert e.value.param == "initWeightsFile"
    with pytest.raises(PvmpiError):
        init_weights("GaborWeight", {}, shape=(1, 1, 1, 1, 1))


def test_bank_for_tile_is_taus_bank():
    b = bank_for_tile(40_000_000, ny_global=2, nx_global=3, kb0=0, ky0=0, kx0=0, nb=1,
                      ny=2, nx=3)
    ref = ref_bank(40_000_000, 6)
    assert b.uint().tolist() == [r.uint() for r in ref]


class _GroupLike:
    """Only ``[]``, like the model's Group: absent keys raise KeyError."""

    def __init__(self, d):
        self._d = d

    def __getitem__(self, k):
        return self._d[k]


def test_params_may_be_a_group_without_get():
    g = _GroupLike({"minV": -1.0, "maxV": 0.1, "Vfilename": None})
    v = _v("UniformRandomV", g, 1234567890, nyg=2, nxg=2, nf=1)
    assert np.array_equal(v, _v("UniformRandomV", {"minV": -1.0, "maxV": 0.1}, 1234567890,
                                nyg=2, nxg=2, nf=1))
    w = init_weights("UniformRandomWeight", _GroupLike({"initWeightsFile": None}),
                     shape=(1, 2, 2, 2, 1), seed_base=10_000_000)
    assert w.shape == (1, 2, 2, 2, 1)
