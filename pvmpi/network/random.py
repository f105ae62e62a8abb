"""OpenPV's random numbers, reproduced bit for bit (facts 3.11).

OpenPV gives every neuron (or every weight patch) its own taus88 generator,
seeded from a global index, so a random initial state does not depend on the
MPI layout.  pvmpi keeps the generators, the seeds and the float32 rounding
exactly, so that a params file with random initialisation starts from the same
V and weights as OpenPV -- which lets OpenPV's own system tests (LCATest,
TotalEnergyTest, ...) serve as pvmpi's reference outputs.

All generators of a bank step together as uint32 numpy arrays; nothing here
loops over neurons in Python.
"""
from __future__ import annotations

import ctypes
import ctypes.util

import numpy as np

from pvmpi.errors import PvmpiError
from pvmpi.kernels.numpy_ref import taus88_step as _taus_step

__all__ = [
    "SEED_FLOOR",
    "SeedAllocator",
    "TausBank",
    "tile_seeds",
    "bank_for_tile",
    "logf",
    "prepare_logf",
    "uniform_from_uint",
]

#: Seeds below this are refused, and the allocator never hands one out.
SEED_FLOOR = 10_000_000

_U32 = 0xFFFFFFFF
_LCG = np.uint32(69069)
_TWO_M32 = np.float32(2.0**-32)  # dividing by float(UINT_MAX) == 2^32 is exact


class SeedAllocator:
    """Hands out consecutive seed ranges, as OpenPV's RandomSeed does.

    Callers allocate in OpenPV's order (params-file order at InitializeState);
    ``allocate(n)`` returns the base of ``n`` seeds.  The counter wraps mod
    2^32 and is pushed back above ``SEED_FLOOR`` when it lands below it.
    """

    def __init__(self, initial_seed):
        try:
            seed = int(initial_seed)
        except (TypeError, ValueError):
            seed = None
        if seed is None or seed != initial_seed or not SEED_FLOOR <= seed <= _U32:
            raise PvmpiError(
                f"random seed {initial_seed!r} is not an integer in [{SEED_FLOOR}, {_U32}]",
                param="randomSeed",
                hint="OpenPV refuses seeds below 10000000",
            )
        self._next = seed

    @property
    def next_seed(self) -> int:
        """The base the next ``allocate`` will return (for checkpoints and tests)."""
        return self._next

    def allocate(self, n: int) -> int:
        """Reserve ``n`` seeds; return the first."""
        n = int(n)
        if n < 0:
            raise ValueError("cannot allocate a negative number of seeds")
        base = self._next
        nxt = (base + n) & _U32
        if nxt < SEED_FLOOR:
            nxt += SEED_FLOOR
        self._next = nxt
        return base


# --------------------------------------------------------------------------
# glibc logf
# --------------------------------------------------------------------------
# OpenPV's Box-Muller calls glibc's logf, which is not correctly rounded, so
# neither numpy's float32 log nor f32(log(double)) reproduces it; calling
# the C library's logf does.

def _load_logf():
    name = ctypes.util.find_library("m")
    try:
        lib = ctypes.CDLL(name) if name else ctypes.CDLL(None)
        fn = lib.logf
    except (OSError, AttributeError):  # pragma: no cover - non-glibc platforms
        return None
    fn.restype = ctypes.c_float
    fn.argtypes = [ctypes.c_float]
    return fn


_c_logf = _load_logf()
_logf_kernel = None  # numba kernel, compiled on first large call
_NUMBA_THRESHOLD = 2048  # below this a plain ctypes loop is cheaper than compiling


def _compile_logf_kernel():
    """numba loop over the C logf; the ctypes pointer keeps LLVM from swapping
    in its own (different) log."""
    global _logf_kernel
    if _logf_kernel is not None:
        return _logf_kernel
    try:
        import numba
    except ImportError:  # pragma: no cover - numba is a dependency
        _logf_kernel = False
        return False
    c_logf = _c_logf

    @numba.njit(cache=False, fastmath=False)
    def kernel(x, out):
        for i in range(x.size):
            out[i] = c_logf(x[i])

    _logf_kernel = kernel
    return kernel


