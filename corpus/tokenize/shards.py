"""Token shards in llm.c's layout: the one routine that cuts documents into shards, and a validating
memory-mapped reader.

Header: 256 little-endian int32 — magic, version, token count, rest zero. Tokens follow as uint16
(magic 20240520, version 1), or uint32 for vocabularies over 65,536 (magic 20240801, version 7).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4
FORMATS = {20240520: (1, np.uint16), 20240801: (7, np.uint32)}


class ShardError(ValueError):
    """A shard is truncated, corrupt or does not match its manifest; the message names the file."""


def shard_format(vocab_size: int) -> tuple[int, int, type]:
    magic = 20240520 if vocab_size <= 65536 else 20240801
    version, dtype = FORMATS[magic]
    return magic, version, dtype


def encode_shard(tokens: np.ndarray, vocab_size: int) -> bytes:
    magic, version, dtype = shard_format(vocab_size)
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[:3] = (magic, version, len(tokens))
    return header.tobytes() + np.asarray(tokens, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()


class ShardCutter:
    """Cuts a stream of documents into shards, per split, in arrival order: a shard closes as soon as it holds at
    least `shard_tokens` tokens, and `finish` closes what is left. Shard n of a split is named
    `{split}_{partition:05d}_{n:04d}.bin` and handed to `write(name, bytes)`; each cut returns the shard's manifest
    entry (name, split, tokens, documents, sha256, and source_tokens when documents name a source).

    The Spark tokenizer (one cutter per partition) and trainer.data.write_shards_from_texts both cut with it, so
    small local data and real corpora are laid out alike.
    """

    def __init__(self, partition: int, shard_tokens: int, vocab_size: int, write: Callable[[str, bytes], None]):
        self.partition, self.shard_tokens, self.vocab_size, self.write = partition, shard_tokens, vocab_size, write
        self.dtype = shard_format(vocab_size)[2]
        self._open: dict[str, dict] = {}

    def add(self, split: str, tokens: Sequence[int] | np.ndarray, source: str | None = None) -> dict | None:
        """Append one document's tokens (separator included, as they go to disk); the shard entry if one closed."""
        st = self._open.setdefault(split, {"parts": [], "size": 0, "docs": 0, "sources": {}, "n": 0})
        arr = np.asarray(tokens, dtype=self.dtype)
        st["parts"].append(arr)
        st["size"] += len(arr)
        st["docs"] += 1
        if source is not None:
            st["sources"][source] = st["sources"].get(source, 0) + len(arr)
        return self._cut(split) if st["size"] >= self.shard_tokens else None

    def finish(self, split: str | None = None) -> list[dict]:
        """Close the partly filled shard of `split` (of every split, in name order, when None)."""
        splits = sorted(self._open) if split is None else [split]
        return [info for info in map(self._cut, splits) if info is not None]

    def _cut(self, split: str) -> dict | None:
        st = self._open.get(split)
        if not st or not st["parts"]:
            return None
        tokens = np.concatenate(st["parts"])
        name = f"{split}_{self.partition:05d}_{st['n']:04d}.bin"
        data = encode_shard(tokens, self.vocab_size)
        self.write(name, data)
        info = {"name": name, "split": split, "tokens": int(len(tokens)), "documents": st["docs"],
                "sha256": hashlib.sha256(data).hexdigest()}
        if st["sources"]:
            info["source_tokens"] = dict(sorted(st["sources"].items()))
        st.update(parts=[], size=0, docs=0, sources={}, n=st["n"] + 1)
        return info


def read_header(path: str | Path) -> tuple[int, int, int]:
    with open(path, "rb") as f:
        raw = f.read(HEADER_BYTES)
    if len(raw) < HEADER_BYTES:
        raise ShardError(f"{path}: truncated header ({len(raw)} of {HEADER_BYTES} bytes)")
    magic, version, count = (int(x) for x in np.frombuffer(raw, dtype="<i4", count=3))
    if magic not in FORMATS:
        raise ShardError(f"{path}: bad magic {magic} (expected one of {sorted(FORMATS)})")
    if FORMATS[magic][0] != version:
        raise ShardError(f"{path}: unsupported version {version} for magic {magic}")
    return magic, version, count


