"""Connected components on a Spark DataFrame of edges, with no single-task step.

Alternating large-star / small-star (Kiveris et al., "Connected Components in MapReduce and Beyond",
SoCC 2014). Each round is a few group-bys and joins keyed by node; min-aggregations combine map-side, so a
node with 10,000 neighbours is pre-reduced on every mapper, and the one join keyed by node relies on
Spark's adaptive skew-join splitting. Lineage is cut by a checkpoint every round.

Few edges (≤ LOCAL_EDGES, e.g. the README demo's 49) are collected and the same rounds run on the driver, in
Python sets: every Spark round costs ~10 jobs and a checkpoint, seconds of fixed cost for a few dozen edges, while
the result (components, and the number of rounds reported in the stats) is the same by construction.

Input: DataFrame (src, dst) of string node ids (any order, duplicates allowed, no self loops needed).
Output: DataFrame (node, component) for every node that has an edge; component = smallest node id.
"""

from __future__ import annotations

from collections import defaultdict

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


class ConvergenceError(RuntimeError):
    pass


def _symmetric(edges: DataFrame) -> DataFrame:
    return edges.select("src", "dst").union(edges.select(F.col("dst").alias("src"), F.col("src").alias("dst")))


def large_star(edges: DataFrame) -> DataFrame:
    """Connect every strictly larger neighbour of u to the smallest node of u's neighbourhood (u included)."""
    sym = _symmetric(edges)
    m = sym.groupBy("src").agg(F.least(F.min("dst"), F.first("src")).alias("m"))
    return (sym.join(m, "src").where(F.col("dst") > F.col("src"))
            .select(F.col("dst").alias("src"), F.col("m").alias("dst")).distinct())


def small_star(edges: DataFrame) -> DataFrame:
    """Connect u and its smaller neighbours to the smallest of them."""
    oriented = edges.select(F.greatest("src", "dst").alias("src"), F.least("src", "dst").alias("dst"))
    m = oriented.groupBy("src").agg(F.min("dst").alias("m"))
    joined = oriented.join(m, "src")
    to_min = joined.where(F.col("dst") != F.col("m")).select(F.col("dst").alias("src"), F.col("m").alias("dst"))
    self_edge = m.select(F.col("src"), F.col("m").alias("dst"))
    return to_min.union(self_edge).distinct()


def _fingerprint(edges: DataFrame) -> tuple[int, int]:
    row = edges.agg(F.count(F.lit(1)).alias("n"),
                    F.sum(F.xxhash64("src", "dst").cast("decimal(38,0)")).alias("h")).first()
    return int(row["n"]), int(row["h"] or 0)


# Up to this many edges, components are computed on the driver (a few MB of ids at most).
LOCAL_EDGES = 100_000

Edges = set[tuple[str, str]]


def large_star_local(edges: Edges) -> Edges:
    """large_star on a set of (src, dst) pairs, row for row what the Spark version computes."""
    neighbours: dict[str, list[str]] = defaultdict(list)
    for src, dst in edges:
        neighbours[src].append(dst)
        neighbours[dst].append(src)
    out = set()
    for u, vs in neighbours.items():
        m = min(min(vs), u)
        out.update((v, m) for v in vs if v > u)
    return out


def small_star_local(edges: Edges) -> Edges:
    """small_star on a set of (src, dst) pairs, row for row what the Spark version computes."""
    oriented = {(max(a, b), min(a, b)) for a, b in edges}
    m: dict[str, str] = {}
    for src, dst in oriented:
        m[src] = min(m.get(src, dst), dst)
    return {(dst, m[src]) for src, dst in oriented if dst != m[src]} | set(m.items())


def components_local(edges: Edges, max_iterations: int = 40, info: dict | None = None) -> list[tuple[str, str]]:
    """The (node, component) rows of `connected_components` for edges held in memory, sorted; same rounds.
    Python compares str by code point, which orders UTF-8 like Spark's binary string order."""
    current = {(a, b) for a, b in edges if a != b}
    for rounds in range(1, max_iterations + 1):
        following = small_star_local(large_star_local(current))
        if following == current:
            if info is not None:
                info["rounds"] = rounds
            return sorted({(src, dst) for src, dst in current} | {(dst, dst) for _, dst in current})
        current = following
    raise ConvergenceError(f"connected components did not converge in {max_iterations} rounds")


def connected_components(edges: DataFrame, max_iterations: int = 40, checkpoint: bool = True,
                         info: dict | None = None, n_edges: int | None = None) -> DataFrame:
    """(node, component) of every node with an edge; `info`, when given, receives `rounds` (large-star +
    small-star pairs run, the last being the one that found the fixed point) for the stats and benchmarks.
    `n_edges`, when the caller knows it, lets few edges be solved on the driver (components_local)."""
    if n_edges is not None and n_edges <= LOCAL_EDGES:
        pairs = {(r["src"], r["dst"]) for r in edges.select("src", "dst").collect()}
        rows = components_local(pairs, max_iterations, info)
        return edges.sparkSession.createDataFrame(rows, "node string, component string")
    current = edges.select("src", "dst").where(F.col("src") != F.col("dst")).distinct()
    previous = _fingerprint(current)
    for rounds in range(1, max_iterations + 1):
        current = small_star(large_star(current))
        # localCheckpoint also cuts the lineage each round, without a Hadoop checkpoint folder (object-store runs).
        current = current.checkpoint(eager=True) if checkpoint else current.localCheckpoint(eager=True)
        fingerprint = _fingerprint(current)
        if fingerprint == previous:
            if info is not None:
                info["rounds"] = rounds
            # A fixed point of both stars is a set of stars: every node points at its component's minimum.
            roots = current.select(F.col("dst").alias("node"), F.col("dst").alias("component")).distinct()
            leaves = current.select(F.col("src").alias("node"), F.col("dst").alias("component"))
            return leaves.union(roots).distinct()
        previous = fingerprint
    raise ConvergenceError(f"connected components did not converge in {max_iterations} rounds")
