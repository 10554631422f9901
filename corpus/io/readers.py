"""Read one input file into pages: WARC/ARC responses, WET conversions, JSONL or Parquet text rows.

Everything that is not a usable page is reported as a `Skip` with a reason instead of being dropped
silently. Hostile input is bounded before it is parsed:

- a WARC/ARC/WET file must start with gzip's magic, `WARC/` or `filedesc://` (ARC), checked on its first
  bytes, so a failed download full of zeros is one `not_a_crawl_file` in microseconds, not a parse of 1 GB;
- gzip is decompressed by a strict reader of our own (warcio's swallows CRC and data errors and stops
  quietly at a cut): a cut gives `truncated_file`, a bad member `corrupt_gzip`, and the pages before the
  damage are kept. Per-record and whole-file gzip are read the same way, as one stream of members;
- header lines are read in linear time and capped (`header_too_long`), error details are truncated;
- a record whose Content-Length disagrees with its bytes gives `content_length_mismatch` and reading
  resumes at the next `WARC/` line; a record cut by the end of the file gives `truncated_file`;
- JSONL/Parquet fields are coerced to their types here (url/date/id to str, lone surrogates replaced), and
  their source ids are qualified with the file's key so that ids are unique within a run.

`FILE_ENDED_EARLY` lists the reasons that mean the rest of a file was not read.
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow.parquet as pq
from warcio.archiveiterator import ArchiveIterator
from warcio.bufferedreaders import BufferedReader

from corpus.config import ReadConf
from corpus.io.charset import decode_html
from corpus.io.formats import input_format
from corpus.io.remote import open_input
from corpus.io.rundir import shard_key

# Reasons after which the rest of the file was not read (the pages before the damage are kept).
FILE_ENDED_EARLY = ("empty_file", "not_a_crawl_file", "not_jsonl", "truncated_file", "corrupt_gzip", "header_too_long",
                    "read_error")
MAX_HEADER_LINE = 1 << 20  # bytes in one WARC/HTTP header line; real ones are a few KB (long URLs, cookies)
MAX_HEADER_BLOCK = 4 << 20  # bytes in one record's WARC or HTTP header block
MAX_DETAIL = 300  # characters of an error detail kept in the stats
GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 16


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


class InputDamage(Exception):
    """The file cannot be read past this point; `reason` is the counted skip reason."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def short(text: object, limit: int = MAX_DETAIL) -> str:
    """An error detail for the stats: whitespace collapsed, cut to `limit` characters (a hostile header line
    can be megabytes)."""
    s = str(text)
    s = " ".join(s[: limit * 4].split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


def fallback_id(file_path: str, position: int) -> str:
    """Stable id for records that carry none: derived from where the record is, never from run order."""
    return "sha1:" + hashlib.sha1(f"{file_path}#{position}".encode()).hexdigest()


def qualified_id(uri: str, source_id: str) -> str:
    """`KEY/source_id` with KEY = the file's shard key: source ids are unique within their file only."""
    return f"{shard_key(uri)}/{source_id}"


def _mime(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _looks_like_html(payload: bytes) -> bool:
    head = payload[:1024].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html")) or b"<html" in head


def _is_arc(uri: str) -> bool:
    return uri.lower().endswith((".arc", ".arc.gz"))


# ---------------------------------------------------------------------------------------------- byte streams

def _open(uri: str, conf: ReadConf, seekable: bool = False):
    return open_input(uri, conf.remote_retries, conf.retry_backoff_seconds, seekable=seekable,
                      deadline_seconds=conf.remote_deadline_seconds)


class _Gunzip:
    """Strict gzip decompression over all members of a file (per-record or whole-file gzip alike), with
    bounded output per call. Raises `InputDamage` on a cut (`truncated_file`) or bad data (`corrupt_gzip`)."""

    def __init__(self, raw, head: bytes = b""):
        self.raw, self.pending = raw, head
        self.d = zlib.decompressobj(31)
        self.members, self.fed, self.out_pos, self.in_pos = 1, False, 0, 0

    def _raw(self) -> bytes:
        if self.pending:
            data, self.pending = self.pending, b""
        else:
            data = self.raw.read(_CHUNK)
        self.in_pos += len(data)
        return data

    def read(self, size: int = -1) -> bytes:
        size = _CHUNK if size is None or size < 0 else size
        while True:
            if self.d.eof:  # member finished: the next one starts in its leftover bytes, or the file ends
                data = self.d.unused_data or self._raw()
                if not data:
                    return b""
                self.d, self.fed = zlib.decompressobj(31), False
                self.members += 1
            else:
                data = self.d.unconsumed_tail or self._raw()
                if not data:
                    if not self.fed:
                        return b""
                    raise InputDamage("truncated_file", f"gzip member {self.members} ends early: the file is cut "
                                      f"after {self.in_pos} bytes")
            try:
                out = self.d.decompress(data, size)
            except zlib.error as e:
                where = "bytes after the last complete gzip member" if not self.fed and self.members > 1 else \
                    f"gzip member {self.members}"
                raise InputDamage("corrupt_gzip", f"{where} (compressed byte ~{self.in_pos}): {e}") from None
            self.fed = True
            if out:
                self.out_pos += len(out)
                return out

    def tell(self) -> int:
        return self.out_pos

    def close(self) -> None:
        self.raw.close()


class _Prefixed:
    """An uncompressed file whose first bytes were already read for the format check."""

    def __init__(self, raw, head: bytes):
        self.raw, self.head, self.pos = raw, head, 0

    def read(self, size: int = -1) -> bytes:
        if self.head:
            data, self.head = self.head, b""
        else:
            data = self.raw.read(_CHUNK if size is None or size < 0 else size)
        self.pos += len(data)
        return data

    def tell(self) -> int:
        return self.pos

    def close(self) -> None:
        self.raw.close()


class _CappedReader(BufferedReader):
    """warcio's buffered reader over an already-decompressed stream, with a linear-time readline capped at
    MAX_HEADER_LINE (warcio's grows its line by concatenation: quadratic) and a cap on consecutive header
    bytes read as lines (MAX_HEADER_BLOCK). Notes when the stream has ended."""

    def __init__(self, stream):
        super().__init__(stream, decomp_type=None)
        self.at_eof = False
        self.block_bytes = 0

    def _fillbuff(self, block_size=None):
        if not self.empty():
            return
        data = self.stream.read(block_size or self.block_size)
        if not data:
            self.at_eof = True
        self._process_read(data)

    def read(self, length=None):
        self.block_bytes = 0
        return super().read(length)

    def readline(self, length=None, capped: bool = True):
        if length == 0:
            return b""
        limit = MAX_HEADER_LINE + 1 if length is None else length
        if capped:
            limit = min(limit, MAX_HEADER_LINE + 1)
        parts, n = [], 0
        while n < limit:
            self._fillbuff()
            if self.empty():
                break
            piece = self.buff.readline(limit - n)
            parts.append(piece)
            n += len(piece)
            if piece.endswith(b"\n"):
                break
        line = b"".join(parts)
        if capped:
            if n > MAX_HEADER_LINE:
                raise InputDamage("header_too_long", f"a header line longer than {MAX_HEADER_LINE} bytes: "
                                  f"{short(line[:80])}")
            self.block_bytes = 0 if not line.strip() else self.block_bytes + n
            if self.block_bytes > MAX_HEADER_BLOCK:
                raise InputDamage("header_too_long", f"a header block longer than {MAX_HEADER_BLOCK} bytes")
        return line


class _Records(ArchiveIterator):
    """warcio's record iterator on a `_CappedReader`: a Content-Length that disagrees with the record's bytes
    is counted (not written to stderr) and reading resumes at the next line that starts a WARC record."""

    def __init__(self, stream):
        super().__init__(stream, arc2warc=True, check_digests=False)
        self.reader = _CappedReader(self.fh)
        self.mismatches = 0
        self.trailer = b""  # the blank lines after the last record

    def _next_record(self, next_line):
        # warcio reads an EOFError while parsing as "no more records": right at a record boundary it is, but
        # inside a record's headers (the HTTP ones are parsed here too) the file was cut.
        start = self.reader.num_read - self.reader.rem_length()
        try:
            return super()._next_record(next_line)
        except EOFError:
            if next_line or self.reader.num_read - self.reader.rem_length() > start:
                raise InputDamage("truncated_file", "the file ends inside a record's headers") from None
            raise

    def _consume_blanklines(self):
        empty_size, self.trailer = 0, b""
        while True:
            line = self.reader.readline(_CHUNK, capped=False)  # a long line here is payload: a mismatch
            if not line:
                return None, empty_size
            if line.strip():
                if self.trailer:
                    return line, empty_size  # the next record
                break
            empty_size += len(line)
            self.trailer += line[:8]
        # A record not followed by a blank line: its Content-Length is wrong. Skip to the next WARC record.
        self.mismatches += 1
        while line and not line.startswith(b"WARC/"):
            empty_size += len(line)
            line = self.reader.readline(_CHUNK, capped=False)
        return (line or None), empty_size


def _warc_page(record, file_path: str, position: int, conf: ReadConf, qualify: bool) -> Page | Skip:
    headers = record.rec_headers
    url = headers.get_header("WARC-Target-URI") or ""
    rid = headers.get_header("WARC-Record-ID")
    if not rid or _is_arc(file_path):  # warcio invents random ids when converting ARC records
        rid = fallback_id(file_path, position)
    elif qualify:
        rid = qualified_id(file_path, rid)
    date = headers.get_header("WARC-Date") or ""
    if record.rec_type == "conversion":
        if record.length is not None and record.length > conf.max_record_bytes:
            return Skip("too_large", url, rid, f">{conf.max_record_bytes} bytes")
        payload = record.content_stream().read(conf.max_record_bytes + 1)
        text, _ = decode_html(payload, headers.get_header("Content-Type"))
        return Page(rid, url, date, file_path, text=text)
    http = record.http_headers
    if http is None:
        return Skip("no_http_headers", url, rid)
    status = http.get_statuscode()
    if status != "200":
        return Skip(f"http_status_{short(status, 40) or 'missing'}", url, rid)
    content_type = http.get_header("Content-Type")
    mime = _mime(headers.get_header("WARC-Identified-Payload-Type")) or _mime(content_type)
    # Decide on the raw size first: a chunked or compressed payload is decoded into memory by warcio.
    if record.payload_length is not None and record.payload_length > conf.max_record_bytes:
        return Skip("too_large", url, rid, f">{conf.max_record_bytes} bytes")
    payload = record.content_stream().read(conf.max_record_bytes + 1)
    if len(payload) > conf.max_record_bytes:
        return Skip("too_large", url, rid, f">{conf.max_record_bytes} bytes")
    if mime not in conf.allowed_mime_types and not (not mime and _looks_like_html(payload)):
        return Skip("not_html", url, rid, short(mime, 80) or "no content type")
    if not payload.strip():
        return Skip("empty_payload", url, rid)
    html, encoding = decode_html(payload, content_type)
    return Page(rid, url, date, file_path, html=html, encoding=encoding)


def _open_archive(uri: str, conf: ReadConf):
    """Open a WARC/ARC/WET file after checking its first bytes; returns the decompressed byte stream."""
    raw = _open(uri, conf)
    try:
        head = raw.read(_CHUNK)
        if not head:
            raise InputDamage("empty_file", "0 bytes")
        stream = _Gunzip(raw, head) if head.startswith(GZIP_MAGIC) else _Prefixed(raw, head)
        first = stream.read(64)
        if not first:
            raise InputDamage("empty_file", "a gzip stream with no content")
        start = first.lstrip(b"\r\n")
        if not start.startswith((b"WARC/", b"filedesc://")) and not (_is_arc(uri) and b"://" in start[:32]) \
                and not (len(first) < 64 and b"WARC/".startswith(start)):
            what = "gzip content" if isinstance(stream, _Gunzip) else "file"
            raise InputDamage("not_a_crawl_file", f"{what} starts with {first[:16]!r}, not WARC/ or an ARC header")
        return raw, stream, first
    except BaseException:
        raw.close()
        raise


class _Rewound:
    """The decompressed stream with the bytes read for the format check put back in front."""

    def __init__(self, stream, first: bytes):
        self.stream, self.first = stream, first

    def read(self, size: int = -1) -> bytes:
        if self.first:
            data, self.first = self.first, b""
            return data
        return self.stream.read(size)

    def tell(self) -> int:
        return self.stream.tell()


def _record_complete(record, archive: _Records, expect_trailer: bool) -> tuple[str, str] | None:
    """Why a record that warcio returned is not whole, or None. Called after the record was read to its end."""
    if getattr(record.raw_stream, "limit", 0) > 0:
        return "truncated_file", f"the file ends {record.raw_stream.limit} bytes before the record's Content-Length"
    if expect_trailer and archive.reader.at_eof and archive.next_line is None and archive.trailer.count(b"\n") < 2:
        return "truncated_file", "the file ends before the blank lines that close the last record"
    return None


def _iter_warc(uri: str, conf: ReadConf, want: tuple[str, ...], qualify: bool) -> Iterator[Page | Skip]:
    raw, stream, first = _open_archive(uri, conf)
    is_warc = first.lstrip(b"\r\n").startswith(b"WARC/")
    archive = _Records(_Rewound(stream, first))
    records = iter(archive)
    position = 0
    try:
        while True:
            try:
                record = next(records)
            except StopIteration:
                return
            except InputDamage:
                raise
            except Exception as e:  # noqa: BLE001 - a record that cannot be parsed ends this file, counted
                if archive.reader.at_eof:
                    raise InputDamage("truncated_file", f"the file ends inside record {position + 1}: "
                                      f"{type(e).__name__}: {short(e)}") from None
                raise InputDamage("read_error", f"after {position} records: {type(e).__name__}: {short(e)}") \
                    from None
            position += 1
            length = record.rec_headers.get_header("Content-Length")
            if length is None or not length.isdigit():  # without it the record's end cannot be found
                if archive.reader.at_eof:
                    raise InputDamage("truncated_file", f"the file ends inside the headers of record {position}")
                raise InputDamage("read_error", f"record {position} has no valid Content-Length "
                                  f"({short(length, 40)})")
            mismatches = archive.mismatches
            if record.rec_type not in want:
                item: Page | Skip = Skip(f"record_type_{short(record.rec_type, 40)}")
            else:
                try:
                    item = _warc_page(record, uri, position, conf, qualify)
                except InputDamage:
                    raise
                except Exception as e:  # noqa: BLE001 - one bad record must not end the job
                    item = Skip("bad_record", detail=f"record {position}: {type(e).__name__}: {short(e)}")
            try:
                archive.read_to_end()  # reads the blank lines after the record: how it ended is known now
            except InputDamage as e:
                if e.reason == "truncated_file":  # the file ends after the record, which was read whole
                    yield item
                raise  # corrupt data (a bad CRC) may be inside this record: it is not kept
            problem = _record_complete(record, archive, expect_trailer=is_warc)
            if problem is None and archive.mismatches > mismatches:
                problem = ("content_length_mismatch", f"record {position} is not followed by a blank line")
            if problem is not None:
                reason, detail = problem
                if isinstance(item, Skip) and item.reason.startswith("record_type_"):
                    yield item  # the record still counts under its type; the damage is counted on its own
                    item = Skip(reason)
                yield Skip(reason, item.url, item.id, f"record {position}: {detail}")
                if reason == "truncated_file":
                    return
                continue
            yield item
    finally:
        archive.close()
        raw.close()


# ------------------------------------------------------------------------------------------- JSONL, Parquet

_SURROGATE = re.compile("[\ud800-\udfff]")


def _clean_str(value: str) -> str:
    """A str that can be encoded as UTF-8: lone surrogates (valid in JSON, not in UTF-8) become U+FFFD."""
    return _SURROGATE.sub("\ufffd", value) if _SURROGATE.search(value) else value


def _as_str(value) -> str:
    """Coerce a scalar field (url, date, id) to str: numbers are written out, anything else is dropped."""
    if isinstance(value, str):
        return _clean_str(value)
    if isinstance(value, bytes):
        return _clean_str(value.decode("utf-8", "replace"))
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return str(value) if hasattr(value, "isoformat") else ""  # dates and timestamps from Parquet


def _row_page(row: dict, uri: str, position: int) -> Page | Skip:
    meta = row.get("metadata") if isinstance(row.get("metadata"), dict) else {}
    url = _as_str(row.get("url")) or _as_str(meta.get("url"))
    source_id = _as_str(row.get("id"))
    rid = qualified_id(uri, source_id) if source_id else fallback_id(uri, position)
    text = row.get("text")
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if not isinstance(text, str):
        return Skip("no_text_field", url, rid)
    date = _as_str(row.get("date")) or _as_str(meta.get("date")) or _as_str(row.get("created"))
    return Page(rid, url, date, uri, text=_clean_str(text))


def _lines(stream, limit: int) -> Iterator[bytes | None]:
    """Lines of a byte stream in linear time; a line longer than `limit` bytes is skipped and given as None."""
    buf, skipping = b"", False
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            if skipping or len(buf) > limit:
                yield None
            elif buf:
                yield buf
            return
        buf += chunk
        start = 0
        while True:
            end = buf.find(b"\n", start)
            if end < 0:
                break
            if skipping or end + 1 - start > limit:
                skipping = False
                yield None
            else:
                yield buf[start:end + 1]
            start = end + 1
        buf = buf[start:]
        if len(buf) > limit:
            buf, skipping = b"", True


def _iter_jsonl(uri: str, conf: ReadConf, qualify: bool) -> Iterator[Page | Skip]:
    del qualify  # JSONL/Parquet ids are always qualified: source ids are unique within their file only
    raw = _open(uri, conf)
    try:
        head = raw.read(_CHUNK)
        stream = _Gunzip(raw, head) if head.startswith(GZIP_MAGIC) else _Prefixed(raw, head)
        first = stream.read(_CHUNK)
        if not first:
            raise InputDamage("empty_file", "0 bytes" if not head else "a gzip stream with no content")
        start = first.lstrip(b"\xef\xbb\xbf \t\r\n")
        if start and not start.startswith(b"{"):
            raise InputDamage("not_jsonl", f"starts with {first[:16]!r}, not a JSON object")
        # A JSON-escaped text of max_text_chars characters takes up to 6 bytes per character.
        limit = 6 * conf.max_text_chars + (1 << 16)
        position = 0
        for line in _lines(_Rewound(stream, first), limit):
            position += 1
            if line is None:
                yield Skip("too_large", id=fallback_id(uri, position), detail=f"line {position}: over {limit} bytes")
                continue
            if not line.strip():
                continue
            try:
                row = json.loads(line.decode("utf-8", "replace"))
            except (ValueError, RecursionError) as e:
                yield Skip("bad_json", detail=f"line {position}: {type(e).__name__}: {short(e)}")
                continue
            if not isinstance(row, dict):
                yield Skip("bad_json", detail=f"line {position}: not an object")
                continue
            yield _row_page(row, uri, position)
    finally:
        raw.close()


def _iter_parquet(uri: str, conf: ReadConf, qualify: bool) -> Iterator[Page | Skip]:
    del qualify
    with _open(uri, conf, seekable=True) as raw:
        try:
            pf = pq.ParquetFile(raw)
        except Exception as e:  # noqa: BLE001
            yield Skip("read_error", detail=f"{uri}: {type(e).__name__}: {short(e)}")
            return
        if "text" not in pf.schema_arrow.names:
            yield Skip("read_error", detail=f"{uri}: no `text` column")
            return
        position = 0
        for batch in pf.iter_batches(batch_size=2048):
            for row in batch.to_pylist():
                position += 1
                yield _row_page(row, uri, position)


def iter_pages(uri: str, conf: ReadConf, qualify_ids: bool = False) -> Iterator[Page | Skip]:
    """All pages of one input file, in file order. A file that cannot be opened (missing, no permission,
    unreachable), is not of its format, or ends early gives one skip with the reason (see FILE_ENDED_EARLY)
    after the pages read before the damage; the job goes on. A file with nothing in it gives `empty_file`.

    `qualify_ids`: prefix WARC record ids with the file's key (set when the same file is listed twice)."""
    fmt = input_format(uri)
    if fmt == "warc":
        pages = _iter_warc(uri, conf, ("response",), qualify_ids)
    elif fmt == "wet":
        pages = _iter_warc(uri, conf, ("conversion",), qualify_ids)
    elif fmt == "jsonl":
        pages = _iter_jsonl(uri, conf, qualify_ids)
    else:
        pages = _iter_parquet(uri, conf, qualify_ids)
    produced = 0
    try:
        for item in pages:
            produced += 1
            yield item
    except InputDamage as e:
        produced += 1
        yield Skip(e.reason, detail=f"{uri}: {short(e)}")
    except Exception as e:  # noqa: BLE001 - recorded in the stats with the file and error
        produced += 1
        yield Skip("read_error", detail=f"{uri}: {type(e).__name__}: {short(e)}")
    if not produced:
        yield Skip("empty_file", detail=f"{uri}: no records")
