"""Benchmark encoding throughput on the same documents, in one run:

- `corpus tokenize` with a given tokenizer (Spark local[2]: counting pass + encode + shard writing);
- plain sentencepiece `encode` in one process (the same model);
- HF `tokenizers` BPE (trained here on the same sample with the same vocabulary size), `encode_batch`
  with its Rust thread pool.

Documents: real article bodies (AEB ground truth), real web documents and Shakespeare, repeated.

    .venv/bin/python bench/tokenize_throughput.py --copies 40

(Not named bench/tokenize.py: that would shadow the standard library's `tokenize` for every script in bench/.)
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
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
    args = ap.parse_args()
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    from corpus.tokenize.tokenizer import load_tokenizer, train_tokenizer

    tmp = Path(tempfile.mkdtemp(prefix="bench-tok-"))
    base = base_texts()
    docs = [{"id": f"d{c:04d}-{i:05d}", "text": t} for c in range(args.copies) for i, t in enumerate(base)]
    (tmp / "docs").mkdir()
    pq.write_table(pa.Table.from_pylist(docs), tmp / "docs" / "part-0.parquet")
    sample = tmp / "sample.txt"
    sample.write_text("\n".join(line for t in base for line in t.split("\n") if line.strip()) + "\n")
    model = train_tokenizer(sample, tmp / "spm", args.vocab_size)
    texts = [d["text"] for d in docs]
    chars = sum(len(t) for t in texts)

    sp = load_tokenizer(model)
    t = time.perf_counter()
    ids = sp.encode(texts)
    sp_s = time.perf_counter() - t
    tokens = sum(len(x) for x in ids)

    hf = Tokenizer(models.BPE(byte_fallback=True))
    hf.pre_tokenizer = pre_tokenizers.Metaspace()
    hf.train([str(sample)], trainers.BpeTrainer(vocab_size=args.vocab_size, show_progress=False))
    t = time.perf_counter()
    hf_tokens = sum(len(e.ids) for e in hf.encode_batch(texts))
    hf_s = time.perf_counter() - t

    t = time.perf_counter()
    res = subprocess.run([str(REPO / ".venv" / "bin" / "corpus"), "tokenize", "--input", str(tmp / "docs"),
                          "--out", str(tmp / "tokens"), "--tokenizer", str(model), "--master", "local[2]",
                          "--set", "tokenize.partitions=2"], capture_output=True, text=True, cwd=REPO)
    ours_s = time.perf_counter() - t
    if res.returncode:
        raise SystemExit(res.stderr[-3000:])
    manifest = json.loads((tmp / "tokens" / "manifest.json").read_text())
    ours_tokens = manifest["splits"]["train"]["tokens"] + manifest["splits"]["val"]["tokens"]

    cores = os.cpu_count()
    print(f"input: {len(docs)} documents, {chars / 1e6:.1f} M characters; vocabulary {args.vocab_size}; {cores} cores")
    print(f"{'method':58s} {'seconds':>8s} {'tokens/s':>10s} {'per core':>10s}")
    rows = [("corpus tokenize, Spark local[2], incl. start-up + shards", ours_s, ours_tokens, 2),
            ("plain sentencepiece encode, 1 process", sp_s, tokens, 1),
            (f"HF tokenizers BPE encode_batch ({cores} threads)", hf_s, hf_tokens, cores)]
    for name, s, n, c in rows:
        print(f"{name:58s} {s:8.1f} {n / s:10.0f} {n / s / c:10.0f}")
    print(f"our per-core rate vs plain sentencepiece: {(ours_tokens / ours_s / 2) / (tokens / sp_s):.2f}x")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
