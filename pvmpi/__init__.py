"""pvmpi: PetaVision (OpenPV) networks in Python, data-parallel over MPI.

Importing pvmpi is light: it does not import mpi4py, numba or h5py and does
not start MPI. Running a network (``python -m pvmpi``) does.
"""

__version__ = "0.1.0"
