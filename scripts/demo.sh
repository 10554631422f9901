#!/usr/bin/env bash
# Set up (if needed), generate a labelled sample crawl and run the main job on it in Spark local mode.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT=${1:-runs/demo}
.venv/bin/corpus synth --out "$OUT/crawl" --pages "${PAGES:-300}" --seed 0 --files 4
.venv/bin/corpus build --input "$OUT/crawl" --out "$OUT" --master "local[2]"
echo "outputs: $OUT/docs (Parquet), $OUT/removed, $OUT/stats/build.json"
