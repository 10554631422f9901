"""Benchmark encoding throughput on the same documents, in one run:

- `corpus tokenize` with a given tokenizer (Spark local[2]: read + shuffle + encode + shard writing), timed
  twice: the whole command (JVM and session start-up included) and the step alone (RUN/stats/tokenize.json's
  `wall_seconds`: everything after the session exists), so start-up is reported separately;
- plain sentencepiece `encode` in one process (the same model), in batches of 1,000 documents;
- HF `tokenizers` BPE (trained here on the same sample with the same vocabulary size), `encode_batch`
  with its Rust thread pool.

Documents: real article bodies (AEB ground truth), real web documents and Shakespeare, repeated.

    .venv/bin/python bench/tokenize_throughput.py --copies 40
    .venv/bin/python bench/tokenize_throughput.py --copies 200 --no-hf --repeats 2   # ≈ 100 M tokens

(Not named bench/tokenize.py: that would shadow the standard library's `tokenize` for every script in bench/.)
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def base_texts() -> list[str]:
    texts = [v["articleBody"] for v in json.loads((DATA / "html" / "aeb" / "ground-truth.json").read_text()).values()
             if v.get("articleBody")]
    for path in sorted((DATA / "docs").glob("*.jsonl.gz")):
        with gzip.open(path, "rt") as f:
            texts += [json.loads(line)["text"] for line in f if line.strip()]
    plays = (DATA / "text" / "tinyshakespeare.txt").read_text()
    texts += [plays[i : i + 5000] for i in range(0, len(plays), 5000)]
    return texts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--copies", type=int, default=40)
    ap.add_argument("--vocab-size", type=int, default=32000)
    ap.add_argument("--no-hf", action="store_true", help="skip the HF tokenizers row")
    ap.add_argument("--repeats", type=int, default=1, help="runs of ours and of plain sentencepiece (spread)")
    ap.add_argument("--partitions", type=int, default=2)
    args = ap.parse_args()
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    from corpus.tokenize.tokenizer import load_tokenizer, train_tokenizer

    tmp = Path(tempfile.mkdtemp(prefix="bench-tok-"))
    base = base_texts()
    (tmp / "docs").mkdir()
    schema = pa.schema([("id", pa.string()), ("text", pa.string())])
    n_docs, chars = 0, 0
    with pq.ParquetWriter(tmp / "docs" / "part-0.parquet", schema) as writer:
        for c in range(args.copies):  # one row group per copy: the file never sits in memory whole
            writer.write_table(pa.table([[f"d{c:04d}-{i:05d}" for i in range(len(base))], base], schema=schema))
            n_docs, chars = n_docs + len(base), chars + sum(len(t) for t in base)
    sample = tmp / "sample.txt"
    sample.write_text("\n".join(line for t in base for line in t.split("\n") if line.strip()) + "\n")
    model = train_tokenizer(sample, tmp / "spm", args.vocab_size)
    cores = os.cpu_count()
    print(f"input: {n_docs} documents, {chars / 1e6:.1f} M characters; vocabulary {args.vocab_size}; {cores} cores",
          flush=True)

    def batches():
        for batch in pq.ParquetFile(tmp / "docs" / "part-0.parquet").iter_batches(batch_size=1000, columns=["text"]):
            yield batch.column(0).to_pylist()

    sp = load_tokenizer(model)
    rows = []
    for _ in range(args.repeats):
        # num_threads=1: sentencepiece's batch encode otherwise starts one thread per hardware thread (-1 = all),
        # which made the earlier "1 process" row a 2-core figure on this 2-core machine.
        t = time.perf_counter()
        tokens = sum(len(x) for texts in batches() for x in sp.encode(texts, num_threads=1))
        rows.append(("plain sentencepiece encode, 1 thread (incl. Parquet read)", time.perf_counter() - t, tokens, 1))
        t = time.perf_counter()
        tokens = sum(len(x) for texts in batches() for x in sp.encode(texts))
        rows.append((f"plain sentencepiece encode, default threads ({cores})", time.perf_counter() - t, tokens, cores))

    if not args.no_hf:
        hf = Tokenizer(models.BPE(byte_fallback=True))
        hf.pre_tokenizer = pre_tokenizers.Metaspace()
        hf.train([str(sample)], trainers.BpeTrainer(vocab_size=args.vocab_size, show_progress=False))
        t = time.perf_counter()
        hf_tokens = sum(len(e.ids) for texts in batches() for e in hf.encode_batch(texts))
        rows.append((f"HF tokenizers BPE encode_batch ({cores} threads)", time.perf_counter() - t, hf_tokens, cores))

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for r in range(args.repeats):
        out = tmp / f"run{r}"
        t = time.perf_counter()
        res = subprocess.run([sys.executable, "-m", "corpus.cli", "tokenize", "--input", str(tmp / "docs"),
                              "--out", str(out / "tokens"), "--tokenizer", str(model), "--master", "local[2]",
                              "--set", f"tokenize.partitions={args.partitions}"],
                             capture_output=True, text=True, cwd=REPO, env=env)
        ours_s = time.perf_counter() - t
        if res.returncode:
            raise SystemExit(res.stderr[-3000:])
        manifest = json.loads((out / "tokens" / "manifest.json").read_text())
        ours_tokens = manifest["splits"]["train"]["tokens"] + manifest["splits"]["val"]["tokens"]
        step_s = json.loads((out / "stats" / "tokenize.json").read_text())["wall_seconds"]
        rows.append(("corpus tokenize, Spark local[2], whole command", ours_s, ours_tokens, 2))
        rows.append(("corpus tokenize, Spark local[2], step only (start-up excluded)", step_s, ours_tokens, 2))
        print(f"run {r}: start-up and session {ours_s - step_s:.1f} s of {ours_s:.1f} s", flush=True)
        shutil.rmtree(out, ignore_errors=True)

    print(f"{'method':62s} {'seconds':>8s} {'tokens':>12s} {'tokens/s':>10s} {'per core':>10s}")
    for name, s, n, c in rows:
        print(f"{name:62s} {s:8.1f} {n:12d} {n / s:10.0f} {n / s / c:10.0f}")
    best_sp = max(n / s for name, s, n, _ in rows if name.startswith("plain sentencepiece encode, 1 thread"))
    for name, s, n, c in rows:
        if "step only" in name:
            print(f"step-only per-core rate vs plain sentencepiece on 1 thread: {(n / s / c) / best_sp:.2f}x")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
