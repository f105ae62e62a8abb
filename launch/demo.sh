#!/usr/bin/env bash
# Set up, make the demo images (dead leaves, made locally) and run the LCA
# demo on 2 MPI ranks, each holding half of the batch. Extra arguments go to
# pvmpi, e.g.  bash launch/demo.sh --set column.stopTime=400
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/setup.sh
.venv/bin/python -m pvmpi.data.dead_leaves demo_data --count 64 --size 64 --seed 1 >/dev/null
# --overwrite: running the demo again replaces the previous demo's outputs (and nothing else)
launch/mpiexec -n 2 .venv/bin/python -m mpi4py -m pvmpi configs/lca_demo.yaml --overwrite "$@"
echo "energy per batch element: output/lca_demo/energy_batchElement_<g>.txt; dictionary: output/lca_demo/V1ToInputError.pvp"
