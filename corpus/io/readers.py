"""Read one input file into pages: WARC/ARC responses, WET conversions, JSONL or Parquet text rows.

Everything that is not a usable page is reported as a `Skip` with a reason instead of being dropped
silently; a corrupt tail of a file (truncated gzip, bad record header) ends that file with a counted
`read_error` and keeps the pages read before it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow.parquet as pq
from warcio.archiveiterator import ArchiveIterator

from corpus.config import ReadConf
from corpus.io.charset import decode_html
from corpus.io.formats import input_format
from corpus.io.remote import open_input


@dataclass(slots=True)
class Page:
    id: str
    url: str
    date: str
    file_path: str
    html: str | None = None  # set for WARC/ARC responses
    text: str | None = None  # set for WET and already-extracted inputs
    encoding: str | None = None


@dataclass(slots=True)
class Skip:
    reason: str
    url: str = ""
    id: str = ""
    detail: str = ""


def fallback_id(file_path: str, position: int) -> str:
    """Stable id for records that carry none: derived from where the record is, never from run order."""
    return "sha1:" + hashlib.sha1(f"{file_path}#{position}".encode()).hexdigest()


def _mime(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _looks_like_html(payload: bytes) -> bool:
    head = payload[:1024].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html")) or b"<html" in head


def _truncated(record) -> bool:
    # warcio ends quietly at EOF inside a record; bytes still owed by the record's LimitReader give it away.
    return getattr(record.raw_stream, "limit", 0) > 0


def _is_arc(uri: str) -> bool:
    return uri.lower().endswith((".arc", ".arc.gz"))


def _warc_page(record, file_path: str, position: int, conf: ReadConf) -> Page | Skip:
    headers = record.rec_headers
    url = headers.get_header("WARC-Target-URI") or ""
    rid = headers.get_header("WARC-Record-ID")
    if not rid or _is_arc(file_path):  # warcio invents random ids when converting ARC records
        rid = fallback_id(file_path, position)
    date = headers.get_header("WARC-Date") or ""
    if record.rec_type == "conversion":
        payload = record.content_stream().read(conf.max_record_bytes + 1)
        if len(payload) > conf.max_record_bytes:
            return Skip("too_large", url, rid)
        if _truncated(record):
            return Skip("truncated_record", url, rid, "record ends before its Content-Length")
        text, _ = decode_html(payload, headers.get_header("Content-Type"))
        return Page(rid, url, date, file_path, text=text)
    http = record.http_headers
    if http is None:
        return Skip("no_http_headers", url, rid)
    status = http.get_statuscode()
    if status != "200":
        return Skip(f"http_status_{status or 'missing'}", url, rid)
    content_type = http.get_header("Content-Type")
    mime = _mime(headers.get_header("WARC-Identified-Payload-Type")) or _mime(content_type)
    payload = record.content_stream().read(conf.max_record_bytes + 1)
    if len(payload) > conf.max_record_bytes:
        return Skip("too_large", url, rid, f">{conf.max_record_bytes} bytes")
    if _truncated(record):
        return Skip("truncated_record", url, rid, "record ends before its Content-Length")
    if mime not in conf.allowed_mime_types and not (not mime and _looks_like_html(payload)):
        return Skip("not_html", url, rid, mime or "no content type")
    if not payload.strip():
        return Skip("empty_payload", url, rid)
    html, encoding = decode_html(payload, content_type)
    return Page(rid, url, date, file_path, html=html, encoding=encoding)


def _open_records(uri: str, whole_file_gzip: bool, conf: ReadConf):
    raw = open_input(uri, conf.remote_retries, conf.retry_backoff_seconds)
    # warcio wants one gzip member per record; some producers gzip the whole file as one member.
    stream = gzip.open(raw) if whole_file_gzip else raw
    return raw, iter(ArchiveIterator(stream, arc2warc=True, check_digests=False))


def _iter_warc(uri: str, conf: ReadConf, want: tuple[str, ...]) -> Iterator[Page | Skip]:
    position = 0
    whole_file_gzip = False
    raw, records = _open_records(uri, whole_file_gzip, conf)
    try:
        while True:
            try:
                record = next(records)
            except StopIteration:
                return
            except Exception as e:  # noqa: BLE001 - any parse failure ends this file, counted
                if not whole_file_gzip and "non-chunked gzip" in str(e):
                    raw.close()
                    whole_file_gzip = True
                    raw, records = _open_records(uri, whole_file_gzip, conf)
                    for _ in range(position):  # records already handled before the fallback
                        next(records)
                    continue
                detail = " ".join(str(e).split())[:300]
                yield Skip("read_error", detail=f"{uri}: after {position} records: {type(e).__name__}: {detail}")
                return
            position += 1
            if record.rec_type not in want:
                yield Skip(f"record_type_{record.rec_type}")
                continue
            try:
                yield _warc_page(record, uri, position, conf)
            except Exception as e:  # noqa: BLE001 - one bad record must not end the job
                yield Skip("bad_record", detail=f"{uri} record {position}: {type(e).__name__}: {e}")
    finally:
        raw.close()


def _row_page(row: dict, uri: str, position: int) -> Page | Skip:
    text = row.get("text")
    meta = row.get("metadata") if isinstance(row.get("metadata"), dict) else {}
    url = row.get("url") or meta.get("url") or ""
    rid = str(row.get("id") or fallback_id(uri, position))
    if not isinstance(text, str):
        return Skip("no_text_field", url, rid)
    date = row.get("date") or meta.get("date") or row.get("created") or ""
    return Page(rid, url, str(date), uri, text=text)


def _iter_jsonl(uri: str, conf: ReadConf) -> Iterator[Page | Skip]:
    with open_input(uri, conf.remote_retries, conf.retry_backoff_seconds) as raw:
        stream = gzip.open(raw) if uri.endswith(".gz") else raw
        position = 0
        try:
            for line in io.TextIOWrapper(stream, encoding="utf-8", errors="replace"):
                position += 1
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    yield Skip("bad_json", detail=f"{uri} line {position}: {e}")
                    continue
                if not isinstance(row, dict):
                    yield Skip("bad_json", detail=f"{uri} line {position}: not an object")
                    continue
                yield _row_page(row, uri, position)
        except (OSError, EOFError) as e:
            yield Skip("read_error", detail=f"{uri}: after {position} lines: {type(e).__name__}: {e}")


def _iter_parquet(uri: str, conf: ReadConf) -> Iterator[Page | Skip]:
    with open_input(uri, conf.remote_retries, conf.retry_backoff_seconds, seekable=True) as raw:
        try:
            pf = pq.ParquetFile(raw)
        except Exception as e:  # noqa: BLE001
            yield Skip("read_error", detail=f"{uri}: {type(e).__name__}: {e}")
            return
        if "text" not in pf.schema_arrow.names:
            yield Skip("read_error", detail=f"{uri}: no `text` column")
            return
        position = 0
        for batch in pf.iter_batches(batch_size=2048):
            for row in batch.to_pylist():
                position += 1
                yield _row_page(row, uri, position)


def iter_pages(uri: str, conf: ReadConf) -> Iterator[Page | Skip]:
    """All pages of one input file, in file order. A file that cannot be opened (missing, no permission,
    unreachable) or fails mid-way gives one `read_error` with the error, and the job goes on."""
    fmt = input_format(uri)
    if fmt == "warc":
        pages = _iter_warc(uri, conf, ("response",))
    elif fmt == "wet":
        pages = _iter_warc(uri, conf, ("conversion",))
    elif fmt == "jsonl":
        pages = _iter_jsonl(uri, conf)
    else:
        pages = _iter_parquet(uri, conf)
    try:
        yield from pages
    except Exception as e:  # noqa: BLE001 - recorded in the stats with the file and error
        yield Skip("read_error", detail=f"{uri}: {type(e).__name__}: {e}")
