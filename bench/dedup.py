"""Benchmark near-dedup on the same >= 50,000 documents, in one run:

- `corpus dedup` (Spark local[2]; exact + MinHash LSH 14x8 + verification + connected components);
- datasketch MinHash + MinHashLSH in one process (same 5-gram shingles, 112 permutations, 14 bands x 8 rows),
  clusters by union-find over query results;
- datatrove's four MinHash stages (signature, buckets, cluster, filter) in LocalPipelineExecutor, 2 workers.

Documents: deterministic Faker prose (unique) plus clusters of lightly edited copies.

    .venv/bin/python bench/dedup.py --docs 50000
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]


def make_docs(n: int, seed: int = 0) -> list[dict]:
    from faker import Faker

    fk = Faker("en_US")
    fk.seed_instance(seed)
    rnd = random.Random(seed)
    n_clusters = n // 20  # 5 % of documents are bases of clusters of 4 extra copies
    docs, bases = [], []
    for i in range(n - 4 * n_clusters):
        text = "\n".join(fk.paragraph(nb_sentences=rnd.randint(4, 9)) for _ in range(rnd.randint(2, 5)))
        docs.append({"id": f"u{i:07d}", "text": text})
        if len(bases) < n_clusters:
            bases.append(text)
    for c, base in enumerate(bases):
        for k in range(4):
            words = base.split(" ")
            for _ in range(max(1, len(words) // 100)):
                words[rnd.randrange(len(words))] = fk.word()
            docs.append({"id": f"c{c:06d}-{k}", "text": " ".join(words)})
    return docs


def run_ours(in_dir: Path, out: Path) -> tuple[float, int]:
    t = time.perf_counter()
    res = subprocess.run([str(REPO / ".venv" / "bin" / "corpus"), "dedup", "--input", str(in_dir), "--out",
                          str(out / "dedup"), "--master", "local[2]"], capture_output=True, text=True, cwd=REPO)
    seconds = time.perf_counter() - t
    if res.returncode:
        raise SystemExit(res.stderr[-3000:])
    return seconds, json.loads((out / "stats" / "dedup.json").read_text())["documents_kept"]


def run_datasketch(docs: list[dict]) -> tuple[float, int]:
    from datasketch import MinHash, MinHashLSH

    from corpus.build.word_tokenizer import word_tokenize
    from corpus.dedup.minhash import shingle_texts

    t = time.perf_counter()
    lsh = MinHashLSH(num_perm=112, params=(14, 8))
    sketches = {}
    for d in docs:
        shingles = shingle_texts(d["text"], 5, word_tokenize)
        if not shingles:
            continue
        m = MinHash(num_perm=112, seed=1)
        m.update_batch([s.encode("utf-8") for s in shingles])
        sketches[d["id"]] = m
        lsh.insert(d["id"], m)
    parent = {k: k for k in sketches}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for key, m in sketches.items():
        for other in lsh.query(m):
            a, b = find(key), find(other)
            if a != b:
                parent[max(a, b)] = min(a, b)
    kept = len({find(k) for k in sketches}) + (len(docs) - len(sketches))
    return time.perf_counter() - t, kept


DATATROVE = """
import glob, time, json, sys
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup import MinhashDedupSignature, MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter
from datatrove.pipeline.dedup.minhash import MinhashConfig
from datatrove.pipeline.readers import ParquetReader
from datatrove.pipeline.writers import ParquetWriter
src, work = sys.argv[1], sys.argv[2]
config = MinhashConfig()
t = time.perf_counter()
def ex(pipeline, tasks, workers=2):
    LocalPipelineExecutor(pipeline, tasks=tasks, workers=workers, logging_dir=f"{work}/logs/{time.time()}",
                          start_method="fork").run()
ex([ParquetReader(src), MinhashDedupSignature(f"{work}/sigs", config=config)], 2)
ex([MinhashDedupBuckets(f"{work}/sigs", f"{work}/buckets", config=config)], config.num_buckets)
ex([MinhashDedupCluster(f"{work}/buckets", f"{work}/remove", config=config)], 1, 1)
ex([ParquetReader(src), MinhashDedupFilter(f"{work}/remove"), ParquetWriter(f"{work}/out")], 2)
seconds = time.perf_counter() - t
import pyarrow.parquet as pq
kept = sum(pq.read_metadata(f).num_rows for f in glob.glob(f"{work}/out/*.parquet"))
print(json.dumps({"seconds": seconds, "kept": kept}))
"""


def run_datatrove(in_dir: Path, work: Path) -> tuple[float, int]:
    res = subprocess.run([sys.executable, "-c", DATATROVE, str(in_dir), str(work)], capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(res.stderr[-3000:])
    out = json.loads(res.stdout.strip().splitlines()[-1])
    return out["seconds"], out["kept"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=50_000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-dedup-"))
    docs = make_docs(args.docs)
    in_dir = tmp / "docs"
    in_dir.mkdir()
    half = len(docs) // 2
    for i, part in enumerate((docs[:half], docs[half:])):  # two files: datatrove reads with 2 tasks
        pq.write_table(pa.Table.from_pylist(part), in_dir / f"part-{i}.parquet")
    mb = sum(len(d["text"]) for d in docs) / 1e6
    print(f"input: {len(docs)} documents, {mb:.1f} M characters, {args.docs // 20} planted clusters of 5")
    rows = [("corpus dedup (Spark local[2])", *run_ours(in_dir, tmp / "ours")),
            ("datasketch MinHashLSH (1 process)", *run_datasketch(docs)),
            ("datatrove 4 MinHash stages (2 workers)", *run_datatrove(in_dir, tmp / "datatrove"))]
    print(f"{'tool':42s} {'seconds':>8s} {'docs/s':>8s} {'kept':>7s}")
    for name, s, kept in rows:
        print(f"{name:42s} {s:8.1f} {len(docs) / s:8.0f} {kept:7d}")
    print(f"speed-up: {rows[1][1] / rows[0][1]:.2f}x vs datasketch, {rows[2][1] / rows[0][1]:.2f}x vs datatrove")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
