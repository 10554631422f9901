#!/usr/bin/env bash
# Fetch into .whl/ the pure-Python wheels the trainer needs beyond a GPU image's usual packages (torch, numpy,
# sentencepiece, safetensors, PyYAML, typer), for scripts/gpu_check.sh on a machine without a network.
# Versions are requirements.txt's pins; run where pip can reach PyPI. .whl/ is not committed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
pin() { grep -i "^$1==" requirements.txt | cut -d= -f3; }
PLAT=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "${PYVER:-3.12}" --implementation cp \
  "${PLAT[@]}" -d .whl "pydantic==$(pin pydantic)" "pydantic_core==${PYDANTIC_CORE:-2.50.4}" \
  "annotated-types==${ANNOTATED_TYPES:-0.8.0}" "typing-inspection==${TYPING_INSPECTION:-0.4.5}" \
  "typing_extensions==${TYPING_EXTENSIONS:-4.16.0}"
ls .whl
