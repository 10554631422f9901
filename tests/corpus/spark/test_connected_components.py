"""Connected components: the driver-side path for few edges (components_local) against a union-find reference,
and against the Spark rounds, row for row and round for round (the stats report `cc_rounds`)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corpus.spark.connected_components import ConvergenceError, components_local, connected_components


def union_find_components(edges: set[tuple[str, str]]) -> dict[str, str]:
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)  # the root stays the smallest node: the component's label
    return {x: root(x) for x in parent if any(x in e for e in edges)}


ids = st.text(alphabet="abcdé漢0123456789", min_size=1, max_size=3)


@settings(max_examples=200, deadline=None)
@given(st.sets(st.tuples(ids, ids), max_size=40))
def test_local_components_are_the_smallest_node_of_each_component(edges):
    info: dict = {}
    rows = components_local(edges, info=info)
    expected = union_find_components({(a, b) for a, b in edges if a != b})
    assert dict(rows) == expected and len(rows) == len(expected)
    assert rows == sorted(rows)
    assert info.get("rounds", 0) >= (1 if expected else 0)


def test_local_components_raise_when_rounds_run_out():
    chain = {(f"n{i:03d}", f"n{i + 1:03d}") for i in range(200)}
    with pytest.raises(ConvergenceError):
        components_local(chain, max_iterations=1)


def _graphs() -> list[set[tuple[str, str]]]:  # one graph: each Spark round costs ~1 s
    rnd = random.Random(7)
    shuffled = [f"s{i:02d}" for i in range(24)]
    rnd.shuffle(shuffled)
    path = {(shuffled[i], shuffled[i + 1]) for i in range(23)}  # a path in shuffled id order: several rounds
    sparse = {(f"r{rnd.randrange(40):02d}", f"r{rnd.randrange(40):02d}") for _ in range(30)}  # self loops too
    unicode_ids = {("é1", "z9"), ("z9", "漢"), ("b", "é1"), ("q", "q2")}  # UTF-8 byte order = code point order
    return [path | sparse | unicode_ids]


def test_driver_path_matches_spark_rounds(spark):
    for edges in _graphs():
        frame = spark.createDataFrame(sorted(edges), "src string, dst string")
        on_spark, on_driver = {}, {}
        spark_rows = sorted(tuple(r) for r in connected_components(frame, checkpoint=False, info=on_spark).collect())
        driver_rows = sorted(tuple(r) for r in connected_components(frame, info=on_driver,
                                                                    n_edges=len(edges)).collect())
        assert driver_rows == spark_rows
        assert on_driver["rounds"] == on_spark["rounds"] > 1
