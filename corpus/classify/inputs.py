"""Texts for the classifiers: JSONL / Parquet files, folders, globs, or run folders (a run folder means its docs/
Parquet parts), local or on an object store (s3://, s3a://, gs://, hdfs:// through corpus.io's pyarrow layer).

Each file is read whole once, so its sha256 (recorded in the model card: which exact data trained a model) costs no
second read.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import posixpath
from dataclasses import dataclass, field

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from corpus.classify.fasttext_model import ClassifierError
from corpus.io.formats import InputError, input_format, is_remote
from corpus.io.listing import expand_inputs
from corpus.io.remote import open_input


@dataclass
class Texts:
    """The records read from some specs: ids and texts in input order, and per file its sha256 and counts."""

    ids: list = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    files: list[dict] = field(default_factory=list)


def is_run_folder(spec: str) -> bool:
    """A `corpus build` run folder: it has docs/ and the build's lineage (config.yaml)."""
    if any(ch in spec for ch in "*?["):
        return False
    if not is_remote(spec):
        return os.path.isdir(os.path.join(spec, "docs")) and os.path.isfile(os.path.join(spec, "config.yaml"))
    from corpus.io.rundir import RunDir, has_arrow_filesystem

    if not has_arrow_filesystem(spec):
        return False
    try:
        run = RunDir(spec)
        return run.exists("docs") and run.exists("config.yaml")
    except OSError:
        return False


def expand_text_inputs(specs: list[str]) -> list[str]:
    """The JSONL/Parquet files the specs name, sorted per spec (run folders → their docs/ parts)."""
    files: list[str] = []
    for spec in specs:
        target = posixpath.join(spec.rstrip("/"), "docs") if is_run_folder(spec) else spec
        try:
            found = expand_inputs([target])
        except InputError as e:
            raise ClassifierError(str(e)) from None
        for uri in found:
            if input_format(uri) not in ("jsonl", "parquet"):
                raise ClassifierError(f"{uri}: classifiers read texts from JSONL or Parquet files or run folders; "
                                      "crawl files (WARC/WET) need `corpus build` first")
        files += found
    return files


def read_texts(specs: list[str], text_field: str = "text", id_field: str | None = None) -> Texts:
    """Every non-null `text_field` of the files the specs name. With `id_field`, also the ids (as given; a file
    without that field is an error)."""
    out = Texts()
    for uri in expand_text_inputs(specs):
        try:
            with open_input(uri) as f:
                data = f.read()
        except OSError as e:
            raise ClassifierError(f"{uri}: cannot read it: {e}") from None
        ids, texts = (_parquet if input_format(uri) == "parquet" else _jsonl)(uri, data, text_field, id_field)
        kept = [(i, t) for i, t in zip(ids, texts) if isinstance(t, str)]
        out.ids += [i for i, _ in kept]
        out.texts += [t for _, t in kept]
        out.files.append({"file": uri, "sha256": hashlib.sha256(data).hexdigest(), "records": len(texts),
                          "texts": len(kept)})
    return out


def _jsonl(uri: str, data: bytes, text_field: str, id_field: str | None) -> tuple[list, list]:
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise ClassifierError(f"{uri}: corrupt gzip: {e}") from None
    ids, texts, fields = [], [], set()
    for n, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError as e:
            raise ClassifierError(f"{uri}: line {n} is not JSON: {e}") from None
        if not isinstance(rec, dict):
            raise ClassifierError(f"{uri}: line {n} is not a JSON object")
        if len(fields) < 64:
            fields.update(rec)
        texts.append(rec.get(text_field))
        ids.append(rec.get(id_field) if id_field else None)
    _check_fields(uri, texts, ids, sorted(fields), text_field, id_field)
    return ids, texts


def _parquet(uri: str, data: bytes, text_field: str, id_field: str | None) -> tuple[list, list]:
    try:
        pf = pq.ParquetFile(io.BytesIO(data))
        names = pf.schema_arrow.names
        columns = [c for c in (text_field, id_field) if c and c in names]
        table = pf.read(columns=columns)
    except (pa.ArrowException, OSError) as e:
        raise ClassifierError(f"{uri}: not a readable Parquet file: {e}") from None
    texts = table.column(text_field).to_pylist() if text_field in names else [None] * table.num_rows
    ids = (table.column(id_field).to_pylist() if id_field in names else [None] * table.num_rows) if id_field \
        else [None] * table.num_rows
    if text_field in names and not pa.types.is_string(table.schema.field(text_field).type) and \
            not pa.types.is_large_string(table.schema.field(text_field).type):
        raise ClassifierError(f"{uri}: field {text_field!r} is {table.schema.field(text_field).type}, not text")
    _check_fields(uri, texts, ids, names, text_field, id_field)
    return ids, texts


def _check_fields(uri, texts, ids, fields, text_field, id_field) -> None:
    if texts and all(t is None for t in texts):
        raise ClassifierError(f"{uri}: no record has a {text_field!r} field (fields: {', '.join(map(str, fields))}); "
                              "name the text field with --text-field")
    if id_field and texts and all(i is None for i in ids):
        raise ClassifierError(f"{uri}: no record has an {id_field!r} field (fields: {', '.join(map(str, fields))}); "
                              "name the id field with --id-field")
