"""Deterministic document samples for the report and the diff: a few rows per key, chosen by a hash of the id.

Two bounded passes, never a whole table on the driver:
1. while the report streams its narrow columns anyway (`id` plus the key columns), each row's id is hashed
   (8-byte BLAKE2b, stable across runs and machines) and a per-key heap keeps the K smallest hashes with the
   row's location (file, row number) — O(keys × K) memory;
2. only the Parquet row groups that hold a chosen row are read, with only the columns a sample shows (text
   clipped afterwards): at most keys × K row groups, whatever the table's size.

"Smallest hashes" is a uniform sample that does not depend on file order or partitioning, so the same
documents are chosen in two runs of the same input — which the diff relies on.
"""

from __future__ import annotations

import hashlib
import heapq
from collections import defaultdict

import pyarrow as pa
import pyarrow.parquet as pq

from corpus.io.rundir import RunDir

PER_KEY = 5
TEXT_CHARS = 300


def id_hash(doc_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest(), "big")


def clip(text: str | None, n: int = TEXT_CHARS) -> str | None:
    if text is None:
        return None
    return text if len(text) <= n else text[:n] + "…"


class Sampler:
    """The K rows with the smallest id hash per key; `add` takes one batch's ids, keys and location."""

    def __init__(self, k: int = PER_KEY):
        self.k = k
        self.heaps: dict[tuple, list] = defaultdict(list)  # key → max-heap of (-hash, id, (file, row))

    def add(self, ids: pa.Array, keys: list[pa.Array], file_index: int, row_start: int) -> None:
        key_lists = [k.to_pylist() for k in keys]
        for i, doc_id in enumerate(ids.to_pylist()):
            self.add_one(doc_id, tuple(k[i] for k in key_lists), (file_index, row_start + i))

    def add_one(self, doc_id: str | None, key: tuple, location: tuple[int, int]) -> None:
        if doc_id is None:
            return
        h = id_hash(doc_id)
        heap = self.heaps[key]
        if len(heap) < self.k:
            heapq.heappush(heap, (-h, doc_id, location))
        elif -heap[0][0] > h:
            heapq.heapreplace(heap, (-h, doc_id, location))

    def chosen(self) -> dict[tuple, list[tuple[str, tuple[int, int]]]]:
        """key → [(id, location)] in hash order."""
        return {key: [(doc_id, loc) for _, doc_id, loc in sorted(heap, key=lambda e: -e[0])]
                for key, heap in sorted(self.heaps.items(), key=lambda kv: tuple(str(x) for x in kv[0]))}


def fetch_rows(run: RunDir, sub: str, files: list[str], locations: list[tuple[int, int]],
               columns: list[str]) -> dict[tuple[int, int], dict]:
    """The rows at `locations` ((file index, row number)), reading only the row groups that hold them."""
    by_file: dict[int, list[int]] = defaultdict(list)
    for file_index, row in locations:
        by_file[file_index].append(row)
    out: dict[tuple[int, int], dict] = {}
    for file_index, rows in sorted(by_file.items()):
        with run.fs.open_input_file(run.path(sub, files[file_index])) as f:
            pf = pq.ParquetFile(f)
            present = [c for c in columns if c in pf.schema_arrow.names]
            starts, start = [], 0
            for g in range(pf.metadata.num_row_groups):
                starts.append(start)
                start += pf.metadata.row_group(g).num_rows
            by_group: dict[int, list[int]] = defaultdict(list)
            for row in rows:
                group = max(g for g, s in enumerate(starts) if s <= row)
                by_group[group].append(row)
            for group, group_rows in sorted(by_group.items()):
                table = pf.read_row_group(group, columns=present)
                picked = table.take(pa.array([r - starts[group] for r in group_rows], pa.int64())).to_pylist()
                for row, values in zip(group_rows, picked, strict=True):
                    out[(file_index, row)] = values
    return out
