#!/usr/bin/env bash
# Set up (if needed), generate a labelled sample crawl and run the main job on it in Spark local mode.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT=${1:-runs/demo}
.venv/bin/corpus synth --out "$OUT/crawl" --pages "${PAGES:-300}" --seed 0 --files 4
.venv/bin/corpus run --input "$OUT/crawl" --out "$OUT" --master "local[2]" --set tokenize.vocab_size=4000 --set tokenize.val_fraction=0.05
echo "outputs: $OUT/docs, $OUT/dedup/docs, $OUT/tokens/manifest.json, $OUT/stats/"
