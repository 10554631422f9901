"""Spark partition writer: each partition of a DataFrame as one Parquet file, written by pyarrow."""

from __future__ import annotations

import pyarrow as pa

from corpus.io.rundir import RunDir


def small_types(schema: pa.Schema) -> pa.Schema:
    """Spark 4 may hand Arrow batches with large_string/large_binary; our files use the plain types throughout."""
    swap = {pa.large_string(): pa.string(), pa.large_binary(): pa.binary()}
    return pa.schema([f.with_type(swap.get(f.type, f.type)) for f in schema], metadata=schema.metadata)


def write_partitions(df, out: str, folder: str) -> int:
    """Write each partition of a Spark DataFrame as OUT/FOLDER/part-NNNNN.parquet with pyarrow; returns the rows.

    Not Spark's own writer: parquet-mr lists each column's encodings in a JVM hash-set order, so the same rows
    give different bytes in another JVM (a rerun, or a cluster instead of local mode). pyarrow's files depend only
    on the rows. The folder is emptied first (a previous attempt may have had other partition counts); every
    partition writes a file, empty ones included, so readers always find the schema. Retried tasks rewrite the
    same name atomically.
    """
    from pyspark import TaskContext
    from pyspark.sql.pandas.types import to_arrow_schema

    run = RunDir(out)
    if run.exists(folder):
        run.fs.delete_dir_contents(run.path(folder))
    run.makedirs(folder)
    schema = small_types(to_arrow_schema(df.schema))

    def write(batches):
        table = pa.Table.from_batches([b.cast(schema) for b in batches], schema=schema)
        part = TaskContext.get().partitionId()
        RunDir(out).write_table_atomic(table, folder, f"part-{part:05d}.parquet")
        yield pa.RecordBatch.from_pydict({"rows": [table.num_rows]}, schema=pa.schema([("rows", pa.int64())]))

    rows = sum(r["rows"] for r in df.mapInArrow(write, "rows long").collect())
    if not any(name.endswith(".parquet") for name in run.list(folder)):
        # An empty DataFrame may have no partition at all (adaptive execution coalesces empty shuffles): one
        # empty part still carries the schema, so readers of an empty result find its columns.
        run.write_table_atomic(schema.empty_table(), folder, "part-00000.parquet")
    return rows
