"""Spark DataFrames from folders of Parquet parts, read by pyarrow inside the tasks (one task per part file).

Why not `spark.read.parquet`: the JVM reads s3:// or gs:// only with a Hadoop connector on its classpath
(hadoop-aws, the GCS connector), which plain `pip install pyspark` lacks and clusters configure differently.
The Python workers already reach every store through pyarrow (corpus.io.rundir), the same layer that writes
the parts, so every step reads what the previous one wrote wherever it lives, with the same credentials.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from corpus.io.rundir import RunDir
from corpus.spark.writer import small_types


def parquet_parts(uri: str) -> list[str]:
    """The Parquet part files under a folder (sorted; hidden, temporary and `_`-prefixed names skipped), or the
    file itself."""
    run = RunDir(uri)
    info = run.fs.get_file_info(run.root)
    if info.type == pafs.FileType.File:
        return [uri]
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"no Parquet input at {uri}")
    infos = run.fs.get_file_info(pafs.FileSelector(run.root, recursive=True))
    names = sorted(posixpath.relpath(i.path, run.root) for i in infos if i.type == pafs.FileType.File
                   and i.path.endswith(".parquet")
                   and not any(part.startswith((".", "_")) for part in posixpath.relpath(i.path, run.root).split("/")))
    return [f"{uri.rstrip('/')}/{name}" for name in names]


def _read_parts(rows: Iterator[pa.RecordBatch], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    for batch in rows:
        for uri in batch.column("path").to_pylist():
            run = RunDir(uri)
            with run.fs.open_input_file(run.root) as f:
                for part in pq.ParquetFile(f).iter_batches(batch_size=2000):
                    yield part.select(schema.names).cast(schema)


def read_parquet(spark, uri: str):
    """A DataFrame of every row of the Parquet parts under `uri` (local path or URI), in part order."""
    parts = parquet_parts(uri)
    if not parts:
        raise FileNotFoundError(f"no Parquet parts under {uri}")
    first = RunDir(parts[0])
    with first.fs.open_input_file(first.root) as f:
        schema = small_types(pq.ParquetFile(f).schema_arrow)
    from pyspark.sql.pandas.types import from_arrow_schema

    paths = spark.createDataFrame([(p,) for p in parts], "path string").repartition(len(parts), "path")
    return paths.mapInArrow(lambda it: _read_parts(it, schema), from_arrow_schema(schema))
