"""Which frame each global batch element of an input layer shows (facts 3.9b(c)).

Reproduces OpenPV's BatchIndexer exactly, including the "random" method,
whose permutation table is made by libstdc++'s ``std::shuffle`` driven by
``std::mt19937``; both are re-implemented here as small pure functions so a
run can be compared frame for frame with OpenPV.
"""
import numpy as np

from pvmpi.errors import PvmpiError

_METHODS = {"byFile": "byFile", "byImage": "byFile", "byList": "byList",
            "byMovie": "byList", "bySpecified": "bySpecified", "random": "random"}
_U32 = 0xFFFFFFFF
DEFAULT_RANDOM_SEED = 123456789  # the seed OpenPV's constructor shuffles with first


class mt19937:
    """The standard 32-bit Mersenne Twister (``std::mt19937``)."""

    _N, _M = 624, 397

    def __init__(self, seed):
        mt = [int(seed) & _U32]
        for i in range(1, self._N):
            prev = mt[-1]
            mt.append((1812433253 * (prev ^ (prev >> 30)) + i) & _U32)
        self._mt = np.array(mt, np.uint32)
        self._out = np.empty(0, np.uint32)
        self._pos = 0

    def _twist(self):
        # mt[i] needs mt[i+1] and mt[i+397] (indices mod 624); in these four
        # chunks every needed word is either still old or already new.
        mt = self._mt
        n, m = self._N, self._M
        for lo, hi in ((0, n - m), (n - m, 2 * (n - m)), (2 * (n - m), n - 1), (n - 1, n)):
            i = np.arange(lo, hi)
            y = (mt[i] & np.uint32(0x80000000)) | (mt[(i + 1) % n] & np.uint32(0x7FFFFFFF))
            mag = np.where(y & np.uint32(1), np.uint32(0x9908B0DF), np.uint32(0))
            mt[i] = mt[(i + m) % n] ^ (y >> np.uint32(1)) ^ mag
        self._out = _temper(mt)
        self._pos = 0

    def __call__(self):
        """Next 32-bit output, as a Python int."""
        if self._pos >= len(self._out):
            self._twist()
        value = int(self._out[self._pos])
        self._pos += 1
        return value

    def state(self):
        """Plain-data state (for checkpoints): the 624 words and how many outputs of them were used."""
        if self._pos >= len(self._out):  # nothing pending: the words themselves are the state
            return {"mt": [int(v) for v in self._mt], "used": -1}
        return {"mt": [int(v) for v in self._mt], "used": self._pos}

    def set_state(self, state):
        """Restore :meth:`state`."""
        mt = np.asarray(state["mt"], np.uint32)
        if mt.shape != (self._N,):
            raise ValueError("an mt19937 state has 624 words")
        if state["used"] < 0:
            self._mt, self._out, self._pos = mt.copy(), np.empty(0, np.uint32), 0
            return
        # the words were twisted already: tempering them again gives the pending outputs
        self._mt = mt.copy()
        self._out, self._pos = _temper(mt), int(state["used"])


def _temper(mt):
    """The Mersenne Twister's output tempering of every word of a state."""
    y = mt.copy()
    y ^= y >> np.uint32(11)
    y ^= (y << np.uint32(7)) & np.uint32(0x9D2C5680)
    y ^= (y << np.uint32(15)) & np.uint32(0xEFC60000)
    y ^= y >> np.uint32(18)
    return y


def uniform_int(gen, m):
    """libstdc++ (GCC >= 11) ``uniform_int_distribution(0, m)`` for m < 2**32 - 1.

    Lemire's multiply-and-reject method on one 32-bit draw.
    """
    r = m + 1
    prod = gen() * r
    low = prod & _U32
    if low < r:
        threshold = ((1 << 32) - r) % r
        while low < threshold:
            prod = gen() * r
            low = prod & _U32
    return prod >> 32


def std_shuffle(n, seed):
    """Permutation of ``0..n-1`` that ``std::shuffle`` with ``std::mt19937(seed)`` makes.

    libstdc++ draws two swap positions from one number when ``n*n`` fits in 32
    bits ("paired mode"); without it the permutation would differ.
    """
    a = list(range(n))
    gen = mt19937(seed)
    if n < 2:
        return np.array(a, np.int64)
    if _U32 // n >= n:
        i = 1
        if n % 2 == 0:
            j = uniform_int(gen, 1)
            a[1], a[j] = a[j], a[1]
            i = 2
        while i < n:
            r = i + 1
            x = uniform_int(gen, r * (r + 1) - 1)
            j, k = divmod(x, r + 1)
            a[i], a[j] = a[j], a[i]
            a[i + 1], a[k] = a[k], a[i + 1]
            i += 2
    else:
        for i in range(1, n):
            j = uniform_int(gen, i)
            a[i], a[j] = a[j], a[i]
    return np.array(a, np.int64)


