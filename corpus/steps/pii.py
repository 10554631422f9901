"""`corpus pii`: Presidio over the surviving documents inside Spark partitions (engines built once per worker).

Adds `pii_count` (replaced spans per document) and writes RUN/stats/pii.json with counts per entity.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator

import pyarrow as pa
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from corpus.config import PiiConf
from corpus.spark.reader import read_parquet
from corpus.spark.writer import write_partitions
from corpus.steps.base import Step, config_hash, folder_fingerprint, run_root_of
from corpus.steps.events import EventLog


def scrub_batches(batches: Iterator[pa.RecordBatch], conf_json: str) -> Iterator[pa.RecordBatch]:
    from corpus.pii.scrubber import worker_scrubber

    scrubber = worker_scrubber(conf_json)
    for batch in batches:
        texts, counts, per_type = [], [], []
        n = batch.num_rows
        # Phone regions come from each document's language and URL (TLD) where the input has them.
        languages = batch.column("language").to_pylist() if "language" in batch.schema.names else [None] * n
        urls = batch.column("url").to_pylist() if "url" in batch.schema.names else [None] * n
        for text, language, url in zip(batch.column("text").to_pylist(), languages, urls):
            if scrubber.too_dense(text or "", language, url):
                texts.append(None)  # dropped below, counted in stats
                counts.append(-1)
                per_type.append("{}")
                continue
            new_text, replaced = scrubber.scrub(text or "", language, url)
            texts.append(new_text)
            counts.append(len(replaced))
            per_type.append(json.dumps(dict(sorted(Counter(f.entity_type for f, _ in replaced).items()))))
        columns = {name: batch.column(name) for name in batch.schema.names}
        columns["text"] = pa.array(texts, pa.string())
        columns["pii_count"] = pa.array(counts, pa.int32())
        columns["pii_types"] = pa.array(per_type, pa.string())
        yield pa.RecordBatch.from_pydict(columns)


class PiiStep(Step):
    """`corpus pii` from an input document folder into RUN/pii; stats in RUN/stats/pii.json."""

    name, folder = "pii", "pii"

    def __init__(self, run: str, input_path: str, conf: PiiConf, partitions: int | None = None,
                 events: EventLog | None = None,
                 out: str | None = None):
        super().__init__(run, events, out)
        self.input_path, self.conf, self.partitions = input_path, conf, partitions

    def fingerprint(self) -> str:
        return config_hash({"config": config_hash(self.conf), "input": folder_fingerprint(self.input_path),
                            "partitions": self.partitions})

    def input_paths(self) -> list[str]:
        return [self.input_path]

    def work(self, spark) -> dict:
        return scrub_documents(spark, self.input_path, self.out_uri, self.conf, self.partitions)


def run_pii(spark: SparkSession, input_path: str, out: str, conf: PiiConf, partitions: int | None = None,
            events: EventLog | None = None) -> dict:
    """`corpus pii` writing RUN/pii (`out`); its run folder RUN is the parent of `out`."""
    return PiiStep(run_root_of(out), input_path, conf, partitions, events, out=out).execute(spark)


def scrub_documents(spark: SparkSession, input_path: str, out: str, conf: PiiConf, partitions: int | None) -> dict:
    """Presidio over the documents under `input_path` into OUT/docs; returns the stats."""
    docs = read_parquet(spark, input_path)
    schema = T.StructType([*docs.schema.fields, T.StructField("pii_count", T.IntegerType()),
                           T.StructField("pii_types", T.StringType())])
    conf_json = conf.model_dump_json()
    checkpoint = docs.mapInArrow(lambda it: scrub_batches(it, conf_json), schema).localCheckpoint(eager=True)
    dense = checkpoint.where(F.col("pii_count") < 0)
    # Dropped documents are listed like every other drop: RUN/pii/removed (stage pii, reason too_dense).
    keep_cols = [c for c in ("id", "url", "file_path") if c in docs.columns]
    removed = dense.select(*keep_cols, F.lit("pii").alias("stage"), F.lit("too_dense").alias("reason"))
    parts = partitions or conf.output_partitions
    write_partitions(removed.repartition(parts, "id").sortWithinPartitions(*keep_cols), out, "removed")
    scrubbed = checkpoint.where(F.col("pii_count") >= 0)
    write_partitions(scrubbed.drop("pii_types").repartition(parts, "id").sortWithinPartitions("id"), out, "docs")
    # Every count of the stats from one small aggregate over the checkpoint (one job instead of three: each job
    # is a fixed cost that dominated small runs such as the README demo's).
    per_entity: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    kept = F.col("pii_count") >= 0
    for row in checkpoint.groupBy("pii_types", kept.alias("kept")).agg(
            F.count("*").alias("n"), F.sum("pii_count").alias("spans"),
            F.sum((F.col("pii_count") > 0).cast("int")).alias("with_pii"),
            F.sum(F.octet_length("text")).alias("bytes")).collect():
        if not row["kept"]:
            totals["too_dense"] += row["n"]
            continue
        totals.update(docs=row["n"], spans=row["spans"] or 0, with_pii=row["with_pii"] or 0, bytes=row["bytes"] or 0)
        for entity, c in json.loads(row["pii_types"]).items():
            per_entity[entity] += c * row["n"]
    stats = {
        "documents": int(totals["docs"]),
        "documents_with_pii": int(totals["with_pii"]),
        "documents_dropped_too_dense": int(totals["too_dense"]),
        "replaced_spans": int(totals["spans"]),
        "text_bytes": int(totals["bytes"]),  # UTF-8 bytes of the output text, for the report's byte funnel
        "per_entity": dict(sorted(per_entity.items())),
        "config": conf.model_dump(),
    }
    return stats
