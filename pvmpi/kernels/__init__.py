"""Compute kernels, one module per backend, all with the same function names and signatures.

``numpy`` (:mod:`pvmpi.kernels.numpy_ref`) is the readable truth;
``numba`` (:mod:`pvmpi.kernels.cpu`) is the fast CPU backend.  Backends are
imported on request only, so importing this package never imports numba.
"""
import importlib

from pvmpi.errors import PvmpiError

BACKENDS = {
    "numpy": "pvmpi.kernels.numpy_ref",
    "numba": "pvmpi.kernels.cpu",
    "cuda": "pvmpi.kernels.cuda",
}

KERNELS = (
    "deliver_pre",
    "active_list",
    "deliver_sparse",
    "deliver_post",
    "accumulate_input",
    "apply_transfer",
    "update_lca",
    "hebbian_shared",
    "hebbian_shared_sparse",
    "layer_stats",
    "firm_threshold_cost",
    # the engine's state: made, copied and combined where the backend keeps it (host or device)
    "zeros",
    "to_device",
    "to_host",
    "host_buffer",
    "upload",
    "fill_zero",
    "copy",
    "scale_into",
    "gather_flat",
    "update_momentum_lca",
    "apply_vertex_transfer",
    "momentum_weights",
)


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
