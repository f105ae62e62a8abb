#!/usr/bin/env bash
# Set up and run the whole test suite: the serial tests, then the MPI tests
# under mpiexec with 1, 2, 3 and 4 ranks (each test sized from the communicator;
# 3 and 4 oversubscribe 2 cores: fine for correctness, not for timing). `python -m mpi4py` aborts the whole job when
# one rank fails, and pytest-timeout catches a rank stuck in MPI.
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/setup.sh
PYTEST=(-m pytest -p no:cacheprovider --timeout=600 --timeout-method=thread -q)
.venv/bin/python "${PYTEST[@]}" tests "$@"
for n in 1 2 3 4; do
    echo "== MPI tests on $n ranks"
    NUMBA_NUM_THREADS=1 launch/mpiexec -n $n .venv/bin/python -m mpi4py "${PYTEST[@]}" --with-mpi tests/mpi "$@"
done
