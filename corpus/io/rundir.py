"""The run folder: I/O through pyarrow filesystems, so RUN can be local, s3://, gs:// or hdfs://.

Each input file commits independently: its Parquet parts are written under a temporary name and moved
into place, then a small marker under RUN/_progress/ is written last. A file whose marker exists is
finished; anything else is redone and overwrites the same deterministic names, so a rerun after a
crash neither duplicates nor loses documents.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import uuid

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs as pafs


def shard_key(uri: str) -> str:
    """Stable name of an input file's outputs: independent of run order and task ids."""
    return hashlib.sha1(uri.encode("utf-8")).hexdigest()[:16]


# Hadoop's names for S3 (what Spark users write) and the scheme pyarrow knows them by.
SCHEME_ALIASES = {"s3a": "s3", "s3n": "s3", "gcs": "gs"}
ARROW_SCHEMES = ("s3", "gs", "hdfs", "viewfs", "file")


def arrow_uri(uri: str) -> str:
    """A local path or URI as pyarrow's filesystems spell it (s3a:// → s3://; local paths made absolute)."""
    if "://" not in uri:
        return _abspath(uri)
    scheme, rest = uri.split("://", 1)
    return f"{SCHEME_ALIASES.get(scheme.lower(), scheme.lower())}://{rest}"


def has_arrow_filesystem(uri: str) -> bool:
    return "://" not in uri or arrow_uri(uri).split("://", 1)[0] in ARROW_SCHEMES


def arrow_filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path) for a local path or an s3:// / s3a:// / gs:// / hdfs:// URI. Object-store clients take
    the usual settings: for S3 the AWS credential chain and AWS_ENDPOINT_URL (S3-compatible stores)."""
    target = arrow_uri(uri)
    return pafs.FileSystem.from_uri(target) if "://" in target else (pafs.LocalFileSystem(), target)


class RunDir:
    """A folder on any pyarrow filesystem. Writes are atomic per file: temporary name, then a move. On object
    stores a move is a copy and a delete, and each object appears whole or not at all, which is all the commit
    protocol needs (markers are written last; names are deterministic; `.tmp-` leftovers are swept)."""

    def __init__(self, uri: str):
        self.uri = uri
        self.fs, self.root = arrow_filesystem(uri)

    def path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def makedirs(self, *parts: str) -> None:
        self.fs.create_dir(self.path(*parts), recursive=True)

    def exists(self, *parts: str) -> bool:
        return self.fs.get_file_info(self.path(*parts)).type != pafs.FileType.NotFound

    def list(self, *parts: str) -> list[str]:
        if not self.exists(*parts):
            return []
        infos = self.fs.get_file_info(pafs.FileSelector(self.path(*parts)))
        return sorted(posixpath.basename(i.path) for i in infos if i.type == pafs.FileType.File)

    def write_bytes_atomic(self, data: bytes, *parts: str) -> None:
        final = self.path(*parts)
        tmp = _temp_name(final)
        with self.fs.open_output_stream(tmp) as f:
            f.write(data)
        self.fs.move(tmp, final)

    def write_json(self, obj: dict, *parts: str) -> None:
        self.write_bytes_atomic(json.dumps(obj, indent=2, sort_keys=True).encode("utf-8") + b"\n", *parts)

    def read_json(self, *parts: str) -> dict:
        with self.fs.open_input_stream(self.path(*parts)) as f:
            return json.loads(f.read().decode("utf-8"))

    def write_parquet_atomic(self, rows: list[dict], schema: pa.Schema, *parts: str) -> None:
        self.write_table_atomic(pa.Table.from_pylist(rows, schema=schema), *parts)

    def write_table_atomic(self, table: pa.Table, *parts: str) -> None:
        final = self.path(*parts)
        tmp = _temp_name(final)
        # Fixed writer options so the same rows always give the same bytes.
        pq.write_table(table, tmp, filesystem=self.fs, compression="zstd", row_group_size=10_000,
                       write_statistics=True, store_schema=True)
        self.fs.move(tmp, final)


def _temp_name(final: str) -> str:
    """A name no other task attempt uses (speculative or retried attempts may write the same part at once); the
    `.tmp-` prefix lets a rerun sweep what a killed attempt left."""
    return posixpath.join(posixpath.dirname(final), f".tmp-{uuid.uuid4().hex[:12]}-{posixpath.basename(final)}")


def _abspath(path: str) -> str:
    import os

    return os.path.abspath(path)
