#!/usr/bin/env bash
# Create .venv (if missing) and install pvmpi with its test tools and its MPI
# (mpi4py + the MPICH wheel, whose mpiexec lands in .venv/bin). Idempotent:
# a second run only checks that the install is complete.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import pvmpi, mpi4py, numba, h5py, yaml, PIL, pytest, pytest_mpi, pytest_timeout" 2>/dev/null \
   || [ ! -x .venv/bin/mpiexec ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e '.[test]'
fi
