"""Benchmark near-dedup at several sizes on real-size text, in one run per size:

- `corpus dedup` (Spark local[2]; exact + MinHash LSH 14x8 + verification + connected components), with its
  connected-components rounds, largest LSH bucket and seconds per phase from RUN/stats/dedup.json;
- datasketch MinHash + MinHashLSH in one process (same 5-gram shingles, 112 permutations, 14 bands x 8 rows),
  clusters by union-find over query results, streaming the same Parquet files;
- optionally (`--datatrove`) datatrove's four MinHash stages in LocalPipelineExecutor, 2 workers.

Documents (mean ≈ 6 KB, like real Common Crawl documents): each is a random run of real paragraphs (AEB article
bodies, the real CC documents in shared/data/docs, WikiText-2, Shakespeare) until a drawn length of 3–9 KB, so
every document is unique at the 5-gram level except for shared paragraphs; 5 % of them are the bases of planted
clusters of 4 lightly edited copies (~1 % of words replaced). `--giant N` adds N copies of one real boilerplate
page that differ only in their digits (distinct exact hashes, identical shingles): one LSH bucket per band holds
all N, the skew a site template or cookie wall causes. Peak memory: the sum of resident memory over the process
tree (JVM + Python workers for ours), sampled every 0.2 s; the datasketch child's own peak (ru_maxrss).

    .venv/bin/python bench/dedup.py --docs 10000,100000
    .venv/bin/python bench/dedup.py --docs 20000 --giant 20000 --no-peer
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
DOCS_PER_FILE = 10_000


def paragraph_pool() -> list[str]:
    """Real paragraphs of ≥ 200 characters from every real English text at hand."""
    paras = []
    truth = json.loads((DATA / "html" / "aeb" / "ground-truth.json").read_text())
    texts = [v["articleBody"] for v in truth.values() if v.get("articleBody")]
    for path in sorted((DATA / "docs").glob("*.json*.gz")):
        with gzip.open(path, "rt") as f:
            texts += [json.loads(line)["text"] for line in f if line.strip()]
    for t in texts:
        paras += [p.strip() for p in t.split("\n") if len(p.strip()) >= 200]
    wiki = (DATA / "text" / "wikitext-2-raw-test.txt").read_text()
    paras += [p.strip() for p in wiki.split("\n") if len(p.strip()) >= 200 and not p.strip().startswith("=")]
    plays = (DATA / "text" / "tinyshakespeare.txt").read_text()
    paras += [plays[i : i + 600] for i in range(0, len(plays) - 600, 600)]
    return paras


def _edit(text: str, rnd: random.Random) -> str:
    words = text.split(" ")
    for _ in range(max(1, len(words) // 100)):
        words[rnd.randrange(len(words))] = rnd.choice(["new", "changed", "edited", "other", "more", "less"])
    return " ".join(words)


def iter_docs(n: int, giant: int, seed: int = 0):
    """Yield (id, text): n documents (5 % of them bases of planted clusters of 5), then `giant` boilerplate copies."""
    rnd = random.Random(seed)
    pool = paragraph_pool()
    n_clusters = n // 25  # 4 % bases + 16 % copies
    for i in range(n - 4 * n_clusters):
        target, parts, size = rnd.randint(3000, 9000), [], 0
        while size < target:
            p = pool[rnd.randrange(len(pool))]
            parts.append(p)
            size += len(p) + 1
        text = "\n".join(parts)
        yield f"u{i:08d}", text
        if i < n_clusters:
            for k in range(4):
                yield f"c{i:07d}-{k}", _edit(text, rnd)
    if giant:
        template = max((p for p in pool if len(p) < 2000), key=len)
        template = "\n".join([template] + pool[:4])  # ≈ 4 KB of real text
        for j in range(giant):
            yield f"g{j:08d}", f"Page {j} of {giant}, updated {j % 28 + 1}/{j % 12 + 1}.\n{template}\nRef {j * 7919}."


def write_docs(n: int, giant: int, folder: Path) -> tuple[int, int]:
    folder.mkdir(parents=True)
    schema = pa.schema([("id", pa.string()), ("text", pa.string())])
    ids, texts, part, count, chars = [], [], 0, 0, 0
    for doc_id, text in iter_docs(n, giant):
        ids.append(doc_id)
        texts.append(text)
        count, chars = count + 1, chars + len(text)
        if len(ids) == DOCS_PER_FILE:
            pq.write_table(pa.table([ids, texts], schema=schema), folder / f"part-{part:05d}.parquet")
            ids, texts, part = [], [], part + 1
    if ids:
        pq.write_table(pa.table([ids, texts], schema=schema), folder / f"part-{part:05d}.parquet")
    return count, chars


class TreeMemory:
    """Peak of the summed RSS of a process and its descendants, sampled in a thread."""

    def __init__(self, pid: int):
        import psutil

        self.proc, self.peak, self._stop = psutil.Process(pid), 0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                procs = [self.proc, *self.proc.children(recursive=True)]
                total = 0
                for p in procs:
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
                self.peak = max(self.peak, total)
            except psutil.Error:
                return
            time.sleep(0.2)

    def stop(self) -> int:
        self._stop.set()
        self.thread.join()
        return self.peak


def run_ours(in_dir: Path, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "corpus.cli", "dedup", "--input", str(in_dir), "--out",
                             str(out / "dedup"), "--master", "local[2]"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)
    mem = TreeMemory(proc.pid)
    _, err = proc.communicate()
    seconds = time.perf_counter() - t
    peak = mem.stop()
    if proc.returncode:
        raise SystemExit(err[-3000:])
    stats = json.loads((out / "stats" / "dedup.json").read_text())
    return {"seconds": seconds, "kept": stats["documents_kept"], "peak_bytes": peak, "cores": 2,
            "cc_rounds": stats.get("cc_rounds"), "largest_bucket": stats.get("largest_bucket"),
            "edges": stats["candidate_edges"], "timing": stats.get("timing"), "spark_wall": stats["wall_seconds"]}


DATASKETCH = """
import json, resource, sys, time
import pyarrow.parquet as pq
from datasketch import MinHash, MinHashLSH
from corpus.build.word_tokenizer import word_tokenize
from corpus.dedup.minhash import shingle_texts
files = sys.argv[1:]
t = time.perf_counter()
lsh = MinHashLSH(num_perm=112, params=(14, 8))
sketches, n, pairs = {}, 0, 0
for path in files:
    for batch in pq.ParquetFile(path).iter_batches(batch_size=1000, columns=["id", "text"]):
        for doc_id, text in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist()):
            n += 1
            shingles = shingle_texts(text, 5, word_tokenize)
            if not shingles:
                continue
            m = MinHash(num_perm=112, seed=1)
            m.update_batch([s.encode("utf-8") for s in shingles])
            sketches[doc_id] = m
            lsh.insert(doc_id, m)
