#!/usr/bin/env bash
# Regenerate the README's scaling figures and table on this machine (about a minute on 2 cores):
#   bash launch/scaling-figures.sh [DIR]                 # results in DIR (default output/scaling)
#   bash launch/scaling-figures.sh --update-docs [DIR]   # and the README's figures replaced by them
# 1. python -m pvmpi bench scaling: the demo at 1 rank (1 and 2 threads) and at 2 ranks (batch, row
#    and column splits, 1 thread each); CSV, JSON, a Markdown table and plots in DIR;
# 2. python -m pvmpi bench model: per-core costs from that sweep's 1-thread run, its 2-rank runs
#    validated, and the prediction for the demo scaled up (nbatch 1024, 512x512 images) in DIR/model;
# 3. with --update-docs only, the PNGs are copied over docs/images/scaling_{demo,phases,model}.png
#    (the README shows them, and git tracks them); paste DIR/scaling.md into the README's "Scaling" section.
# Timings on a shared machine are noisy: run it when the machine is quiet.
set -euo pipefail
cd "$(dirname "$0")/.."
UPDATE_DOCS=0
if [ "${1:-}" = "--update-docs" ]; then UPDATE_DOCS=1; shift; fi
OUT=${1:-output/scaling}
PY=.venv/bin/python
SCALED=(--set column.nbatch=1024 --set column.nx=512 --set column.ny=512)
if [ ! -f demo_data/images.txt ]; then
    "$PY" -m pvmpi.data.dead_leaves demo_data --count 64 --size 64 --seed 1 >/dev/null
fi
"$PY" -m pvmpi bench scaling configs/lca_demo.yaml --layouts 1,1,1:1 1,1,1:2 2,1,1:1 1,2,1:1 1,1,2:1 \
    --markdown -o "$OUT"
"$PY" -m pvmpi bench model configs/lca_demo.yaml --measured "$OUT/scaling.json" "${SCALED[@]}" --no-io \
    -o "$OUT/model" | tee "$OUT/model.txt"
if [ "$UPDATE_DOCS" = 1 ]; then
    cp "$OUT/scaling.png" docs/images/scaling_demo.png
    cp "$OUT/phases.png" docs/images/scaling_phases.png
    cp "$OUT/model/model.png" docs/images/scaling_model.png
    ls -l docs/images/scaling_*.png
else
    echo "figures in $OUT (--update-docs copies them over docs/images/scaling_*.png)"
fi
