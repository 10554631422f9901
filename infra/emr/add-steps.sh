#!/usr/bin/env bash
# Run corpus on an existing EMR (on EC2) cluster as a step. The cluster's Spark must be 4.x with Python 3.11 on
# every node (Amazon Linux 2023: a bootstrap action `sudo dnf install -y python3.11`), because the packed venv's
# interpreter is a link to the build machine's Python: build it with PYTHON_PREFIX=/usr.
#   CLUSTER_ID=j-XXXXXXXX BUCKET=s3://my-bucket/corpus infra/emr/add-steps.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${CLUSTER_ID:?set CLUSTER_ID (j-...)}"
: "${BUCKET:?set BUCKET (s3://.../corpus), the prefix steps.json points at}"

PYTHON_PREFIX=${PYTHON_PREFIX:-/usr} infra/submit.sh archive
aws s3 cp dist/corpus-env.tar.gz "$BUCKET/dist/corpus-env.tar.gz"
aws s3 cp --recursive jobs "$BUCKET/jobs"
# steps.json names s3://my-bucket/corpus: point it at $BUCKET. The CLI's Spark step type adds `spark-submit` and
# runs it through command-runner.jar.
mkdir -p build
sed "s#s3://my-bucket/corpus#$BUCKET#g" infra/emr/steps.json > build/emr-steps.json
aws emr add-steps --cluster-id "$CLUSTER_ID" --steps file://build/emr-steps.json
