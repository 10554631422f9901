"""`corpus dedup`: exact dedup on a normalized content hash, then MinHash LSH near-dedup, all in Spark.

1. exact: hash of the whitespace-collapsed, lowercased text; one keeper per hash (aggregation, skew-safe).
2. signatures: mapInArrow over Arrow batches → one row per (doc, band) with a 64-bit bucket key.
3. candidates: every bucket's members are linked to the bucket's smallest id (a star, not all pairs:
   a page copied 10,000 times gives 10,000 edges, not 50 million), never collected to the driver.
4. optional verification: edges whose true Jaccard of 5-gram sets is below `verify_threshold` are dropped.
5. connected components (corpus.spark.connected_components) → one keeper per component by the keep rule.

The text is the bulk of the data (6 KB of 6.2 KB per web document), so it is read once and moved only by the
signature pass (where the documents lie), the verification (the candidate pairs' documents only) and the final
join of the kept documents; steps 1, 3 and 5 run on the documents without their text. At 100,000 documents the
earlier plan moved or re-read all of the text about seven times.

Outputs RUN/dedup/docs/part-NNNNN.parquet (kept docs + cluster_id, cluster_size) and RUN/stats/dedup.json.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable, Iterator

import pyarrow as pa
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.window import Window

from corpus.config import DedupConf
from corpus.io.rundir import RunDir
from corpus.schema import QUALITY_METRIC_COLUMNS
from corpus.spark.connected_components import connected_components
from corpus.spark.reader import read_parquet
from corpus.spark.writer import write_partitions
from corpus.steps.base import Step, config_hash, folder_fingerprint, join_uri, run_root_of
from corpus.steps.events import EventLog

SIG_SCHEMA = T.StructType([
    T.StructField("id", T.StringType()),
    T.StructField("band", T.IntegerType()),
    T.StructField("bucket", T.LongType()),
])

_HASHERS: dict = {}


def _hasher(params_json: str):
    from corpus.dedup.minhash import MinHasher, MinHashParams

    if params_json not in _HASHERS:
        _HASHERS[params_json] = MinHasher(MinHashParams(**json.loads(params_json)))
    return _HASHERS[params_json]


def band_rows(batches: Iterator[pa.RecordBatch], params_json: str) -> Iterator[pa.RecordBatch]:
    """Executor side: (id, text[, language]) batches → (id, band, bucket) rows for documents with a signature. With
    a language column, each document is shingled and bucketed per language (MinHasher.signatures / band_keys)."""
    hasher = _hasher(params_json)
    num_bands = hasher.params.num_bands
    for batch in batches:
        ids = batch.column("id").to_pylist()
        langs = batch.column("language").to_pylist() if "language" in batch.schema.names else None
        sigs, ok = hasher.signatures(batch.column("text").to_pylist(), langs)
        keys = hasher.band_keys(sigs[ok], None if langs is None else [x for x, good in zip(langs, ok, strict=True)
                                                                        if good])
        kept_ids = [i for i, good in zip(ids, ok, strict=True) if good]
        yield pa.RecordBatch.from_arrays(
            [
                pa.array([i for i in kept_ids for _ in range(num_bands)], pa.string()),
                pa.array(list(range(num_bands)) * len(kept_ids), pa.int32()),
                pa.array(keys.reshape(-1), pa.int64()),
            ],
            schema=pa.schema([("id", pa.string()), ("band", pa.int32()), ("bucket", pa.int64())]),
        )


def _keep_order(conf: DedupConf) -> list:
    """Sort key of the keeper within a group: smallest wins; ties broken by id, so the rule is total."""
    if conf.keep == "longest":
        return [F.struct((-F.length("text")).alias("k"), F.col("id")).alias("order")]
    if conf.keep == "earliest":
        return [F.struct(F.coalesce(F.col("date"), F.lit("~")).alias("k"), F.col("id")).alias("order")]
    return [F.struct(F.col("id").alias("k"), F.col("id")).alias("order")]


def _spread(frame: DataFrame, materialized: bool = True) -> DataFrame:
    """`frame` in at least two partitions per core before Python work on it. Adaptive execution coalesces a
    small shuffle's output to ~64 MB partitions: 10,000 documents of 6 KB became one partition, so one core
    computed every signature (37 s of a 97 s step on 2 cores) while the other idled. A checkpointed frame knows
    its partitions; a plan's count is known only after its shuffles ran, so that one is always repartitioned."""
    cores = frame.sparkSession.sparkContext.defaultParallelism
    if materialized and frame.rdd.getNumPartitions() >= cores:
        return frame
    return frame.repartition(2 * cores)


