"""Input file formats by name: the suffix tables, `input_format` and `is_remote`, shared by driver and executors."""

from __future__ import annotations

import re

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


# Common Crawl names each crawl CC-MAIN-YYYY-WW, and its file paths carry it (crawl-data/CC-MAIN-2024-10/...).
_DUMP = re.compile(r"CC-MAIN-\d{4}-\d{2}")


def dump_of(uri: str) -> str | None:
    """The Common Crawl dump a file belongs to, from its path (the last CC-MAIN-YYYY-WW in it), or None."""
    found = _DUMP.findall(uri)
    return found[-1] if found else None
