#!/usr/bin/env bash
# The cuda backend on a real GPU in one prepared run (< 8 minutes): the device, driver and toolkit;
# the cuda tests on the device; every output file of the benchmark network and the demo on
# --backend cuda against numba's; bench at nbatch 4, 16, 64, 256 on the GPU, one core and all
# cores. Writes RESULTS_DIR/summary.json and a log per step (pvmpi/bench/gpu_check.py).
#
#   launch/gpu-check.sh RESULTS_DIR               # on the GPU machine, from the checkout
#   launch/gpu-check.sh RESULTS_DIR --simulator   # rehearsal at toy sizes in Numba's CUDA simulator
#   launch/gpu-check.sh --wheels                  # here, before: an MPI library as a wheel in .whl/
#
# It runs the checkout with the machine's own python3 and packages (a .venv here if there is one).
# A machine with no package registry may lack an MPI library for its mpi4py: --wheels downloads
# the mpich wheel this .venv uses into .whl/ (ignored by git; carry it along), and the check
# installs it only where `from mpi4py import MPI` fails.
set -euo pipefail
cd "$(dirname "$0")/.."
py=python3
[ -x .venv/bin/python ] && py=.venv/bin/python
if [ "${1:-}" = "--wheels" ]; then
    version=$("$py" -c "import importlib.metadata as m; print(m.version('mpich'))")
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
    "$py" -m pip download -q --no-deps --only-binary=:all: --platform manylinux_2_28_x86_64 \
        --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl "mpich==$version"
    ls -l .whl
    exit 0
fi
[ $# -ge 1 ] || { echo "usage: launch/gpu-check.sh RESULTS_DIR [--simulator] | --wheels" >&2; exit 2; }
if ! "$py" -c "from mpi4py import MPI" >/dev/null 2>&1 && ls .whl/*.whl >/dev/null 2>&1; then
    site=$(mktemp -d)
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" .whl/*.whl
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "$py" -m pvmpi.bench.gpu_check "$@"
