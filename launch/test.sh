#!/usr/bin/env bash
# Set up and run the whole test suite: the serial tests, then the MPI tests
# under mpiexec with 1, 2, 3 and 4 ranks (each test sized from the communicator;
# 3 and 4 oversubscribe 2 cores: fine for correctness, not for timing). `python -m mpi4py` aborts the whole job when
# one rank fails, and pytest-timeout catches a rank stuck in MPI. Oversubscribed ranks sleep
# rather than spin while they wait (MPICH's MPIR_CVAR_ENABLE_HEAVY_YIELD: -n 4 on 2 cores ran the
# layout property test in 0.64x the time).
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/setup.sh
PYTEST=(-m pytest -p no:cacheprovider --timeout=600 --timeout-method=thread -q)
.venv/bin/python "${PYTEST[@]}" tests "$@"
cores=$(nproc)
for n in 1 2 3 4; do
    echo "== MPI tests on $n ranks"
    yield=0; [ "$n" -gt "$cores" ] && yield=1
    MPIR_CVAR_ENABLE_HEAVY_YIELD=$yield NUMBA_NUM_THREADS=1 launch/mpiexec -n $n .venv/bin/python -m mpi4py "${PYTEST[@]}" --with-mpi tests/mpi "$@"
done