def verified_edges(batches: Iterator[pa.RecordBatch], params_json: str, threshold: float) -> Iterator[pa.RecordBatch]:
    """Executor side: (src, dst, a, b) batches, sorted by dst → the (src, dst) pairs whose word n-gram sets have a
    true Jaccard ≥ threshold. Edges are stars, so consecutive rows share their dst: its n-gram set is built once
    per run of rows, not once per edge (a cluster of 5 copies: 5 sets instead of 8)."""
    from corpus.dedup.minhash import jaccard, ngram_set

    hasher = _hasher(params_json)
    n = hasher.params.n_grams
    last_dst, dst_set = None, set()
    for batch in batches:
        src, dst = batch.column("src"), batch.column("dst")
        rows = len(batch)
        # each side's n-grams by its own language's tokenizer, as its signature was made
        la = batch.column("la").to_pylist() if "la" in batch.schema.names else [None] * rows
        lb = batch.column("lb").to_pylist() if "lb" in batch.schema.names else [None] * rows
        keep = []
        for d, a, b, lang_a, lang_b in zip(dst.to_pylist(), batch.column("a").to_pylist(),
                                           batch.column("b").to_pylist(), la, lb, strict=True):
            if d != last_dst:
                last_dst, dst_set = d, ngram_set(b, n, hasher.tokenizer_for(lang_b))
            keep.append(jaccard(ngram_set(a, n, hasher.tokenizer_for(lang_a)), dst_set) >= threshold)
        mask = pa.array(keep, pa.bool_())
        yield pa.RecordBatch.from_arrays([src.filter(mask), dst.filter(mask)], names=["src", "dst"])


def _verify(edges: DataFrame, docs: DataFrame, conf: DedupConf) -> DataFrame:
    params_json = json.dumps(conf.minhash.model_dump(), sort_keys=True)
    threshold = conf.verify_threshold
    lang = ["language"] if "language" in docs.columns else []
    texts = docs.select("id", "text", *lang)
    cores = docs.sparkSession.sparkContext.defaultParallelism
    side_a = texts.withColumnRenamed("id", "src").withColumnRenamed("text", "a")
    side_b = texts.withColumnRenamed("id", "dst").withColumnRenamed("text", "b")
    if lang:
        side_a, side_b = side_a.withColumnRenamed("language", "la"), side_b.withColumnRenamed("language", "lb")
    pairs = (edges.join(side_a, "src").join(side_b, "dst")
             .repartition(2 * cores, "dst").sortWithinPartitions("dst", "src"))
    return pairs.mapInArrow(lambda it: verified_edges(it, params_json, threshold), "src string, dst string")


REMOVED_COLUMNS = ["id", "url", "stage", "reason", "file_path", "chars", *QUALITY_METRIC_COLUMNS, "duplicate_of"]


def _removed_rows(frame: DataFrame, reason: str) -> DataFrame:
    """The removed-table row of each document in `frame` (which has `duplicate_of`): the build's removed columns
    that the input carries (nulls for the others), stage `dedup`, the reason, and the id it duplicates."""
    cols = []
    for name in REMOVED_COLUMNS:
        if name == "stage":
            cols.append(F.lit("dedup").alias("stage"))
        elif name == "reason":
            cols.append(F.lit(reason).alias("reason"))
        elif name in frame.columns:
            cols.append(F.col(name))
        else:
            kind = "long" if name == "chars" else "string" if name in ("url", "file_path") else "double"
            cols.append(F.lit(None).cast(kind).alias(name))
    return frame.select(*cols)


