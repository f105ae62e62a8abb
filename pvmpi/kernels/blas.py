"""cblas_sgemm of the BLAS NumPy itself loaded, as a ctypes function Numba kernels can call.

Numba's own ``np.dot`` needs SciPy; NumPy's matmul needs the GIL-free
Python threads of a pool, which contend with Numba's OpenMP workers for the
cores. Calling the same library's ``cblas_sgemm`` from inside a Numba
``prange`` runs each GEMM block on Numba's threads (one BLAS thread per
call), with ``beta`` to add into the output instead of a product buffer.

Found through threadpoolctl's record of the loaded BLAS: OpenBLAS
(NumPy's bundled ``scipy_openblas``, a system ``libopenblas``) or MKL.
The integer width follows OpenBLAS's naming (a ``64_`` suffix marks the
64-bit-integer interface). The binding is checked on a small product
against NumPy before use; anything else (no such symbol, another BLAS, a
wrong result) gives None and the caller keeps NumPy's matmul.
"""
import ctypes
import os

import numpy as np

ROW_MAJOR, NO_TRANS = 101, 111  # the CBLAS enums
_FOUND = []  # [function or None], once per process


def _candidates(info):
    """(symbol, integer type) to try in the library threadpoolctl describes."""
    name = os.path.basename(info.get("filepath") or "")
    api = info.get("internal_api")
    if api == "openblas":
        if "64_" in name:
            return [("scipy_cblas_sgemm64_", ctypes.c_int64), ("cblas_sgemm64_", ctypes.c_int64)]
        return [("scipy_cblas_sgemm", ctypes.c_int32), ("cblas_sgemm", ctypes.c_int32)]
    if api == "mkl" and os.environ.get("MKL_INTERFACE_LAYER", "LP64").upper().startswith("LP64"):
        return [("cblas_sgemm", ctypes.c_int32)]
    return []


def _bind(path, symbol, integer):
    try:
        fn = getattr(ctypes.CDLL(path), symbol)
    except (OSError, AttributeError):
        return None
    ptr = ctypes.c_void_p
    fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, integer, integer, integer, ctypes.c_float,
                   ptr, integer, ptr, integer, ctypes.c_float, ptr, integer]
    fn.restype = None
    return fn


def _works(fn):
    """C = 2 A B + C on a 3x4 by 4x5 product, against NumPy, with leading dimensions past the sizes."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 6)).astype(np.float32)
    b = rng.standard_normal((4, 7)).astype(np.float32)
    c = rng.standard_normal((3, 8)).astype(np.float32)
    want = c.copy()
    want[:, :5] += 2 * (a[:, :4] @ b[:, :5])
    fn(ROW_MAJOR, NO_TRANS, NO_TRANS, 3, 5, 4, 2.0, a.ctypes.data, 6, b.ctypes.data, 7, 1.0, c.ctypes.data, 8)
    return np.allclose(c, want, rtol=1e-5, atol=1e-5)


def _find():
    """The first candidate of a loaded BLAS that binds and computes right, or None."""
    from threadpoolctl import threadpool_info

    for info in threadpool_info():
        if info.get("user_api") != "blas":
            continue
        for symbol, integer in _candidates(info):
            fn = _bind(info["filepath"], symbol, integer)
            if fn is not None and _works(fn):
                return fn
    return None


def sgemm():
    """The verified cblas_sgemm of NumPy's BLAS, or None (see the module's docstring)."""
    if not _FOUND:
        _FOUND.append(_find())
    return _FOUND[0]
