"""Batches streamed from the token shards of a `manifest.json`, through memory maps.

A split is read as windows of `block_size + 1` tokens (window i of a shard starts at token i·block_size).
The order is a pure function of (seed, epoch): shards are permuted per epoch and windows within each shard
are permuted per (epoch, shard). A global cursor walks that order; each optimizer micro-step takes the
next `world_size × batch_size` windows and rank r keeps the r-th slice of `batch_size`. The cursor
(epoch, shard position, window position) is the whole state, so a resumed run sees exactly the batches it
would have seen, and the global stream does not depend on how it is split over ranks.

Windows cross document boundaries (documents are separated by the manifest's BOS id, as in GPT-2/nanoGPT
pretraining); only the `block_size + 1` tokens of a window are ever read from a shard.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from corpus.tokenize.shards import (
    ShardCutter,
    ShardError,
    ShardInfo,
    TokenDataset,
    manifest_base,
    open_shard,
    sha256_file,
)


def check_tokenizer(ds: TokenDataset) -> Path:
    """The manifest's tokenizer file, after checking it exists and matches the manifest's sha256."""
    tok = ds.manifest.get("tokenizer") or {}
    if "file" not in tok:
        raise ShardError(f"{ds.manifest_path}: manifest names no tokenizer file")
    path = ds.root / tok["file"]
    if not path.exists():
        raise ShardError(f"{path}: tokenizer named in the manifest is missing")
    if tok.get("sha256") and sha256_file(path) != tok["sha256"]:
        raise ShardError(f"{path}: tokenizer sha256 does not match the manifest {ds.manifest_path} "
                         "(the shards were encoded with a different tokenizer)")
    return path


class ShardStream:
    """Deterministic, resumable, rank-sharded (x, y) batches from one split of a TokenDataset."""

    def __init__(self, ds: TokenDataset, split: str, block_size: int, batch_size: int, *, seed: int = 0,
                 shuffle: bool = True, rank: int = 0, world_size: int = 1, verify_checksums: bool = True,
                 vocab_size: int | None = None):
        self.ds, self.split, self.T, self.B = ds, split, block_size, batch_size
        self._span = np.arange(block_size + 1)  # offsets of one window's T+1 tokens
        self.seed, self.shuffle, self.rank, self.world = seed, shuffle, rank, world_size
        self.verify, self.vocab_size = verify_checksums, vocab_size
        self.shards: list[ShardInfo] = ds.split(split)
        if not self.shards:
            raise ShardError(f"{ds.manifest_path}: no '{split}' shards in the manifest")
        self.n_windows = [max(0, (s.tokens - 1) // block_size) for s in self.shards]
        if sum(self.n_windows) == 0:
            raise ShardError(f"{ds.manifest_path}: no '{split}' shard holds more than block_size={block_size} tokens")
        # Check every shard's header and size (and sha256 when asked) now, so that a bad shard stops the run
        # at start-up rather than hours in, when the stream first reaches it.
        for info in self.shards:
            open_shard(ds.root / info.name, info.tokens, info.sha256 if verify_checksums else None)
        self._maps: dict[int, np.ndarray] = {}  # shard -> its windows view (a few kept open)
        self._in_vocab: set[int] = set()  # shards whose largest token id was checked against vocab_size
        self.reset()

    # -- order ------------------------------------------------------------------------------------------
    def _rng(self, *keys: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, *keys])

    def _shard_order(self) -> np.ndarray:
        n = len(self.shards)
        return self._rng(self.epoch).permutation(n) if self.shuffle else np.arange(n)

    def _window_order(self, shard: int) -> np.ndarray:
        n = self.n_windows[shard]
        return self._rng(self.epoch, shard + 1).permutation(n) if self.shuffle else np.arange(n)

    def reset(self) -> None:
        self.load_state_dict({"epoch": 0, "shard_pos": 0, "window_pos": 0})

    def state_dict(self) -> dict:
        return {"split": self.split, "epoch": self.epoch, "shard_pos": self.shard_pos, "window_pos": self.window_pos,
                "seed": self.seed, "block_size": self.T, "windows_per_step": self.B * self.world}

    def load_state_dict(self, state: dict) -> None:
        for key, mine in (("seed", self.seed), ("block_size", self.T)):
            if key in state and state[key] != mine:
                raise ValueError(f"data position was saved with {key}={state[key]}, this run uses {mine}; "
                                 "resuming would not reproduce the batch order")
        self.epoch, self.shard_pos, self.window_pos = state["epoch"], state["shard_pos"], state["window_pos"]
        self._order = self._shard_order()
        self._windows: tuple[int, np.ndarray] | None = None

    def _take(self, n: int) -> list[tuple[int, np.ndarray]]:
        """Advance the global cursor by n windows; return them as (shard index, window indices) runs, in order.

        The same windows, in the same order, as n single steps: whole runs are sliced out of a shard's order at
        once, which keeps the loader far faster than the model (see bench/loader.py).
        """
        runs: list[tuple[int, np.ndarray]] = []
        while n > 0:
            if self.shard_pos >= len(self.shards):
                self.epoch, self.shard_pos, self.window_pos = self.epoch + 1, 0, 0
                self._order = self._shard_order()
            shard = int(self._order[self.shard_pos])
            left = self.n_windows[shard] - self.window_pos
            if left <= 0:
                self.shard_pos, self.window_pos = self.shard_pos + 1, 0
                continue
            if self._windows is None or self._windows[0] != shard:
                self._windows = (shard, self._window_order(shard))
            k = min(n, left)
            runs.append((shard, self._windows[1][self.window_pos:self.window_pos + k]))
            self.window_pos += k
            n -= k
        return runs

    # -- reading ----------------------------------------------------------------------------------------
    def _windows_of(self, shard: int) -> np.ndarray:
        """The shard's windows as an (n_windows, T+1) strided view of its memory map: no tokens are read here.

        Window w is tokens [w·T, w·T + T + 1): consecutive windows share one token, which becomes the next
        window's first input. Taking rows of this view copies each window as one run of memory.
        """
        if shard not in self._maps:
            info = self.shards[shard]
            path = self.ds.root / info.name
            # checksum already verified in __init__; a plain ndarray view skips np.memmap's per-index bookkeeping
            tokens = np.asarray(open_shard(path, info.tokens))
            if self.vocab_size is not None and shard not in self._in_vocab:
                # One streaming pass per shard (cheaper than the checksum pass) instead of a max per batch.
                top = int(tokens.max()) if len(tokens) else 0
                if top >= self.vocab_size:
                    raise ShardError(f"{path}: token id {top} is outside the model's vocabulary of {self.vocab_size}")
                self._in_vocab.add(shard)
            if len(self._maps) >= 4:  # keep a few maps open; shards are visited one after another
                self._maps.pop(next(iter(self._maps)))
            step = tokens.strides[0]
            self._maps[shard] = np.lib.stride_tricks.as_strided(
                tokens, shape=(self.n_windows[shard], self.T + 1), strides=(self.T * step, step), writeable=False)
        return self._maps[shard]

    def next_batch(self, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        runs = self._take(self.B * self.world)
        # This rank's rows are windows [rank·B, (rank+1)·B) of the step's global run of B·world windows.
        lo, hi, seen = self.rank * self.B, (self.rank + 1) * self.B, 0
        parts = []
        for shard, windows in runs:
            a, b = max(lo - seen, 0), min(hi - seen, len(windows))
            seen += len(windows)
            if a < b:
                parts.append(self._windows_of(shard)[windows[a:b]])  # (k, T+1) copied out of the map
        rows = parts[0] if len(parts) == 1 else np.concatenate(parts)
        # Widening each shifted view makes the contiguous int64 inputs and targets in one pass each.
        x, y = torch.from_numpy(rows[:, :-1].astype(np.int64)), torch.from_numpy(rows[:, 1:].astype(np.int64))
        if (device.type if isinstance(device, torch.device) else str(device).split(":")[0]) == "cuda":
            return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
        return x, y


def write_shards_from_texts(texts: list[str], out_dir: str | Path, tokenizer_path: str | Path,
                            shard_tokens: int = 1 << 20, val_fraction: float = 0.1) -> Path:
    """Encode texts into shards + manifest.json in the layout `corpus tokenize` writes; for small local data and
    tests (the Spark job is the way for real corpora). A document goes to val when a hash of its index and
    text falls under val_fraction; returns the manifest path."""
    from corpus.tokenize.tokenizer import BOS_ID, load_tokenizer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = out / "tokenizer.model"
    if Path(tokenizer_path).resolve() != model.resolve():
        model.write_bytes(Path(tokenizer_path).read_bytes())
    sp = load_tokenizer(model)
    vocab = sp.vocab_size()
    splits: dict[str, list[np.ndarray]] = {"train": [], "val": []}
    for i, (text, ids) in enumerate(zip(texts, sp.encode(list(texts)), strict=True)):
        h = int.from_bytes(hashlib.sha256(f"{i}\0{text}".encode()).digest()[:8], "big") / 2**64
        splits["val" if h < val_fraction else "train"].append(np.asarray([BOS_ID, *ids], dtype=np.int64))
    cutter = ShardCutter(0, shard_tokens, vocab, lambda name, data: (out / name).write_bytes(data))
    shards = []
    for split, docs in splits.items():
        for doc in docs:
            info = cutter.add(split, doc)
            if info:
                shards.append(info)
        shards += cutter.finish(split)
    manifest = {
        **manifest_base(shards, model, sp),
        "source_runs": ["write_shards_from_texts"],
        "val_fraction": val_fraction,
        "shard_tokens": shard_tokens,
    }
    path = out / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2))
    return path