def _first_row_per_id(docs: DataFrame) -> tuple[DataFrame, DataFrame | None]:
    """Documents with a unique id, and the removed rows of repeated ids (None when there are none: the common case
    costs one shuffle of the id column only). The first row by (file_path, url, text) stays: deterministic."""
    repeated = docs.groupBy("id").count().where(F.col("count") > 1)
    if repeated.limit(1).count() == 0:
        return docs, None
    order = [F.col(c) for c in ("file_path", "url") if c in docs.columns] + [F.col("text")]
    ranked = docs.withColumn("_rank", F.row_number().over(Window.partitionBy("id").orderBy(*order)))
    dropped = ranked.where(F.col("_rank") > 1).withColumn("duplicate_of", F.col("id"))
    return ranked.where(F.col("_rank") == 1).drop("_rank"), _removed_rows(dropped, "duplicate_id")


class DedupStep(Step):
    """`corpus dedup` from an input document folder into RUN/dedup; stats in RUN/stats/dedup.json."""

    name, folder = "dedup", "dedup"

    def __init__(self, run: str, input_path: str, conf: DedupConf, events: EventLog | None = None,
                 out: str | None = None):
        super().__init__(run, events, out)
        self.input_path, self.conf = input_path, conf

    def fingerprint(self) -> str:
        return config_hash({"config": config_hash(self.conf), "input": folder_fingerprint(self.input_path)})

    def input_paths(self) -> list[str]:
        return [self.input_path]

    def work(self, spark) -> dict:
        return dedup_documents(spark, self.input_path, self.out_uri, self.conf)


def run_dedup(spark: SparkSession, input_path: str, out: str, conf: DedupConf, events: EventLog | None = None) -> dict:
    """`corpus dedup` writing RUN/dedup (`out`); its run folder RUN is the parent of `out`."""
    return DedupStep(run_root_of(out), input_path, conf, events, out=out).execute(spark)


def _set_checkpoint_dir(spark: SparkSession, out: str, conf: DedupConf) -> bool:
    """Where the connected-components rounds checkpoint (see conf/pipeline.yaml); False: Spark's local
    checkpoints, for object-store runs whose JVM may have no Hadoop connector."""
    target = conf.checkpoint_dir
    if target is None and ("://" not in out or out.startswith(("file://", "hdfs://"))):
        target = join_uri(out, "_checkpoints")
        if "://" not in target:
            target = os.path.abspath(target)
    if target is None:
        return False
    spark.sparkContext.setCheckpointDir(target)
    return True


# Below this many ids, a join that only filters documents by id broadcasts the ids instead of shuffling the text.
BROADCAST_IDS = 2_000_000


def _filter_ids(frame: DataFrame, ids: DataFrame, n_ids: int, how: str) -> DataFrame:
    """`frame` semi- or anti-joined with a one-column frame of ids; small id sets are broadcast, so the text of
    `frame` stays where it is."""
    return frame.join(F.broadcast(ids) if n_ids <= BROADCAST_IDS else ids, "id", how)


def _materialize(frame: DataFrame, held: list[DataFrame]) -> tuple[DataFrame, int]:
    """`frame` computed once (persisted, counted: the count is returned, each job being a fixed cost that
    dominates small inputs) and added to `held` for unpersisting. Not a local checkpoint:
    its blocks live only on the executor that computed them, and a later stage that needs a block of an executor
    that died fails the job ("Checkpoint block not found"); a persisted frame keeps its lineage, so Spark
    recomputes the lost partitions (tests/e2e/test_executor_loss.py kills an executor in the middle of dedup)."""
    # A cached plan's shuffles keep all spark.sql.shuffle.partitions unless adaptive execution may coalesce them
    # (off by default): the demo's dedup ran 183 tasks instead of 67. Set while the plan is cached only.
    key = "spark.sql.optimizer.canChangeCachedPlanOutputPartitioning"
    conf = frame.sparkSession.conf
    before = conf.get(key, None)
    conf.set(key, "true")
    try:
        frame = frame.persist(StorageLevel.MEMORY_AND_DISK)
    finally:
        if before is None:
            conf.unset(key)
        else:
            conf.set(key, before)
    held.append(frame)
    return frame, frame.count()


def dedup_documents(spark: SparkSession, input_path: str, out: str, conf: DedupConf) -> dict:
    """Exact then near dedup of the documents under `input_path` into OUT/docs; returns the stats (see
    _dedup_documents); the frames it persisted are released afterwards, also on failure."""
    held: list[DataFrame] = []
    try:
        return _dedup_documents(spark, input_path, out, conf, functools.partial(_materialize, held=held))
    finally:
        for frame in held:
            frame.unpersist()