def prepare_logf(expected_calls: int) -> None:
    """Compile the fast logf now if about ``expected_calls`` values will
    follow in small pieces (e.g. Gaussian weights, one bank draw per element)."""
    if expected_calls >= _NUMBA_THRESHOLD and _c_logf is not None:
        _compile_logf_kernel()


def logf(x) -> np.ndarray:
    """glibc ``logf`` of each element of a float32 array (exact, not numpy's log)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if _c_logf is None:  # pragma: no cover
        raise PvmpiError(
            "the C library's logf is not available",
            hint="bit-exact Gaussian initialisation needs glibc (Linux)",
        )
    flat = x.reshape(-1)
    out = np.empty_like(flat)
    kernel = _logf_kernel
    if kernel is None and flat.size >= _NUMBA_THRESHOLD:
        kernel = _compile_logf_kernel()
    if kernel:
        kernel(flat, out)
    else:
        f = _c_logf
        out[:] = [f(v) for v in flat.tolist()]
    return out.reshape(x.shape)


def uniform_from_uint(u) -> np.ndarray:
    """OpenPV's ``uniformRandom``: ``f32(s0) / 2^32``, so 1.0 for s0 >= 4294967168."""
    return np.asarray(u, dtype=np.uint32).astype(np.float32) * _TWO_M32


# --------------------------------------------------------------------------
# taus88 bank
# --------------------------------------------------------------------------

def _as_u32(values) -> np.ndarray:
    """Integers -> uint32 with mod-2^32 wrap (negative and huge ones too)."""
    a = np.asarray(values)
    if a.dtype.kind == "u":
        return (a.astype(np.uint64) & np.uint64(_U32)).astype(np.uint32)
    if a.dtype.kind == "i":
        return (a.astype(np.int64) & _U32).astype(np.uint32)
    if a.dtype == object or a.size == 0:
        return np.array([int(v) & _U32 for v in a.reshape(-1)], np.uint32).reshape(a.shape)
    raise TypeError("seeds must be integers")


