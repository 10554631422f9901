"""`corpus publish`: the final documents in FineWeb's schema, RUN/final/docs, with our extras in a sidecar by id.

RUN/final/docs/part-NNNNN.parquet has exactly FineWeb's columns in FineWeb's order (FINEWEB_SCHEMA), so
`datasets.load_dataset("parquet", data_files="RUN/final/docs/*.parquet")` gives FineWeb's schema.
`token_count` is the number of tokens of the text under the run's tokenizer (RUN/tokens/tokenizer.model, named
with its sha256 in RUN/stats/publish.json): FineWeb counts with GPT-2's tokenizer, whose files no PyPI package
ships (they download from a hub at run time, which this tool never does). Everything else the steps computed
(text length, quality metrics, cluster id and size, PII counts) is in RUN/final/extras/part-NNNNN.parquet: `id`
plus those columns, with the same partitioning and row order, joined by id.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
from pyspark import SparkFiles
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from corpus.config import TokenizeConf
from corpus.io.remote import open_input
from corpus.schema import FINEWEB_SCHEMA
from corpus.spark.files import ship_file
from corpus.spark.reader import read_parquet
from corpus.spark.writer import write_partitions
from corpus.steps.base import Step, config_hash, folder_fingerprint, join_uri
from corpus.steps.events import EventLog
from corpus.tokenize.shards import sha256_bytes
from corpus.tokenize.tokenizer import worker_tokenizer


def _count_batches(batches: Iterator[pa.RecordBatch], model_name: str) -> Iterator[pa.RecordBatch]:
    sp = worker_tokenizer(SparkFiles.get(model_name))
    for batch in batches:
        counts = [len(ids) for ids in sp.encode([t or "" for t in batch.column("text").to_pylist()])]
        yield batch.append_column("token_count", pa.array(counts, pa.int64()))


class PublishStep(Step):
    """The run's final documents (RUN/pii/docs) as FineWeb rows with token counts, plus the extras sidecar."""

    name, folder = "publish", "final"

    def __init__(self, run: str, conf: TokenizeConf, input_path: str | None = None, tokenizer: str | None = None,
                 events: EventLog | None = None):
        super().__init__(run, events)
        self.input_path = input_path or join_uri(self.run_uri, "pii", "docs")
        self.tokenizer = tokenizer or join_uri(self.run_uri, "tokens", "tokenizer.model")
        self.partitions = conf.partitions

    def input_paths(self) -> list[str]:
        return [self.input_path]

    def fingerprint(self) -> str:
        return config_hash({"input": folder_fingerprint(self.input_path), "partitions": self.partitions,
                            "tokenizer": self._tokenizer_sha()})

    def _tokenizer_bytes(self) -> bytes:
        with open_input(self.tokenizer) as f:
            return f.read()

    def _tokenizer_sha(self) -> str:
        try:
            return sha256_bytes(self._tokenizer_bytes())
        except OSError:
            return "missing"

    def work(self, spark: SparkSession) -> dict:
        model = self._tokenizer_bytes()
        model_name = ship_file(spark, model, ".model")
        docs = read_parquet(spark, self.input_path)
        for column in FINEWEB_SCHEMA.names:
            if column not in docs.columns and column != "token_count":
                docs = docs.withColumn(column, F.lit(None).cast("string"))
        schema = T.StructType([*docs.schema.fields, T.StructField("token_count", T.LongType())])
        counted = (docs.mapInArrow(lambda it: _count_batches(it, model_name), schema)
                   .repartition(self.partitions, "id").sortWithinPartitions("id").localCheckpoint(eager=True))
        fineweb = counted.select(*[F.col(c).cast(_spark_type(FINEWEB_SCHEMA.field(c).type)).alias(c)
                                   for c in FINEWEB_SCHEMA.names])
        rows = write_partitions(fineweb, self.out_uri, "docs")
        extras = [c for c in counted.columns if c not in FINEWEB_SCHEMA.names]
        write_partitions(counted.select("id", *extras), self.out_uri, "extras")
        totals = counted.agg(F.sum("token_count").alias("tokens")).first()
        return {"documents": rows, "tokens": int(totals["tokens"] or 0), "columns": FINEWEB_SCHEMA.names,
                "extras_columns": ["id", *extras],
                "token_count_tokenizer": {"file": self.tokenizer, "sha256": sha256_bytes(model)}}


def _spark_type(arrow_type: pa.DataType) -> str:
    return {pa.string(): "string", pa.float64(): "double", pa.int64(): "long"}[arrow_type]


def run_publish(spark: SparkSession, run: str, conf: TokenizeConf, events: EventLog | None = None) -> dict:
    """`corpus publish --run RUN`: RUN/final/{docs,extras} from RUN/pii/docs and RUN/tokens/tokenizer.model."""
    return PublishStep(run, conf, events=events).execute(spark)
