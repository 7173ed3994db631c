#!/usr/bin/env bash
# The README's images, made by the graphnet command itself: run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m graphnet train examples/models/digits_mlp.json --out runs/digits_mlp --quiet
cp runs/digits_mlp/curves.png docs/images/digits_mlp_curves.png
python -m graphnet render examples/models/digits_mlp.json -o docs/images/digits_mlp.svg