class TausBank:
    """A bank of taus88 generators (OpenPV ``cl_random``), one per seed.

    State is four uint32 arrays ``s0`` (last output), ``s1``, ``s2``, ``s3``.
    Every draw method takes an optional ``idx`` (integer indices without
    repeats, or a boolean mask): only those generators step, which is how
    independent rejection loops and conditional draws stay exact.
    """

    def __init__(self, seeds):
        s = _as_u32(seeds).reshape(-1)
        s[s == 0] = 1
        with np.errstate(over="ignore"):
            s1 = s * _LCG
            s2 = s1 * _LCG
            s3 = s2 * _LCG
        for _ in range(6):  # warm-up, outputs discarded
            s1, s2, s3 = _taus_step(s1, s2, s3)
        self.s1, self.s2, self.s3 = s1, s2, s3
        self.s0 = s1 ^ s2 ^ s3

    @classmethod
    def from_base(cls, base, count):
        """``count`` generators seeded base, base+1, ... (OpenPV ``cl_random_init``)."""
        base = int(base) & _U32
        if base == 0:
            base = 1
        return cls(np.arange(count, dtype=np.int64) + base)

    def __len__(self):
        return self.s1.size

    def copy(self):
        """An independent bank in the same state: drawing from one does not step the other."""
        new = TausBank.__new__(TausBank)
        new.s0, new.s1, new.s2, new.s3 = (a.copy() for a in (self.s0, self.s1, self.s2, self.s3))
        return new

    # -- draws ---------------------------------------------------------------
    def uint(self, idx=None) -> np.ndarray:
        """Step the selected generators; return their new ``s0`` (uint32)."""
        if idx is None:
            self.s1, self.s2, self.s3 = _taus_step(self.s1, self.s2, self.s3)
            self.s0 = self.s1 ^ self.s2 ^ self.s3
            return self.s0.copy()
        s1, s2, s3 = _taus_step(self.s1[idx], self.s2[idx], self.s3[idx])
        s0 = s1 ^ s2 ^ s3
        self.s1[idx], self.s2[idx], self.s3[idx], self.s0[idx] = s1, s2, s3, s0
        return s0

    def uniform(self, idx=None) -> np.ndarray:
        """``f32(s0) / 2^32`` in float32: in [0, 1], exactly 1.0 for s0 >= 4294967168."""
        return uniform_from_uint(self.uint(idx))

    def uniform_range(self, lo, hi, idx=None) -> np.ndarray:
        """``f32(lo + f32(u * f32(hi - lo)))`` with float32 ``lo``, ``hi``."""
        lo, hi = np.float32(lo), np.float32(hi)
        return lo + self.uniform(idx) * (hi - lo)

    def gaussian(self, idx=None) -> np.ndarray:
        """Standard normal float32, OpenPV's polar Box-Muller (facts 3.11(b)).

        Each generator rejects and redraws on its own; the second variate is
        discarded, as OpenPV (unintentionally) does.
        """
        sel = np.arange(len(self)) if idx is None else np.arange(len(self))[idx]
        n = sel.size
        x1 = np.empty(n, np.float32)
        w = np.empty(n, np.float32)
        pending = np.arange(n)
        one, two = np.float32(1), np.float32(2)
        while pending.size:
            g = sel[pending]
            a = two * self.uniform(g) - one
            b = two * self.uniform(g) - one
            ww = a * a + b * b
            ok = ww < one
            x1[pending[ok]] = a[ok]
            w[pending[ok]] = ww[ok]
            pending = pending[~ok]
        with np.errstate(divide="ignore", invalid="ignore"):
            m = np.sqrt((np.float32(-2) * logf(w)) / w)
        return x1 * m

    def gaussian_range(self, mean, sigma, idx=None) -> np.ndarray:
        """``f32(mean + f32(g * sigma))`` with float32 ``mean``, ``sigma``."""
        return np.float32(mean) + self.gaussian(idx) * np.float32(sigma)


# --------------------------------------------------------------------------
# Seeds of a local tile (OpenPV Random::initializeFromLoc)
# --------------------------------------------------------------------------

def tile_seeds(base, *, ny_global, nx_global, kb0, ky0, kx0, nb, ny, nx, nf=1,
               halo=(0, 0, 0, 0)) -> np.ndarray:
    """Seeds of the per-neuron RNGs of one rank's tile, uint32 ``[nb, nyE, nxE*nf]``.

    ``base`` is what the layer allocated (``nbatchGlobal*nyGE*nxGE*nf``
    seeds).  Each local row of the (extended, if ``halo`` = (lt, rt, up, dn)
    is nonzero) tile is one ``cl_random_init`` call whose base is
    ``base + ((kb0+b)*nyGE + ky0+ye)*nxGE*nf + kx0*nf``, with that row base
    replaced by 1 if it wraps to 0 -- so the seeds depend on global
    coordinates only, never on the MPI layout.
    """
    lt, rt, up, dn = (int(h) for h in halo)
    nxe, nye = nx + lt + rt, ny + up + dn
    nxge, nyge = nx_global + lt + rt, ny_global + up + dn
    b = np.arange(nb, dtype=np.int64)[:, None]
    y = np.arange(nye, dtype=np.int64)[None, :]
    row = ((kb0 + b) * nyge + (ky0 + y)) * (nxge * nf) + kx0 * nf
    row_base = (row + int(base)) & _U32
    row_base[row_base == 0] = 1
    seeds = row_base[:, :, None] + np.arange(nxe * nf, dtype=np.int64)[None, None, :]
    return (seeds & _U32).astype(np.uint32)


def bank_for_tile(base, **geometry) -> TausBank:
    """A :class:`TausBank` for :func:`tile_seeds` (same keywords), flattened
    in OpenPV's local order [b][y][x][f]."""
    return TausBank(tile_seeds(base, **geometry))
