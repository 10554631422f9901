"""Hostile variants of real archive bytes for fuzzing the readers: flipped bytes, cuts, inserted junk, lying
Content-Lengths and giant header lines, each seeded and described, plus the record boundaries of a WARC
(a cut exactly there leaves a valid, shorter file that no reader can tell from the original)."""

from __future__ import annotations

import gzip
import random
import re
import zlib
from dataclasses import dataclass

KINDS = ("flip", "cut", "junk", "lying_length", "long_line")
_CONTENT_LENGTH = re.compile(rb"Content-Length: *(\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class Mutant:
    data: bytes
    kind: str
    detail: str
    valid_prefix: bool = False  # a cut at a record boundary: a valid, shorter file


def gzip_members(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each gzip member of a file."""
    out, pos = [], 0
    while pos < len(data):
        d = zlib.decompressobj(31)
        d.decompress(data[pos:])
        end = len(data) - len(d.unused_data)
        out.append((pos, end))
        pos = end
    return out


def record_boundaries(data: bytes) -> set[int]:
    """Byte offsets where a record (or gzip member) starts, plus the end: cuts there leave valid files."""
    if data[:2] == b"\x1f\x8b":
        return {start for start, _ in gzip_members(data)} | {len(data)}
    return {m.start() + 4 for m in re.finditer(rb"\r\n\r\nWARC/", data)} | {0, len(data)}


def mutate(data: bytes, rng: random.Random, kind: str | None = None) -> Mutant:
    """One seeded mutation of `data` (a WARC file's bytes, gzipped or not)."""
    kind = kind or rng.choice(KINDS)
    if kind == "flip":
        out = bytearray(data)
        spots = sorted(rng.randrange(len(data)) for _ in range(rng.randint(1, 3)))
        for i in spots:
            out[i] ^= rng.randint(1, 255)
        return Mutant(bytes(out), kind, f"bytes {spots} flipped")
    if kind == "cut":
        at = rng.randrange(len(data))
        return Mutant(data[:at], kind, f"cut at {at} of {len(data)}", at in record_boundaries(data))
    if kind == "junk":
        at = rng.randrange(len(data) + 1)
        junk = rng.randbytes(rng.randint(1, 200))
        return Mutant(data[:at] + junk + data[at:], kind, f"{len(junk)} random bytes inserted at {at}")
    plain = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    if kind == "lying_length":
        matches = list(_CONTENT_LENGTH.finditer(plain))
        m = rng.choice(matches)
        true = int(m.group(1))
        lie = rng.choice([0, max(0, true - rng.randint(1, 64)), true + rng.randint(1, 64), true * 3 + 1000,
                          10**12])
        plain = plain[:m.start(1)] + str(lie).encode() + plain[m.end(1):]
        detail = f"Content-Length {true} → {lie} at {m.start(1)}"
    elif kind == "long_line":
        at = plain.find(b"\r\n", rng.randrange(len(plain)))
        at = at if at >= 0 else len(plain)
        plain = plain[:at] + b"X" * rng.choice([70_000, 2_000_000]) + plain[at:]
        detail = f"a long run of X at {at}"
    else:
        raise ValueError(f"unknown mutation {kind!r}, expected one of {KINDS}")
    # Re-pack as the original was: gzipped files become one whole-file member (also a real-world layout).
    return Mutant(gzip.compress(plain, mtime=0) if data[:2] == b"\x1f\x8b" else plain, kind, detail)


# Outcomes that say something was wrong with the file (a loss is then not silent).
DAMAGE = ("content_length_mismatch", "bad_record", "truncated_record")


@dataclass
class FuzzReport:
    tried: int = 0
    valid_prefixes: int = 0  # cuts at a record boundary: valid, shorter files
    damaged: int = 0  # inputs whose outcomes include a damage reason
    silent: list[str] | None = None  # inputs that lost records with no damage reason counted

    def as_dict(self) -> dict:
        return {"tried": self.tried, "valid_prefixes": self.valid_prefixes, "damaged": self.damaged,
                "silent": len(self.silent or [])}


def _records(stats: dict) -> int:
    return sum(stats["records"].values())


def fuzz(pipeline, seeds: list[str], folder, count: int, seed: int = 0) -> FuzzReport:
    """Run `pipeline.process_file` (the per-file function of the build) on `count` mutants of the seed files,
    written under `folder`. A mutant is silent when it gives fewer records (pages and counted skips of any
    kind) than its original and no damage reason; cuts at record boundaries are valid files and not judged.
    Any exception escapes to the caller: there must be none."""
    from pathlib import Path

    from corpus.io.readers import FILE_ENDED_EARLY

    rng = random.Random(seed)
    originals = {s: (Path(s).read_bytes(), _records(pipeline.process_file(s).stats)) for s in seeds}
    report = FuzzReport(silent=[])
    for i in range(count):
        src = seeds[i % len(seeds)]
        data, records = originals[src]
        mutant = mutate(data, rng)
        path = Path(folder) / f"m{i:05d}-{Path(src).name}"
        path.write_bytes(mutant.data)
        stats = pipeline.process_file(str(path)).stats
        path.unlink()
        report.tried += 1
        read = stats["stages"]["read"]
        assert read["in"] == stats["records"].get("page", 0) + stats["records"].get("unusable", 0), (src, mutant)
        reasons = set(read["removed"])
        if reasons & set(FILE_ENDED_EARLY + DAMAGE):
            report.damaged += 1
        elif mutant.valid_prefix:
            report.valid_prefixes += 1
        elif _records(stats) < records:
            report.silent.append(f"{Path(src).name}: {mutant.kind}: {mutant.detail}")
    return report
