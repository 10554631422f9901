"""Turn `--input` specs (files, globs, folders, `*.paths(.gz)` listings) into a sorted list of file URIs.

Local paths are resolved here; remote URIs (s3a://, s3://, gs://, hdfs://, https://) pass through and are
opened with fsspec inside the task that reads them, so the driver never downloads data.
"""

from __future__ import annotations

import glob
import gzip
import os
from pathlib import Path

import fsspec

# Common Crawl listings hold paths relative to the public bucket.
CC_PREFIX = "https://data.commoncrawl.org/"

WARC_SUFFIXES = (".warc", ".warc.gz", ".arc", ".arc.gz")
WET_SUFFIXES = (".wet", ".wet.gz", ".warc.wet", ".warc.wet.gz")
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".json.gz", ".ndjson")
PARQUET_SUFFIXES = (".parquet",)
DATA_SUFFIXES = WET_SUFFIXES + WARC_SUFFIXES + JSONL_SUFFIXES + PARQUET_SUFFIXES
LISTING_SUFFIXES = (".paths", ".paths.gz")


class InputError(ValueError):
    """An --input spec matches nothing or names an unsupported format."""


def is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def input_format(uri: str) -> str:
    """Return one of warc | wet | jsonl | parquet from the file name."""
    name = uri.lower().rsplit("/", 1)[-1]
    if name.endswith(WET_SUFFIXES):
        return "wet"
    if name.endswith(WARC_SUFFIXES):
        return "warc"
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    raise InputError(f"unsupported input format: {uri} (expected one of {', '.join(DATA_SUFFIXES)})")


def _read_listing(path: str, prefix: str) -> list[str]:
    opener = gzip.open if path.endswith(".gz") else open
    if is_remote(path):
        with fsspec.open(_fsspec_uri(path), "rb", compression="infer") as f:
            lines = f.read().decode("utf-8").splitlines()
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


def expand_inputs(specs: list[str], listing_prefix: str = CC_PREFIX, limit: int | None = None) -> list[str]:
    """Expand specs into a de-duplicated, sorted list of input URIs (sorted, so task order is stable)."""
    if not specs:
        raise InputError("no --input given")
    found: list[str] = []
    for spec in specs:
        matched: list[str]
        if spec.lower().endswith(LISTING_SUFFIXES):
            matched = _read_listing(spec, listing_prefix)
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
    return unique[:limit] if limit else unique


def _fsspec_uri(uri: str) -> str:
    # Hadoop's s3a:// scheme is s3:// for fsspec (needs the s3fs package on the executors).
    return "s3://" + uri[len("s3a://"):] if uri.startswith("s3a://") else uri


def open_input(uri: str):
    """Open an input file for binary reading, local or remote; the caller closes it."""
    if not is_remote(uri):
        return open(uri.removeprefix("file://"), "rb")
    return fsspec.open(_fsspec_uri(uri), "rb").open()
