"""`corpus tokenize`: train (or reuse) a sentencepiece BPE model, realize the data mixture, write shards.

1. tokenizer: trained on a deterministic sample (documents whose id-hash falls under a rate, ordered by
   that hash, cut at `train_max_chars`), or reused from `--tokenizer`.
2. counting pass: every document is encoded once to count its tokens (per source).
3. mixture: each source's documents are repeated floor(f) or floor(f)+1 times (by an id hash) where
   f = weight share × all tokens / source tokens, so token shares land on the weights.
4. split by an id hash (all copies of a document land in the same split), shuffle by a seeded hash,
   then each of `partitions` tasks encodes its documents in order and writes its own shards.
The tokenizer is shipped to executors with SparkContext.addFile and loaded once per Python worker.
"""

from __future__ import annotations

import json
import posixpath
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
from pyspark import SparkFiles, TaskContext
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from corpus.config import SourceConf, TokenizeConf
from corpus.io.remote import open_input
from corpus.io.rundir import RunDir
from corpus.spark.files import ship_file
from corpus.spark.reader import read_parquet
from corpus.steps.base import Step, config_hash, folder_fingerprint, run_root_of
from corpus.steps.events import EventLog
from corpus.tokenize.mixture import realized_shares, sampling_factors
from corpus.tokenize.shards import ShardCutter, manifest_base
from corpus.tokenize.tokenizer import BOS_ID, train_tokenizer, worker_tokenizer

HASH_SPACE = 1 << 62


def _unit_hash(*cols) -> F.Column:
    """A deterministic uniform number in [0, 1) from columns."""
    return F.pmod(F.xxhash64(*cols), F.lit(HASH_SPACE)) / F.lit(float(HASH_SPACE))


def load_sources(spark: SparkSession, sources: list[SourceConf]) -> DataFrame:
    frames = [read_parquet(spark, s.path).select("id", "text").withColumn("source", F.lit(s.name)) for s in sources]
    df = frames[0]
    for frame in frames[1:]:
        df = df.unionByName(frame)
    return df


def _train(spark, docs: DataFrame, conf: TokenizeConf, target: Path) -> Path:
    total_chars = docs.agg(F.sum(F.length("text"))).first()[0] or 0
    if total_chars == 0:
        raise ValueError("cannot train a tokenizer: the input has no text")
    rate = min(1.0, 1.1 * conf.train_max_chars / total_chars)
    sample = (docs.withColumn("u", _unit_hash("id", F.lit(conf.seed))).where(F.col("u") < rate)
              .orderBy("u", "id").select("text"))
    with tempfile.TemporaryDirectory() as tmp:
        text_file = Path(tmp) / "sample.txt"
        chars = 0
        with open(text_file, "w", encoding="utf-8") as f:
            for row in sample.toLocalIterator():
                for line in row["text"].split("\n"):
                    if line.strip():
                        f.write(line + "\n")
                chars += len(row["text"])
                if chars >= conf.train_max_chars:
                    break
        model = train_tokenizer(text_file, target.with_suffix(""), conf.vocab_size, conf.character_coverage)
    return model


def _count_tokens(batches: Iterator[pa.RecordBatch], model_name: str) -> Iterator[pa.RecordBatch]:
    sp = worker_tokenizer(SparkFiles.get(model_name))
    for batch in batches:
        counts = [len(ids) + 1 for ids in sp.encode(batch.column("text").to_pylist())]  # +1: the BOS separator
        yield pa.RecordBatch.from_arrays([batch.column("id"), batch.column("source"), pa.array(counts, pa.int64())],
                                         names=["id", "source", "tokens"])


def _write_partition(index: int, batches, model_name: str, out: str, shard_tokens: int, vocab_size: int):
    """Encode this partition's documents in order and cut them into shards; yield one dict per shard."""
    sp = worker_tokenizer(SparkFiles.get(model_name))
    run = RunDir(out)
    cutter = ShardCutter(index, shard_tokens, vocab_size, lambda name, data: run.write_bytes_atomic(data, name))
    for batch in batches:
        texts = batch.column("text").to_pylist()
        splits = batch.column("split").to_pylist()
        sources = batch.column("source").to_pylist()
        for doc_ids, split, source in zip(sp.encode(texts), splits, sources, strict=True):
            arr = np.empty(len(doc_ids) + 1, dtype=cutter.dtype)
            arr[0] = BOS_ID
            arr[1:] = doc_ids
            info = cutter.add(split, arr, source)
            if info:
                yield info
    yield from cutter.finish()


def _write_arrow(batches, model_name: str, out: str, shard_tokens: int, vocab_size: int):
    """mapInArrow wrapper: one JSON row per written shard (Arrow batches avoid per-row Python objects)."""
    index = TaskContext.get().partitionId()
    infos = [json.dumps(info) for info in _write_partition(index, batches, model_name, out, shard_tokens, vocab_size)]
    yield pa.RecordBatch.from_arrays([pa.array(infos, pa.string())], names=["shard"])