def open_shard(path: str | Path, expected_tokens: int | None = None, expected_sha256: str | None = None) -> np.ndarray:
    """Memory-map a shard's tokens after checking header, size and (optionally) checksum."""
    path = Path(path)
    if not path.exists():
        raise ShardError(f"{path}: shard file is missing")
    magic, _, count = read_header(path)
    dtype = np.dtype(FORMATS[magic][1]).newbyteorder("<")
    expected_size = HEADER_BYTES + count * dtype.itemsize
    size = path.stat().st_size
    if size != expected_size:
        raise ShardError(f"{path}: size {size} bytes, header promises {count} tokens ({expected_size} bytes)")
    if expected_tokens is not None and count != expected_tokens:
        raise ShardError(f"{path}: {count} tokens, manifest says {expected_tokens}")
    if expected_sha256 is not None and sha256_file(path) != expected_sha256:
        raise ShardError(f"{path}: sha256 does not match the manifest (corrupt or replaced)")
    return np.memmap(path, dtype=dtype, mode="r", offset=HEADER_BYTES, shape=(count,))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class ShardInfo:
    name: str
    split: str
    tokens: int
    sha256: str


class TokenDataset:
    """The shards of a `manifest.json`, per split, validated on open."""

    def __init__(self, manifest_path: str | Path, verify_checksums: bool = False):
        self.manifest_path = Path(manifest_path)
        if self.manifest_path.is_dir():
            self.manifest_path = self.manifest_path / "manifest.json"
        if not self.manifest_path.exists():
            raise ShardError(f"{self.manifest_path}: manifest not found")
        self.manifest = json.loads(self.manifest_path.read_text())
        self.root = self.manifest_path.parent
        self.verify = verify_checksums
        self.shards = [ShardInfo(s["name"], s["split"], s["tokens"], s["sha256"]) for s in self.manifest["shards"]]

    def split(self, name: str) -> list[ShardInfo]:
        return [s for s in self.shards if s.split == name]

    def open(self, shard: ShardInfo) -> np.ndarray:
        return open_shard(self.root / shard.name, shard.tokens, shard.sha256 if self.verify else None)

    def tokens(self, split: str) -> np.ndarray:
        """All tokens of a split, concatenated (for tests and small data; training streams shards)."""
        parts = [np.asarray(self.open(s)) for s in self.split(split)]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint16)


def manifest_base(shards: list[dict], tokenizer_path: str | Path, sp) -> dict:
    """The manifest fields every shard writer shares: format, tokenizer, separator, shard list, split totals."""
    from corpus.tokenize.tokenizer import BOS_ID, CHAT_TOKENS, EOS_ID, PAD_ID

    vocab_size = sp.vocab_size()
    magic, version, dtype = shard_format(vocab_size)
    return {
        "format": {"magic": magic, "version": version, "dtype": np.dtype(dtype).name, "header_int32": HEADER_INTS},
        "tokenizer": {"file": "tokenizer.model", "sha256": sha256_file(tokenizer_path), "vocab_size": vocab_size,
                      "bos_id": BOS_ID, "eos_id": EOS_ID, "pad_id": PAD_ID,
                      "chat_tokens": {t: sp.piece_to_id(t) for t in CHAT_TOKENS}},
        "document_separator": {"id": BOS_ID, "position": "before each document"},
        "shards": shards,
        "splits": {split: {"shards": sum(1 for s in shards if s["split"] == split),
                           "tokens": sum(s["tokens"] for s in shards if s["split"] == split),
                           "documents": sum(s["documents"] for s in shards if s["split"] == split)}
                   for split in ("train", "val")},
    }
