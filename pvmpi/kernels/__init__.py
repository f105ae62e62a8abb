"""Compute kernels, one module per backend, each implementing the contract of
:mod:`pvmpi.kernels.contract` (names, arguments, shapes, capabilities).

``numpy`` (:mod:`pvmpi.kernels.numpy_ref`) is the readable truth; ``numba``
(:mod:`pvmpi.kernels.cpu`) the fast CPU backend; ``cuda`` one GPU per rank.
Backends are imported on request only, so importing this package never imports numba.
"""
import importlib

from pvmpi.errors import PvmpiError
from pvmpi.kernels.contract import COMPUTE, STATE

BACKENDS = {
    "numpy": "pvmpi.kernels.numpy_ref",
    "numba": "pvmpi.kernels.cpu",
    "cuda": "pvmpi.kernels.cuda",
}

#: the kernels every backend has (pvmpi.kernels.contract lists them with their arguments and shapes)
KERNELS = tuple(k.name for k in COMPUTE + STATE)


def get_backend(name):
    """Return the kernel module of backend ``name`` ("numpy" or "numba")."""
    try:
        module = BACKENDS[name]
    except (KeyError, TypeError):
        raise PvmpiError(
            f"unknown kernel backend {name!r}",
            hint="choose one of " + ", ".join(sorted(BACKENDS)),
        ) from None
    return importlib.import_module(module)