class TokenizeStep(Step):
    """`corpus tokenize` from document folders (the sources) into RUN/tokens; stats in RUN/stats/tokenize.json."""

    name, folder = "tokenize", "tokens"

    def __init__(self, run: str, sources: list[SourceConf], conf: TokenizeConf, events: EventLog | None = None,
                 out: str | None = None):
        super().__init__(run, events, out)
        self.sources, self.conf = sources, conf
        self.manifest: dict = {}

    def fingerprint(self) -> str:
        return config_hash({"config": config_hash(self.conf),
                            "sources": [[s.name, s.weight, folder_fingerprint(s.path)] for s in self.sources]})

    def input_paths(self) -> list[str]:
        return [s.path for s in self.sources]

    def work(self, spark) -> dict:
        self.manifest = tokenize_documents(spark, self.sources, self.out_uri, self.conf)
        # Timing lives in RUN/stats (added by the base), not in the manifest, which stays byte-identical.
        return {"splits": self.manifest["splits"], "shards": len(self.manifest["shards"])}


def run_tokenize(spark: SparkSession, sources: list[SourceConf], out: str, conf: TokenizeConf,
                 events: EventLog | None = None) -> dict:
    """`corpus tokenize` writing RUN/tokens (`out`); returns the splits, sources, shard count and seconds."""
    step = TokenizeStep(run_root_of(out), sources, conf, events, out=out)
    stats = step.execute(spark)
    return {**step.manifest["splits"], "sources": step.manifest["sources"], "wall_seconds": stats["wall_seconds"],
            "shards": stats["shards"]}


def tokenize_documents(spark: SparkSession, sources: list[SourceConf], out: str, conf: TokenizeConf) -> dict:
    """Train or reuse the tokenizer, realize the mixture, write shards and OUT/manifest.json; returns the manifest."""
    run = RunDir(out)
    run.makedirs()
    for name in run.list():  # a rerun replaces the previous shards completely
        if name.endswith(".bin") or name == "manifest.json":
            run.fs.delete_file(run.path(name))
    docs = load_sources(spark, sources).localCheckpoint(eager=True)

    # The tokenizer is trained (or read) on the driver's local disk, then stored in OUT (local or object store)
    # and shipped to the executors with addFile.
    model_path = Path(tempfile.mkdtemp(prefix="corpus-tokenizer-")) / "tokenizer.model"
    if conf.tokenizer:
        with open_input(conf.tokenizer) as f:
            model_path.write_bytes(f.read())
    else:
        trained = _train(spark, docs, conf, model_path)
        trained.with_suffix(".vocab").unlink(missing_ok=True)
    run.write_bytes_atomic(model_path.read_bytes(), "tokenizer.model")
    sp = worker_tokenizer(str(model_path))
    vocab_size = sp.vocab_size()
    model_name = ship_file(spark, model_path.read_bytes(), ".model")

    weight_sum = sum(s.weight for s in sources)
    if len(sources) == 1:  # nothing to mix: every document once, and no counting pass
        available = {sources[0].name: (docs.count(), None)}
        factors = {sources[0].name: 1.0}
    else:
        counted = docs.select("id", "source", "text").mapInArrow(
            lambda it: _count_tokens(it, model_name), "id string, source string, tokens long")
        available = {r["source"]: (r["docs"], r["tokens"]) for r in counted.groupBy("source").agg(
            F.count("*").alias("docs"), F.sum("tokens").alias("tokens")).collect()}
        factors = sampling_factors({s.name: s.weight for s in sources},
                                   {name: t for name, (_, t) in available.items()})

    factor_col = F.create_map(*[x for name, f in factors.items() for x in (F.lit(name), F.lit(f))])[F.col("source")]
    u = _unit_hash("id", "source", F.lit(conf.seed), F.lit("mix"))
    copies = (F.floor(factor_col) + (u < (factor_col - F.floor(factor_col))).cast("int")).cast("int")
    selected = (docs.withColumn("copies", copies).where(F.col("copies") > 0)
                .withColumn("copy", F.explode(F.sequence(F.lit(0), F.col("copies") - 1)))
                .withColumn("split", F.when(_unit_hash("id", F.lit("split")) < conf.val_fraction, "val")
                            .otherwise("train"))
                .withColumn("order", F.xxhash64("id", "source", "copy", F.lit(conf.seed))))
    ordered = (selected.repartition(conf.partitions, F.pmod("order", F.lit(conf.partitions)))
               .sortWithinPartitions("split", "order", "id", "copy").select("id", "text", "source", "split"))
    shard_tokens, root = conf.shard_tokens, out
    shards = [json.loads(r["shard"]) for r in ordered.mapInArrow(
        lambda it: _write_arrow(it, model_name, root, shard_tokens, vocab_size), "shard string").collect()]
    shards.sort(key=lambda s: s["name"])

    realized, shares = realized_shares([s["source_tokens"] for s in shards])
    manifest = {
        **manifest_base(shards, model_path, sp),
        "sources": [{"name": s.name, "path": s.path, "weight": s.weight,
                     "target_share": s.weight / weight_sum,
                     "documents_available": available.get(s.name, (0, 0))[0],
                     "tokens_available": available.get(s.name, (0, 0))[1] or realized.get(s.name, 0),
                     "sampling_factor": round(factors[s.name], 6),
                     "tokens_realized": realized.get(s.name, 0),
                     "realized_share": shares.get(s.name, 0.0)} for s in sources],
        "source_runs": sorted({posixpath.dirname(s.path.rstrip("/")) for s in sources}),
        "seed": conf.seed,
        "val_fraction": conf.val_fraction,
        "shard_tokens": conf.shard_tokens,
    }
    run.write_json(manifest, "manifest.json")
    return manifest