class BatchIndexer:
    """Frame indices of all global batch elements of one input layer.

    ``random_seed`` is the first table seed S0 = u32(HyPerCol randomSeed +
    layer randomSeed); it is used by the "random" method only.
    """

    def __init__(self, batch_method, nbatch_global, num_frames, start_frame_index=None,
                 skip_frame_index=None, reset_to_start_on_loop=False, random_seed=None):
        if batch_method not in _METHODS:
            raise PvmpiError(f"unknown batchMethod \"{batch_method}\"", param="batchMethod",
                             hint="use byFile, byList, bySpecified or random")
        self.batch_method = _METHODS[batch_method]
        self.nbatch = int(nbatch_global)
        self.num_frames = int(num_frames)
        if self.num_frames < 1:
            raise PvmpiError("input has no frames", param="inputPath")
        b, n = self.nbatch, self.num_frames
        start = self._per_element(start_frame_index, "start_frame_index")
        if (start < 0).any():
            raise PvmpiError("start_frame_index has a negative entry", param="start_frame_index")
        g = np.arange(b, dtype=np.int64)
        if self.batch_method in ("byFile", "random"):
            self.start, self.step = (start % n + g) % n, np.full(b, b, np.int64)
        elif self.batch_method == "byList":
            self.start, self.step = (start % n + g * (n // b)) % n, np.ones(b, np.int64)
        else:
            skip = self._per_element(skip_frame_index, "skip_frame_index")
            self.start, self.step = start % n, np.maximum(1, skip)
        self.reset_to_start_on_loop = bool(reset_to_start_on_loop) and \
            self.batch_method == "bySpecified"
        self.indices = self.start.copy()
        self.table = None
        self.table_seed = None
        self.seed = None
        if self.batch_method == "random":
            seed = DEFAULT_RANDOM_SEED if random_seed is None else random_seed
            self.seed = int(seed) & _U32
            self._regenerate()

    def _per_element(self, values, param):
        if values is None or len(values) == 0:
            return np.zeros(self.nbatch, np.int64)
        values = np.asarray(values, np.int64).ravel()
        if len(values) != self.nbatch:
            raise PvmpiError(f"{param} has {len(values)} entries but nbatch is {self.nbatch}",
                             param=param, hint="give one entry per global batch element or none")
        return values

    def _regenerate(self):
        self.table = std_shuffle(self.num_frames, self.seed)
        self.table_seed = self.seed
        self.seed = (self.seed + 1) & _U32

    def frame(self, g):
        """Frame shown by global batch element ``g``."""
        i = int(self.indices[g])
        return int(self.table[i]) if self.table is not None else i

    def frames(self):
        """Frames shown by all global batch elements, as an int64 array."""
        return self.table[self.indices] if self.table is not None else self.indices.copy()

    def advance(self):
        """Step every element (b = 0..B-1 in order), wrapping at the end.

        Every wrap of any element regenerates the random table with the next
        seed; only the last table of one advance is ever seen, so wraps are
        counted and the seed skipped forward.
        """
        nxt = self.indices + self.step
        wrapped = nxt >= self.num_frames
        nwrap = int(wrapped.sum())
        if nwrap and self.table is not None:
            self.seed = (self.seed + nwrap - 1) & _U32
            self._regenerate()
        if self.reset_to_start_on_loop:
            nxt = np.where(wrapped, self.start, nxt)
        else:
            nxt = nxt % self.num_frames
        self.indices = nxt

    def state(self):
        """Plain-data state for a checkpoint."""
        return {"batch_method": self.batch_method, "num_frames": self.num_frames,
                "indices": [int(i) for i in self.indices],
                "seed": self.seed, "table_seed": self.table_seed}

    def set_state(self, state):
        """Restore :meth:`state`.

        With ``table_seed`` the random table is rebuilt, so a restart matches a
        continuous run. Without it (an OpenPV checkpoint holds only indices
        and the next seed) the current table is kept, as OpenPV does.
        """
        indices = np.asarray(state["indices"], np.int64)
        if len(indices) != self.nbatch or (indices < 0).any() or \
                (indices >= self.num_frames).any():
            raise PvmpiError("checkpointed frame indices do not fit this input layer",
                             hint=f"need {self.nbatch} indices in 0..{self.num_frames - 1}")
        self.indices = indices.copy()
        if self.table is not None:
            if state.get("table_seed") is not None:
                self.seed = int(state["table_seed"]) & _U32
                self._regenerate()
            if state.get("seed") is not None:
                self.seed = int(state["seed"]) & _U32
