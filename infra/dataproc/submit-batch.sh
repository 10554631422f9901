#!/usr/bin/env bash
# Run corpus as a Google Cloud Serverless for Apache Spark (Dataproc) batch, with the image route: the container
# (infra/Dockerfile) holds Python 3.11 and the pinned dependencies, corpus code travels as --py-files.
#   BUCKET=gs://my-bucket/corpus IMAGE=us-docker.pkg.dev/PROJECT/corpus/corpus:0.1.0 REGION=us-central1 \
#     infra/dataproc/submit-batch.sh --input gs://.../warc.paths.gz --out gs://.../run --set dump=CC-MAIN-2024-22
# The same request as a REST body: infra/dataproc/batch.json (POST .../locations/REGION/batches).
# Not run from here. Runtime 3.0 documents Spark 4.0.0 and Python 3.12, while corpus pins pyspark 4.3.0 and
# Python 3.11: use a runtime whose Spark matches the pin (RUNTIME=...), see infra/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${BUCKET:?set BUCKET (gs://.../corpus)}"
: "${IMAGE:?set IMAGE (the pushed infra/Dockerfile image)}"
REGION=${REGION:-us-central1}
RUNTIME=${RUNTIME:-3.0}

infra/submit.sh pyfiles >/dev/null
gcloud storage cp dist/corpus-py.zip "$BUCKET/dist/corpus-py.zip"
gcloud storage cp jobs/run.py "$BUCKET/jobs/run.py"
# Spark settings: the same values as conf/spark/cluster.conf. Job args after `--` (never spark --conf there).
gcloud dataproc batches submit pyspark "$BUCKET/jobs/run.py" \
  --region="$REGION" \
  --version="$RUNTIME" \
  --container-image="$IMAGE" \
  --py-files="$BUCKET/dist/corpus-py.zip" \
  --ttl=24h \
  --properties=spark.executor.cores=4,spark.executor.memory=3g,spark.executor.memoryOverhead=10g,\
spark.driver.memory=8g,spark.driver.cores=4,spark.python.worker.reuse=true,spark.sql.shuffle.partitions=8000,\
spark.sql.adaptive.enabled=true,spark.speculation=false,spark.task.maxFailures=8,\
spark.dynamicAllocation.enabled=true,spark.dynamicAllocation.maxExecutors=125 \
  -- "$@"
