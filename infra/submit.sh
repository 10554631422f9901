#!/usr/bin/env bash
# Package corpus for a Spark cluster and submit a job.
#
#   infra/submit.sh archive                      build dist/corpus-env.tar.gz (venv-pack of requirements.txt + corpus)
#   infra/submit.sh pyfiles                      build dist/corpus-py.zip (corpus only, for images that hold the deps)
#   infra/submit.sh run JOB [JOB ARGS...]        build the archive if missing, then spark-submit jobs/JOB.py
#   infra/submit.sh run-image JOB [ARGS...]      spark-submit with --py-files dist/corpus-py.zip (Docker image route)
#
# JOB is one of build, dedup, pii, tokenize, run; JOB ARGS are the `corpus JOB` options (--input, --out, --set...).
# Settings (environment):
#   PYTHON          interpreter for the packed venv; must be the cluster's Python minor version (default python3.11)
#   PYTHON_PREFIX   where Python lives on the cluster nodes if not where it lives here (venv-pack --python-prefix)
#   SPARK_MASTER    spark-submit --master (yarn, k8s://https://HOST:443, spark://HOST:7077); required for run*
#   DEPLOY_MODE     cluster (default) or client
#   SPARK_CONF_FILE properties file (default conf/spark/cluster.conf)
#   SPARK_SUBMIT    spark-submit binary (default spark-submit on PATH)
#   KEEP_SPARK_JARS set to keep pyspark's jars in the archive (left out by default: the cluster's Spark has them)
#   EXTRA_SUBMIT_ARGS  more spark-submit arguments, word-split (e.g. "--conf spark.dynamicAllocation.maxExecutors=500")
#
# The venv route: the archive is unpacked as ./env in every container and Python workers run ./env/bin/python
# (spark.pyspark.python), so executors need nothing but a Python of the same version at the same prefix.
# The default config ships inside the package (corpus/pipeline.yaml), so it works on the driver and the executors
# (pass --config FILE to use another one).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
BUILD_DIR=${BUILD_DIR:-build/infra}
DIST_DIR=${DIST_DIR:-dist}
ENV_DIR=build/executor-venv  # made by scripts/pack_env.sh
ARCHIVE="$DIST_DIR/corpus-env.tar.gz"
PYFILES="$DIST_DIR/corpus-py.zip"
SPARK_CONF_FILE=${SPARK_CONF_FILE:-conf/spark/cluster.conf}
SPARK_SUBMIT=${SPARK_SUBMIT:-spark-submit}
DEPLOY_MODE=${DEPLOY_MODE:-cluster}
JOBS="build dedup pii tokenize run"

die() { echo "submit.sh: $*" >&2; exit 2; }

build_archive() {
  # One builder for the archive, shared with the standalone-cluster test (tests/e2e/test_cluster.py).
  mkdir -p "$DIST_DIR"
  PYTHON="$PYTHON" bash scripts/pack_env.sh "$ARCHIVE"
}

build_pyfiles() {
  mkdir -p "$BUILD_DIR/wheel" "$DIST_DIR"
  rm -f "$BUILD_DIR"/wheel/corpus-*.whl
  "${PYTHON}" -m pip wheel -q --disable-pip-version-check --no-deps -w "$BUILD_DIR/wheel" .
  # A pure-Python wheel is a zip with the packages at its root, but Spark only puts .zip/.egg/.jar files from
  # --py-files on the executors' sys.path (pyspark SparkContext.PACKAGE_EXTENSIONS): ship it as .zip.
  cp "$BUILD_DIR"/wheel/corpus-*.whl "$PYFILES"
  echo "$PYFILES"
}

check_job() {
  local job=${1:-}
  [ -n "$job" ] || die "missing JOB (one of: $JOBS)"
  case " $JOBS " in *" $job "*) ;; *) die "unknown JOB '$job' (one of: $JOBS)" ;; esac
  [ -n "${SPARK_MASTER:-}" ] || die "set SPARK_MASTER (e.g. yarn, k8s://https://HOST:443, spark://HOST:7077)"
}

submit_venv() {
  check_job "${1:-}"
  local job=$1; shift
  [ -f "$ARCHIVE" ] || build_archive
  local driver_python=./env/bin/python
  # In client mode the driver runs here: use the unpacked build venv.
  if [ "$DEPLOY_MODE" = client ]; then driver_python="$ENV_DIR/bin/python"; fi
  local extra=()
  if [ -n "${EXTRA_SUBMIT_ARGS:-}" ]; then read -r -a extra <<<"$EXTRA_SUBMIT_ARGS"; fi
  PYSPARK_DRIVER_PYTHON="$driver_python" PYSPARK_PYTHON=./env/bin/python \
    "$SPARK_SUBMIT" --master "$SPARK_MASTER" --deploy-mode "$DEPLOY_MODE" --name "corpus-$job" \
    --properties-file "$SPARK_CONF_FILE" \
    --archives "$ARCHIVE#env" \
    --conf spark.pyspark.python=./env/bin/python \
    --conf spark.pyspark.driver.python="$driver_python" \
    "${extra[@]}" \
    "jobs/$job.py" "$@"
}

submit_image() {
  check_job "${1:-}"
  local job=$1; shift
  [ -f "$PYFILES" ] || build_pyfiles
  local extra=()
  if [ -n "${EXTRA_SUBMIT_ARGS:-}" ]; then read -r -a extra <<<"$EXTRA_SUBMIT_ARGS"; fi
  # The image (infra/Dockerfile) holds Python 3.11, the pinned dependencies, corpus and its default config.
  "$SPARK_SUBMIT" --master "$SPARK_MASTER" --deploy-mode "$DEPLOY_MODE" --name "corpus-$job" \
    --properties-file "$SPARK_CONF_FILE" \
    --py-files "$PYFILES" \
    "${extra[@]}" \
    "jobs/$job.py" "$@"
}

case "${1:-}" in
  archive) build_archive ;;
  pyfiles) build_pyfiles ;;
  run) shift; submit_venv "$@" ;;
  run-image) shift; submit_image "$@" ;;
  *) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
