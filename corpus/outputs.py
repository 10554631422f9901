"""Run-folder I/O through pyarrow filesystems, so RUN can be local, s3://, gs:// or hdfs://.

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

DOC_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("text", pa.string()),
        ("url", pa.string()),
        ("date", pa.string()),
        ("dump", pa.string()),
        ("file_path", pa.string()),
        ("language", pa.string()),
        ("language_score", pa.float64()),
    ]
)

# Per-document values for the report (corpus.report): `chars` is the length of the extracted text (what the
# filters saw, before C4's line removal and normalization); each metric column is a value a quality filter
# compared to a threshold, keyed by QualityChain.measure's "stage.value" name. Null where that check did not
# run (the document was dropped earlier, or the filter is disabled).
QUALITY_METRIC_COLUMNS = {
    "rep_dup_para_frac": "gopher_repetition.dup_para_frac",
    "rep_dup_line_char_frac": "gopher_repetition.dup_line_char_frac",
    "rep_top_2_gram_frac": "gopher_repetition.top_2_gram_frac",
    "rep_dup_5_gram_frac": "gopher_repetition.duplicated_5_n_grams_frac",
    "gopher_words": "gopher_quality.n_non_symbol_words",
    "gopher_avg_word_length": "gopher_quality.avg_word_length",
    "gopher_hash_ratio": "gopher_quality.hash_ratio",
    "gopher_alpha_words_ratio": "gopher_quality.alpha_words_ratio",
    "gopher_stop_words": "gopher_quality.n_stop_words",
    "fineweb_line_punct_ratio": "fineweb.line_punct_ratio",
    "fineweb_short_line_ratio": "fineweb.short_line_ratio",
    "fineweb_char_dup_ratio": "fineweb.char_dup_ratio",
    "fineweb_list_ratio": "fineweb.list_ratio",
}
_MEASURE_FIELDS = [("chars", pa.int64())] + [(name, pa.float64()) for name in QUALITY_METRIC_COLUMNS]
DOC_SCHEMA = pa.schema([*DOC_SCHEMA, *_MEASURE_FIELDS])

REMOVED_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("url", pa.string()),
        ("stage", pa.string()),
        ("reason", pa.string()),
        ("file_path", pa.string()),
        *_MEASURE_FIELDS,
    ]
)


def quality_metric_row(metrics: dict) -> dict:
    """QualityChain.measure's values as the metric columns (NaN, e.g. an undefined mean, becomes null)."""
    row = {}
    for column, key in QUALITY_METRIC_COLUMNS.items():
        value = metrics.get(key)
        row[column] = None if value is None or value != value else float(value)
    return row


def shard_key(uri: str) -> str:
    """Stable name of an input file's outputs: independent of run order and task ids."""
    return hashlib.sha1(uri.encode("utf-8")).hexdigest()[:16]


class RunDir:
    def __init__(self, uri: str):
        self.uri = uri
        self.fs, self.root = pafs.FileSystem.from_uri(uri if "://" in uri else _abspath(uri))

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

    return sum(r["rows"] for r in df.mapInArrow(write, "rows long").collect())


def _abspath(path: str) -> str:
    import os

    return os.path.abspath(path)
