"""pvmpi: PetaVision (OpenPV) networks in Python, data-parallel over MPI.

Importing pvmpi is light: it does not import mpi4py, numba or h5py and does
not start MPI. Running a network (``python -m pvmpi``, or :class:`Simulation`)
does. The Python API: :func:`load`, :func:`load_sweep`, :class:`Simulation`
(docs/api.md).
"""

__version__ = "0.1.0"
__all__ = ["load", "load_sweep", "Simulation", "PvmpiError"]


def __getattr__(name):
    if name in ("load", "load_sweep", "Simulation"):
        from . import simulation

        return getattr(simulation, name)
    if name == "PvmpiError":
        from .errors import PvmpiError

        return PvmpiError
    raise AttributeError(f"module 'pvmpi' has no attribute {name!r}")