def _dedup_documents(spark: SparkSession, input_path: str, out: str, conf: DedupConf,
                     keep: Callable[[DataFrame], tuple[DataFrame, int]]) -> dict:
    """Exact then near dedup of the documents under `input_path` into OUT/docs; returns the stats.

    The text is read once (a persisted frame of the input, see _materialize) and moves only where it is needed:
    signatures are computed where the documents lie, verification joins the text of the candidate pairs'
    documents only, and the kept documents are joined with their cluster once, for the write. Everything in
    between (exact groups, bucket edges, components, keepers, removed rows) runs on `meta`, the documents without
    their text."""
    run = RunDir(out)
    run.makedirs("docs")
    timing: dict[str, float] = {}  # seconds per phase (each ends at an eager action), for growth checks
    clock = [time.perf_counter()]

    def lap(phase: str) -> None:
        now = time.perf_counter()
        timing[phase] = round(now - clock[0], 2)
        clock[0] = now
    reliable = _set_checkpoint_dir(spark, out, conf)
    normalized = F.trim(F.lower(F.regexp_replace("text", r"(?U)\s+", " ")))
    # The one read of the input: read_parquet goes through Python (pyarrow) and prunes no column, so every other
    # use of a lazy frame would read and convert the whole input again.
    docs, n_in = keep(read_parquet(spark, input_path).withColumn("content_hash", F.xxhash64(normalized)))
    removed: list[DataFrame] = []

    # 0. every join below is on id: a repeated id would multiply rows, so only the first row per id goes on.
    docs, id_removed = _first_row_per_id(docs)
    if id_removed is not None:
        removed.append(id_removed)
        docs, n_ids = keep(docs)
    else:
        n_ids = n_in

    order = _keep_order(conf)
    meta = docs.select(*[c for c in docs.columns if c != "text"], *order,
                       F.octet_length("text").alias("text_bytes"))

    # 1. exact duplicates: keep one document per normalized-text hash.
    if conf.exact:
        groups, _ = keep(meta.groupBy("content_hash").agg(F.min("order").alias("order"),
                                                       F.count(F.lit(1)).alias("exact_copies")))
        copies = (meta.join(groups.select("content_hash", F.col("order.id").alias("duplicate_of")), "content_hash")
                  .where(F.col("id") != F.col("duplicate_of")))
        removed.append(_removed_rows(copies, "exact_duplicate"))
        unique_meta = meta.join(groups.select(F.col("order.id").alias("id"), "exact_copies"), "id")
    else:
        unique_meta = meta.withColumn("exact_copies", F.lit(1))
    unique_meta, n_unique = keep(unique_meta)
    n_copies = n_ids - n_unique
    unique = (docs if n_copies == 0 else
              _filter_ids(docs, copies.select("id"), n_copies, "left_anti")).select(
        "id", "text", *[c for c in ("language",) if c in docs.columns])  # dedup is per language
    lap("read_and_exact")

    # 2-3. signatures → band buckets → star edges to each bucket's smallest id.
    params_json = json.dumps(conf.minhash.model_dump(), sort_keys=True)
    bands = _spread(unique, materialized=n_copies == 0).mapInArrow(lambda it: band_rows(it, params_json), SIG_SCHEMA)
    bands, n_band_rows = keep(bands)
    lap("signatures")
    with_signature = n_band_rows // conf.minhash.num_bands  # band_rows gives each (unique) id num_bands rows
    buckets = bands.groupBy("band", "bucket").agg(F.min("id").alias("dst"), F.count(F.lit(1)).alias("size"))
    largest_bucket = buckets.agg(F.max("size")).first()[0] or 0
    bucket_min = buckets.select("band", "bucket", "dst")
    edges = (bands.join(bucket_min, ["band", "bucket"]).where(F.col("id") != F.col("dst"))
             .select(F.col("id").alias("src"), "dst").distinct())
    edges, n_candidates = keep(edges)
    n_edges = n_candidates
    lap("buckets_and_edges")

    # 4. optional verification by true Jaccard, on the text of the documents that are in a candidate pair only.
    if conf.verify_threshold is not None and n_candidates:
        ends = edges.select(F.col("src").alias("id")).union(edges.select(F.col("dst").alias("id"))).distinct()
        n_ends = ends.count()
        edges, n_edges = keep(_verify(edges, _filter_ids(unique, ends, n_ends, "left_semi"), conf))
    lap("verify")

    # 5. components → keeper per component, all without the text.
    cc_info = {"rounds": 0}
    components = (connected_components(edges, conf.max_iterations, checkpoint=reliable, info=cc_info,
                                        n_edges=n_edges) if n_edges
                  else unique.sparkSession.createDataFrame([], "node string, component string"))
    labelled = (unique_meta.join(components.withColumnRenamed("node", "id"), "id", "left")
                .withColumn("component", F.coalesce("component", "id")))
    per_component = labelled.select("component", "order", "exact_copies").groupBy("component").agg(
        F.min("order").alias("order"), F.count(F.lit(1)).alias("near_members"),
        F.sum("exact_copies").alias("cluster_size"))
    keepers = per_component.select(F.col("order.id").alias("id"), F.col("order.id").alias("cluster_id"),
                                "near_members", F.col("cluster_size").cast("long"))
    members = labelled.join(per_component.select("component", F.col("order.id").alias("duplicate_of")), "component")
    kept_meta, _ = keep(labelled.join(keepers, "id").select("id", "cluster_id", "cluster_size", "near_members",
                                                         "text_bytes"))
    lap("components")

    removed.append(_removed_rows(members.where(F.col("id") != F.col("duplicate_of")), "near_duplicate"))
    columns = [c for c in docs.columns if c != "content_hash"] + ["cluster_id", "cluster_size"]
    # Both sides explicitly hash-partitioned by id into the output's partitions: the join then needs no other
    # shuffle, and adaptive execution cannot coalesce it (it did, into one part, when the join's own shuffle fed
    # the write), so each kept document lands in the part `repartition(P, "id")` assigns, as before.
    parts = conf.output_partitions
    kept = docs.repartition(parts, "id").join(
        kept_meta.select("id", "cluster_id", "cluster_size").repartition(parts, "id"), "id")
    write_partitions(kept.select(*columns).repartition(parts, "id").sortWithinPartitions("id"), out, "docs")

    # Every document that is not kept is in RUN/dedup/removed with its reason and the id it duplicates.
    all_removed = removed[0]
    for frame in removed[1:]:
        all_removed = all_removed.unionByName(frame)
    ordered = all_removed.repartition(conf.output_partitions, "id").sortWithinPartitions(
        "id", "reason", *[c for c in ("file_path", "url") if c in all_removed.columns])
    n_removed = write_partitions(ordered, out, "removed")
    lap("keepers_and_write")

    # One small aggregate gives the histogram, the totals and the near clusters (one job instead of three).
    summary = kept_meta.groupBy("cluster_size", (F.col("near_members") > 1).alias("near")).agg(
        F.count(F.lit(1)).alias("n"), F.sum("text_bytes").alias("bytes")).collect()
    sizes: dict[int, int] = {}
    for r in summary:
        sizes[r["cluster_size"]] = sizes.get(r["cluster_size"], 0) + r["n"]
    histogram = {str(size): n for size, n in sorted(sizes.items())}
    n_kept = sum(r["n"] for r in summary)
    kept_bytes = sum(r["bytes"] or 0 for r in summary)
    near_clusters = sum(r["n"] for r in summary if r["near"])
    stats = {
        "documents_in": n_in,
        "duplicate_ids_removed": n_in - n_ids,
        "exact_duplicates_removed": n_ids - n_unique,
        "documents_removed": n_removed,
        "documents_with_signature": with_signature,
        "documents_too_short_for_minhash": n_unique - with_signature,
        "candidate_edges": n_candidates,
        "verified_edges": n_edges,
        "largest_bucket": int(largest_bucket),  # members of the most shared (band, bucket): the skew to watch
        "cc_rounds": cc_info["rounds"],
        "near_duplicate_clusters": near_clusters,
        "near_duplicates_removed": n_unique - n_kept,
        "documents_kept": n_kept,
        "text_bytes_kept": int(kept_bytes),  # UTF-8 bytes, for the report's byte funnel
        "cluster_size_histogram": histogram,
        "timing": timing,
        "config": conf.model_dump(),
    }
    return stats
