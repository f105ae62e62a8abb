"""The engine's state in host memory, for the host backends (numpy, numba): buffers made
(large ones on huge pages), moved (to_host/to_device are the identity) and combined in place.
The names and arguments are those of the backend contract (:mod:`pvmpi.kernels.contract`)."""
import mmap

import numpy as np

HUGE_PAGE = 2 << 20  # bytes of a transparent huge page (x86-64, arm64 with 4 KiB pages)


def zeros(shape):
    """A float32 buffer of zeros where this backend keeps state (host memory).

    A buffer of a huge page or more starts on a huge-page boundary in an
    anonymous mapping advised ``MADV_HUGEPAGE`` (fewer TLB misses as a step
    streams its buffers; docs/performance.md); elsewhere plain zeroed memory.
    """
    nbytes = int(np.prod(shape, dtype=np.int64)) * 4
    if nbytes < HUGE_PAGE:
        return np.zeros(shape, np.float32)
    # private (a shared anonymous mapping is shmem, which THP leaves alone), zero-filled, page-aligned
    region = mmap.mmap(-1, nbytes + HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if hasattr(mmap, "MADV_HUGEPAGE"):
        region.madvise(mmap.MADV_HUGEPAGE)
    raw = np.frombuffer(region, np.uint8)  # keeps the mapping alive
    start = -raw.ctypes.data % HUGE_PAGE
    return raw[start:start + nbytes].view(np.float32).reshape(shape)


def to_device(a):
    """The array where kernels want it: host memory already, so ``a`` itself."""
    return a


def to_host(a):
    """State as a numpy array for output and checkpoints: ``a`` itself on the host."""
    return a


def host_buffer(a):
    """Where to compose a new value of buffer ``a`` on the host before :func:`upload`: ``a`` itself here."""
    return a


def upload(dst, host):
    """``dst[...] = host`` from host data (broadcast); nothing when ``host`` is ``dst`` itself."""
    if host is not dst:
        dst[...] = host


def fill_zero(X):
    """``X[...] = 0`` (a GSyn channel nobody delivered into, dW before accumulating)."""
    X.fill(0)


def copy(dst, src):
    """``dst[...] = src`` for buffers of one shape (a data-store level copied forward)."""
    np.copyto(dst, src)


def gather_flat(dst, src, index):
    """``dst.flat[i] = src.flat[index[i]]``, 0 where ``index[i] < 0`` (a TransposeConn's weights: a
    fixed gather of the original's)."""
    flat = dst.reshape(-1)
    np.take(src.reshape(-1), np.maximum(index, 0), out=flat)
    flat[index < 0] = 0
