"""Data loader alone: our ShardStream (deterministic order, resumable position, bounds check) against nanoGPT's
`get_batch` (a fresh np.memmap per batch, torch.randint offsets, torch.stack), same shards, same (B, T), one run.

    .venv/bin/python bench/loader.py --tokens 50000000 --seconds 3

Tokens are random ids written as real llm.c shards with a manifest (the format `corpus tokenize` writes); the
tokenizer is a small sentencepiece model trained on tinyshakespeare, needed only for the manifest.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from corpus.tokenize.shards import TokenDataset, encode_shard, manifest_base, sha256_file  # noqa: E402
from corpus.tokenize.tokenizer import load_tokenizer, train_tokenizer  # noqa: E402
from trainer.data import ShardStream  # noqa: E402

SHAKESPEARE = REPO.parent / "shared" / "data" / "text" / "tinyshakespeare.txt"
SHAPES = [(8, 128), (16, 256), (12, 1024)]  # tiny, small, gpt2-124m micro-batches


def make_dataset(root: Path, tokens: int, shards: int = 4) -> Path:
    tok = train_tokenizer(SHAKESPEARE, root / "tok", 1024)
    sp = load_tokenizer(tok)
    (root / "tokenizer.model").write_bytes(tok.read_bytes())
    rng = np.random.default_rng(0)
    entries = []
    for i in range(shards):
        ids = rng.integers(0, sp.vocab_size(), tokens // shards, dtype=np.uint16)
        name = f"train_{i:05d}.bin"
        (root / name).write_bytes(encode_shard(ids, sp.vocab_size()))
        entries.append({"name": name, "split": "train", "tokens": len(ids), "documents": 1,
                        "sha256": sha256_file(root / name)})
    manifest = manifest_base(entries, root / "tokenizer.model", sp)
    import json

    (root / "manifest.json").write_text(json.dumps(manifest))
    return root / "manifest.json"


def rate(fn, tokens_per_call: int, seconds: float) -> float:
    fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return n * tokens_per_call / (time.perf_counter() - t0)


def nanogpt_get_batch(path: Path, B: int, T: int):
    # nanoGPT train.py: "recreate np.memmap every batch to avoid a memory leak"
    def get_batch():
        data = np.memmap(path, dtype=np.uint16, mode="r", offset=1024)
        ix = torch.randint(len(data) - T, (B,))
        x = torch.stack([torch.from_numpy(data[i:i + T].astype(np.int64)) for i in ix])
        y = torch.stack([torch.from_numpy(data[i + 1:i + 1 + T].astype(np.int64)) for i in ix])
        return x, y
    return get_batch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=50_000_000)
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        manifest = make_dataset(Path(tmp), args.tokens)
        ds = TokenDataset(manifest)
        print(f"{'B×T':>10} {'ours tok/s':>14} {'nanoGPT tok/s':>14} {'ratio':>6}")
        for B, T in SHAPES:
            stream = ShardStream(ds, "train", block_size=T, batch_size=B, seed=1, verify_checksums=False,
                                 vocab_size=1024)
            ours = rate(stream.next_batch, B * T, args.seconds)
            peer = rate(nanogpt_get_batch(Path(tmp) / "train_00000.bin", B, T), B * T, args.seconds)
            print(f"{f'{B}×{T}':>10} {ours:>14,.0f} {peer:>14,.0f} {ours / peer:>6.2f}")


if __name__ == "__main__":
    main()
