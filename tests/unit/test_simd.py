"""The explicit vector kernels: bit for bit the float32 arithmetic of the scalar loops they replace."""
import numpy as np
import pytest

pytest.importorskip("numba")
from numba import njit  # noqa: E402

from pvmpi.kernels.simd import LANES, MAX_VECTORS, add_patch_sum, move8, nonzero_mask64  # noqa: E402


@njit(cache=False)
def _patch_sum(dst, d, W, idx, val, n, m, row0, stride, c, length):
    acc = np.empty(max(length, 1), np.float32)
    add_patch_sum(dst, d, W, idx, val, n, m, row0, stride, c, length, acc)


@njit(cache=False)
def _moves(dst, src, pairs):
    for i in range(pairs.shape[0]):
        move8(dst, pairs[i, 0], src, pairs[i, 1])


@njit(cache=False)
def _mask(row, start):
    return nonzero_mask64(row, start)


def _scalar_patch_sum(dst, d, W, idx, val, n, m, row0, stride, c, length):
    """The order the kernels promise: each element's sum from 0 in entry order, then added once."""
    acc = np.zeros(length, np.float32)
    for e in range(n, m):
        w0 = (row0 + int(idx[e])) * stride + c
        acc = acc + val[e] * W[w0:w0 + length]  # float32 multiply, then float32 add
    dst[d:d + length] = dst[d:d + length] + acc


@pytest.mark.parametrize("length", list(range(1, LANES * MAX_VECTORS + 10)))
def test_a_patch_sum_rounds_as_the_scalar_loop_in_registers_or_not(length):
    rng = np.random.default_rng(length)
    rows, stride = 7, LANES * MAX_VECTORS + 12
    W = rng.standard_normal(rows * stride).astype(np.float32)
    idx = np.sort(rng.choice(rows - 2, size=5, replace=False)).astype(np.int32)
    val = (rng.standard_normal(5) * 10.0 ** rng.integers(-4, 4, 5)).astype(np.float32)
    dst = rng.standard_normal(length + 20).astype(np.float32)
    want = dst.copy()
    c = int(rng.integers(0, stride - length + 1))
    _scalar_patch_sum(want, 3, W, idx, val, 1, 5, 1, stride, c, length)
    _patch_sum(dst, 3, W, idx, val, 1, 5, 1, stride, c, length)
    assert np.array_equal(dst.view(np.uint32), want.view(np.uint32))


def test_an_empty_patch_sum_adds_nothing():
    dst = np.arange(80, dtype=np.float32)
    _patch_sum(dst, 0, np.ones(80, np.float32), np.zeros(1, np.int32), np.ones(1, np.float32), 0, 0, 0, 1, 0, 64)
    assert np.array_equal(dst, np.arange(80, dtype=np.float32))


def test_move8_copies_eight_floats_from_any_offset():
    src = np.arange(50, dtype=np.float32)
    dst = np.zeros(40, np.float32)
    _moves(dst, src, np.array([[0, 3], [13, 21], [32, 42]], np.int64))
    want = np.zeros(40, np.float32)
    want[0:8], want[13:21], want[32:40] = src[3:11], src[21:29], src[42:50]
    assert np.array_equal(dst, want)


def test_the_nonzero_mask_marks_every_value_but_zeros_nan_included():
    rng = np.random.default_rng(3)
    row = np.where(rng.random(70) < 0.4, rng.standard_normal(70), 0).astype(np.float32)
    row[[5, 6, 7]] = [np.nan, -0.0, np.inf]
    for start in (0, 1, 6):
        bits = int(_mask(row, start))
        assert [bool(bits >> q & 1) for q in range(64)] == [bool(v != 0) for v in row[start:start + 64]]
