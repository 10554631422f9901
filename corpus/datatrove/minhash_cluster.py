"""A Spark replacement for datatrove's MinhashDedupCluster (MinHash stage 3), with no single-task step.

datatrove's stage 3 reads every ``*.dups`` file of stage 2 into one in-memory union-find, in one task (its
``world_size == 1`` assert). Here:

1. every ``.dups`` file is read by a Spark task (``mapInArrow``: little-endian ``<4I`` records
   ``(file1, doc1, file2, doc2)``, datatrove's format; ``(SENTINEL, SENTINEL)`` marks a match with an index);
2. connected components with our large-star / small-star rounds (``corpus.spark.connected_components``);
3. the document kept per component is the one datatrove keeps: its union-find root. That root depends on the
   order of the unions (union by size, ties to the first pair's side, the index SENTINEL always root), but only on
   the unions *inside* the component, so each component's edges, in datatrove's order (file listing order, then
   position in the file), are replayed through the same union-find in a per-component task (``applyInPandas``).
   Components touching the index are rooted at SENTINEL: all their documents go, no replay needed;
4. ``{file:06d}.remove`` (sorted ``<I`` doc ids), and on request ``.clusters`` / ``.sizes`` (``<I`` pairs), are
   written one file per task, byte for byte what datatrove's stage 3 writes, so its stage 4 (MinhashDedupFilter)
   reads them unchanged. Stats: ``duplicates``, ``to_remove``, ``cluster_size`` (and ``clusters``) as datatrove's.

The step is a Spark job, so it runs where the SparkSession is: ``SparkPipelineExecutor`` runs it on the driver
(``runs_on_driver``); under LocalPipelineExecutor it uses the active session, or starts a local one.
"""

from __future__ import annotations

from datatrove.data import DocumentsPipeline
from datatrove.io import DataFolderLike, get_datafolder
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.dedup.minhash import SENTINEL, MinhashConfig
from datatrove.utils.stats import MetricStats

# Node ids are (file << 32) | doc, so their order is datatrove's sorted((file, doc)) order; the index SENTINEL
# becomes -1: below every document, so it is the component id (the smallest node) of every component it touches.
_SENTINEL_NODE = -1


def _node(file, doc):
    return (file.astype("int64") << 32) | doc.astype("int64")


def _read_dups(folder, ignore_index_matches: bool):
    """mapInArrow body: rows (file_index, path) → edges (src, dst, file_index, pos) of each .dups file."""
    import numpy as np
    import pyarrow as pa

    def run(batches):
        for batch in batches:
            for file_index, path in zip(batch.column("file_index").to_pylist(), batch.column("path").to_pylist()):
                with folder.open(path, "rb") as f:
                    raw = f.read()
                if len(raw) % 16:
                    raise ValueError(f"{path}: {len(raw)} bytes is not a whole number of 16-byte (<4I) records")
                rec = np.frombuffer(raw, dtype="<u4").reshape(-1, 4)
                index = (rec[:, 0] == SENTINEL) & (rec[:, 1] == SENTINEL)
                src = np.where(index, _SENTINEL_NODE, _node(rec[:, 0], rec[:, 1]))
                dst = _node(rec[:, 2], rec[:, 3])
                pos = np.arange(len(rec), dtype="int64")
                keep = ~index if ignore_index_matches else np.ones(len(rec), dtype=bool)
                yield pa.RecordBatch.from_arrays(
                    [pa.array(src[keep]), pa.array(dst[keep]), pa.array(np.full(int(keep.sum()), file_index)),
                     pa.array(pos[keep])], names=["src", "dst", "file_index", "pos"])

    return run


def _replay(edges):
    """applyInPandas body: one component's edges in datatrove's order → its root, by datatrove's union-find."""
    import pandas as pd

    edges = edges.sort_values(["file_index", "pos"], kind="stable")
    parent: dict[int, int] = {}
    size: dict[int, int] = {}

    def find(x):
        root = x
        while parent.get(root, root) != root:
            root = parent[root]
        while x != root:  # path compression, as datatrove's recursive parent()
            parent[x], x = root, parent[x]
        return root

    # datatrove's union(): union by size, ties go to the first pair member's root (no SENTINEL in a replayed group)
    for a, b in zip(edges["src"].tolist(), edges["dst"].tolist()):
        ra, rb = find(a), find(b)
        if ra != rb:
            sa, sb = size.get(ra, 1), size.get(rb, 1)
            if sa < sb:
                ra, rb = rb, ra
            parent[rb] = ra
            size[ra] = sa + sb
            size.pop(rb, None)
    root = find(int(edges["src"].iloc[0]))
    return pd.DataFrame({"component": [int(edges["component"].iloc[0])], "root": [root]})


