"""Turn `--input` specs (files, globs, folders, `*.paths(.gz)` listings) into a sorted list of file URIs.

Local paths are resolved here; remote URIs (s3a://, s3://, gs://, hdfs://, https://) pass through and are
opened with fsspec inside the task that reads them, so the driver never downloads data.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import os
import posixpath
from pathlib import Path

from corpus.io.formats import (
    CC_PREFIX,
    DATA_SUFFIXES,
    LISTING_SUFFIXES,
    WARC_SUFFIXES,
    WET_SUFFIXES,
    InputError,
    input_format,
    is_remote,
)
from corpus.io.remote import open_input
from corpus.io.rundir import has_arrow_filesystem


def _read_listing(path: str, prefix: str) -> list[str]:
    opener = gzip.open if path.endswith(".gz") else open
    if is_remote(path):
        with open_input(path) as f:
            data = f.read()
        lines = (gzip.decompress(data) if path.endswith(".gz") else data).decode("utf-8").splitlines()
    else:
        with opener(path, "rt", encoding="utf-8") as f:
            lines = f.read().splitlines()
    out = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        out.append(line if "://" in line or line.startswith("/") else prefix + line)
    return out


def _local_folder(folder: Path) -> list[str]:
    """A folder's crawl files (WARC/ARC/WET) when it has any — so side files such as `corpus synth`'s
    truth.jsonl are not read as documents — otherwise its JSONL/Parquet files."""
    files = [p for p in folder.rglob("*") if p.is_file() and p.name.lower().endswith(DATA_SUFFIXES)]
    crawl = [p for p in files if p.name.lower().endswith(WET_SUFFIXES + WARC_SUFFIXES)]
    return [str(p.resolve()) for p in (crawl or files)]


def _object_store(spec: str) -> list[str]:
    """An s3:// (s3a://, gs://, hdfs://) file, folder or glob: listed on the driver (names only, no data read)."""
    import fnmatch

    from pyarrow import fs as pafs

    from corpus.io.rundir import arrow_filesystem

    scheme = spec.split("://", 1)[0]
    fs, path = arrow_filesystem(spec)
    glob_at = min((path.find(ch) for ch in "*?[" if ch in path), default=-1)
    base = path if glob_at < 0 else posixpath.dirname(path[:glob_at])
    info = fs.get_file_info(base)
    if glob_at < 0 and info.type == pafs.FileType.File:
        return [spec]
    if info.type == pafs.FileType.NotFound:
        raise InputError(f"--input {spec}: no such object or prefix")
    names = [i.path for i in fs.get_file_info(pafs.FileSelector(base, recursive=True))
             if i.type == pafs.FileType.File and i.path.lower().endswith(DATA_SUFFIXES)]
    if glob_at >= 0:
        names = [n for n in names if fnmatch.fnmatchcase(n, path)]
    crawl = [n for n in names if n.lower().endswith(WET_SUFFIXES + WARC_SUFFIXES)]
    return [f"{scheme}://{n}" for n in sorted(crawl or names)]


def sample_key(uri: str, seed: int) -> float:
    """A uniform number in [0, 1) fixed by the URI and seed: whether a file is sampled never depends on which
    other files are listed or in what order."""
    digest = hashlib.blake2b(f"{seed}:{uri}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def expand_inputs(specs: list[str], listing_prefix: str = CC_PREFIX, limit: int | None = None,
                  sample: float | None = None, seed: int = 0) -> list[str]:
    """Expand specs into a de-duplicated, sorted list of input URIs (sorted, so task order is stable).

    `sample` keeps a deterministic fraction of the files (e.g. 0.01 of a Common Crawl warc.paths.gz listing),
    `limit` then keeps the first N.
    """
    if sample is not None and not 0 < sample <= 1:
        raise InputError(f"--sample must be a fraction in (0, 1], got {sample}")
    if limit is not None and limit < 1:
        raise InputError(f"--limit must be at least 1, got {limit}")
    if not specs:
        raise InputError("no --input given")
    found: list[str] = []
    for spec in specs:
        matched: list[str]
        if spec.lower().endswith(LISTING_SUFFIXES):
            matched = _read_listing(spec, listing_prefix)
        elif is_remote(spec) and has_arrow_filesystem(spec):
            matched = _object_store(spec)
        elif is_remote(spec):
            matched = [spec]
        elif os.path.isdir(spec):
            matched = _local_folder(Path(spec))
        elif any(ch in spec for ch in "*?["):
            matched = []
            for p in sorted(glob.glob(spec, recursive=True)):
                if os.path.isdir(p):
                    matched += _local_folder(Path(p))
                else:
                    matched.append(str(Path(p).resolve()))
        elif os.path.isfile(spec):
            matched = [str(Path(spec).resolve())]
        else:
            raise InputError(f"--input {spec}: no such file or folder")
        if not matched:
            raise InputError(f"--input {spec}: matched no input files")
        for uri in matched:
            input_format(uri)  # fail on the driver, before any task, for unsupported names
        found += matched
    unique = sorted(set(found))
    if sample is not None and sample < 1:
        unique = [u for u in unique if sample_key(u, seed) < sample]
        if not unique:
            raise InputError(f"--sample {sample} kept none of the input files; raise the fraction")
    return unique[:limit] if limit else unique