parent = {k: k for k in sketches}
def find(x):
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x
for key, m in sketches.items():
    for other in lsh.query(m):
        pairs += 1
        a, b = find(key), find(other)
        if a != b:
            parent[max(a, b)] = min(a, b)
kept = len({find(k) for k in sketches}) + (n - len(sketches))
print(json.dumps({"seconds": time.perf_counter() - t, "kept": kept, "pairs": pairs,
                  "peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def run_datasketch(in_dir: Path, timeout: float) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    files = [str(p) for p in sorted(in_dir.glob("*.parquet"))]
    try:
        res = subprocess.run([sys.executable, "-c", DATASKETCH, *files], capture_output=True, text=True, env=env,
                             timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"seconds": None, "timeout": timeout}
    if res.returncode:
        raise SystemExit(res.stderr[-3000:])
    return {**json.loads(res.stdout.strip().splitlines()[-1]), "cores": 1}


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


def run_datatrove(in_dir: Path, work: Path) -> dict:
    res = subprocess.run([sys.executable, "-c", DATATROVE, str(in_dir), str(work)], capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(res.stderr[-3000:])
    return {**json.loads(res.stdout.strip().splitlines()[-1]), "cores": 2}


def _gib(b: int | None) -> str:
    return f"{b / 2**30:.2f}" if b else "-"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", default="10000,100000", help="comma-separated sizes")
    ap.add_argument("--giant", type=int, default=0, help="boilerplate copies sharing one bucket, added to each size")
    ap.add_argument("--no-peer", action="store_true", help="skip datasketch")
    ap.add_argument("--peer-timeout", type=float, default=3600.0)
    ap.add_argument("--datatrove", action="store_true")
    ap.add_argument("--json", help="append one JSON line per size here")
    args = ap.parse_args()
    results = []
    for n in (int(x) for x in args.docs.split(",")):
        tmp = Path(tempfile.mkdtemp(prefix="bench-dedup-"))
        try:
            t = time.perf_counter()
            count, chars = write_docs(n, args.giant, tmp / "docs")
            print(f"\n== {count} documents ({n} + {args.giant} boilerplate), {chars / 1e6:.1f} M characters, "
                  f"mean {chars / count / 1e3:.1f} K chars; written in {time.perf_counter() - t:.0f} s", flush=True)
            rows = [("corpus dedup (Spark local[2])", run_ours(tmp / "docs", tmp / "ours"))]
            if not args.no_peer:
                rows.append(("datasketch MinHashLSH + union-find (1 process)",
                             run_datasketch(tmp / "docs", args.peer_timeout)))
            if args.datatrove:
                rows.append(("datatrove 4 MinHash stages (2 workers)", run_datatrove(tmp / "docs", tmp / "dt")))
            print(f"{'tool':48s} {'seconds':>8s} {'docs/s':>7s} {'/core':>6s} {'peak GiB':>8s} {'kept':>7s}")
            for name, r in rows:
                if r.get("seconds") is None:
                    print(f"{name:48s} timed out after {r['timeout']:.0f} s")
                    continue
                rate = count / r["seconds"]
                print(f"{name:48s} {r['seconds']:8.1f} {rate:7.0f} {rate / r['cores']:6.0f} "
                      f"{_gib(r.get('peak_bytes')):>8s} {r['kept']:7d}")
            ours = rows[0][1]
            print(f"ours: connected-components rounds {ours['cc_rounds']}, largest bucket {ours['largest_bucket']}, "
                  f"candidate edges {ours['edges']}; phases {json.dumps(ours['timing'])}; step wall "
                  f"{ours['spark_wall']} s (the rest is JVM start-up and session)")
            if len(rows) > 1 and rows[1][1].get("seconds"):
                peer = rows[1][1]
                ratio = (count / ours["seconds"] / 2) / (count / peer["seconds"])
                print(f"per-core docs/s vs datasketch: {ratio:.2f}x (datasketch query pairs {peer['pairs']})")
            results.append({"docs": count, "chars": chars, **{name: r for name, r in rows}})
            if args.json:
                with open(args.json, "a") as f:
                    f.write(json.dumps(results[-1]) + "\n")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if len(results) > 1:
        for a, b in zip(results, results[1:], strict=False):
            ka = "corpus dedup (Spark local[2])"
            growth = b[ka]["seconds"] / a[ka]["seconds"]
            print(f"growth {a['docs']} → {b['docs']} documents ({b['docs'] / a['docs']:.0f}x): ours {growth:.2f}x time")


if __name__ == "__main__":
    main()