def _pairs_writer(folder, suffix: str, second: str | None):
    """foreach body: one row (file, docs[, values]) → {file:06d}{suffix}, datatrove's little-endian <I layout."""

    def write(row):
        import numpy as np

        docs = np.asarray(row["docs"], dtype="<u4")
        data = docs if second is None else np.column_stack([docs, np.asarray(row[second], dtype="<u4")])
        with folder.open(f"{row['file']:06d}{suffix}", mode="wb") as f:
            f.write(data.tobytes())

    return write


class SparkMinhashDedupCluster(PipelineStep):
    """MinHash stage 3 on Spark: datatrove's ``MinhashDedupCluster`` arguments, outputs and kept documents.

    Run it alone in an executor with ``tasks=1`` (``SparkPipelineExecutor`` runs it on the driver, which spreads
    the work over the cluster). ``lines_to_buffer`` is accepted for drop-in use and unused (files are read whole,
    one per task)."""

    type = "🫂 - DEDUP"
    name = "🎯 MinHash stage 3 (Spark)"
    runs_on_driver = True

    def __init__(self, input_folder: DataFolderLike, output_folder: DataFolderLike, config: MinhashConfig = None,
                 save_cluster_id: bool = False, save_cluster_size: bool = False, ignore_index_matches: bool = False,
                 lines_to_buffer: int = 5, max_iterations: int = 40):
        super().__init__()
        self.input_folder = get_datafolder(input_folder)
        self.output_folder = get_datafolder(output_folder)
        self.config = config or MinhashConfig()
        self.save_cluster_id = save_cluster_id
        self.save_cluster_size = save_cluster_size
        self.ignore_index_matches = ignore_index_matches
        self.lines_to_buffer = lines_to_buffer
        self.max_iterations = max_iterations

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1):
        if data is not None:
            raise ValueError("SparkMinhashDedupCluster reads stage 2's .dups files; put no reader before it")
        if world_size != 1:
            raise ValueError(f"SparkMinhashDedupCluster runs as one driver task (tasks=1), got world_size={world_size}")
        dup_files = self.input_folder.list_files(glob_pattern="*.dups")
        if len(dup_files) % self.config.num_buckets:
            raise ValueError(f"{len(dup_files)} .dups files in {self.input_folder.path} is not a multiple of "
                             f"num_buckets={self.config.num_buckets}: did MinHash stage 2 finish?")
        with self.track_time():
            self._cluster(self._session(), dup_files)
        return iter(())

    @staticmethod
    def _session():
        from pyspark.sql import SparkSession

        spark = SparkSession.getActiveSession()
        if spark is None:
            from corpus.spark.session import get_session

            spark = get_session(None, "datatrove-minhash-cluster")
        return spark

    def _cluster(self, spark, dup_files: list[str]) -> None:
        from pyspark.sql import functions as F
        from pyspark.sql import types as T

        from corpus.spark.connected_components import connected_components

        for suffix in (".remove", ".clusters", ".sizes"):  # a rerun must not keep files of another run
            for stale in self.output_folder.list_files(glob_pattern=f"*{suffix}"):
                self.output_folder.rm(stale)
        if not dup_files:
            self._set_stats(0, 0, {}, 0)
            return
        files = spark.createDataFrame(list(enumerate(dup_files)), "file_index long, path string")
        files = files.repartition(min(len(dup_files), spark.sparkContext.defaultParallelism * 4), "file_index")
        edge_schema = "src long, dst long, file_index long, pos long"
        edges = files.mapInArrow(_read_dups(self.input_folder, self.ignore_index_matches), edge_schema)
        edges = edges.localCheckpoint(eager=True)  # read once: used by the components and by the replay
        checkpoint = spark.sparkContext.getCheckpointDir() is not None
        cc = connected_components(edges, max_iterations=self.max_iterations, checkpoint=checkpoint)
        cc = cc.localCheckpoint(eager=True)

        # Roots: SENTINEL for components that touch the index, else datatrove's union-find replayed per component
        with_index = cc.where(F.col("node") == _SENTINEL_NODE).select("component")
        replay_edges = (edges.join(cc.withColumnRenamed("node", "src"), "src")
                        .join(with_index, "component", "left_anti"))
        roots = replay_edges.groupBy("component").applyInPandas(_replay, "component long, root long")
        roots = roots.union(with_index.select("component", F.lit(_SENTINEL_NODE).cast("long").alias("root")))
        sizes = cc.groupBy("component").agg(F.count(F.lit(1)).alias("size"))
        nodes = cc.join(roots, "component").join(sizes, "component").localCheckpoint(eager=True)

        real = nodes.where(F.col("node") != _SENTINEL_NODE)
        file_col = F.shiftright("node", 32).alias("file")
        doc_col = F.col("node").bitwiseAND(0xFFFFFFFF).alias("doc")
        removed = real.where(F.col("node") != F.col("root")).select(file_col, doc_col)
        self._write(removed.groupBy("file").agg(F.sort_array(F.collect_list("doc")).alias("docs")), ".remove", None)

        n_clusters = 0
        if self.save_cluster_id or self.save_cluster_size:
            # datatrove walks sorted((file, doc)) with SENTINEL = (2^32-1, 2^32-1) last, numbering clusters as they
            # first appear: by their smallest node, SENTINEL counted as the largest
            order = F.when(F.col("node") == _SENTINEL_NODE, F.lit(2**63 - 1)).otherwise(F.col("node"))
            firsts = nodes.groupBy("component").agg(F.min(order).alias("first"))
            ids = firsts.rdd.map(lambda r: (r["first"], r["component"])).sortByKey().zipWithIndex()
            ids = ids.map(lambda x: (x[0][1], x[1])).toDF(T.StructType([
                T.StructField("component", T.LongType()), T.StructField("cluster", T.LongType())]))
            n_clusters = ids.count() if self.save_cluster_id else 0  # datatrove counts them only then
            is_index = F.col("node") == _SENTINEL_NODE
            both = nodes.join(ids, "component").select(
                F.when(is_index, F.lit(SENTINEL)).otherwise(F.shiftright("node", 32)).alias("file"),
                F.when(is_index, F.lit(SENTINEL)).otherwise(F.col("node").bitwiseAND(0xFFFFFFFF)).alias("doc"),
                "cluster", "size")
            triples = F.sort_array(F.collect_list(F.struct("doc", "cluster", "size")))
            pairs = both.groupBy("file").agg(triples.alias("p"))
            pairs = pairs.select("file", F.col("p.doc").alias("docs"), F.col("p.cluster").alias("cluster"),
                                 F.col("p.size").alias("size"))
            if self.save_cluster_id:
                self._write(pairs, ".clusters", "cluster")
            if self.save_cluster_size:
                self._write(pairs, ".sizes", "size")

        counts = nodes.agg(F.count(F.lit(1)).alias("n"),
                           F.sum((F.col("node") != F.col("root")).cast("long")).alias("removed")).first()
        hist = {int(r["size"]): int(r["count"]) for r in sizes.groupBy("size").count().collect()}
        self._set_stats(int(counts["n"]), int(counts["removed"] or 0), hist, n_clusters)

    def _write(self, frame, suffix: str, second: str | None) -> None:
        frame.foreach(_pairs_writer(self.output_folder, suffix, second))

    def _set_stats(self, n_nodes: int, n_removed: int, size_hist: dict[int, int], n_clusters: int) -> None:
        # The MetricStats datatrove's per-node / per-cluster stat_update calls accumulate, built from counts
        # (sizes in ascending order, so the figures do not depend on Spark's partitioning).
        if n_nodes:
            self.stats["duplicates"] = MetricStats(total=n_nodes, n=n_nodes, mean=1.0, min=1, max=1)
        if n_removed:
            self.stats["to_remove"] = MetricStats(total=n_removed, n=n_removed, mean=1.0, min=1, max=1)
        if n_clusters:
            self.stats["clusters"] = MetricStats(total=n_clusters, n=n_clusters, mean=1.0, min=1, max=1)
        if size_hist:
            n = sum(size_hist.values())
            total = sum(s * c for s, c in size_hist.items())
            mean = total / n
            self.stats["cluster_size"] = MetricStats(
                total=total, n=n, mean=mean, min=min(size_hist), max=max(size_hist),
                _running_variance=sum(c * (s - mean) ** 2 for s, c in sorted(size_hist.items())), unit="cluster")
