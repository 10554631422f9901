"""Remote inputs for real: an HTTP server on 127.0.0.1 that serves WARC files with Range support, drops
connections mid-transfer, or answers 503 before it answers; `corpus build` reads through it with retries and
records what stays unreadable. Also `--sample` / `--limit` on a listing."""

from __future__ import annotations

import hashlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import shared_data

from corpus.config import load_config
from corpus.io.formats import InputError
from corpus.io.listing import expand_inputs
from corpus.io.remote import HttpRangeReader, RemoteChanged, RemoteDeadline, open_input
from corpus.steps.build import run_build

FAST_RETRY = ["read.remote_retries=3", "read.retry_backoff_seconds=0.05"]


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path):
        super().__init__(("127.0.0.1", 0), Handler)
        self.root = root
        self.requests: list[tuple[str, str | None]] = []
        self.failures: dict[str, int] = {}  # path → remaining failures (503 first, then dropped bodies)
        self.replace_after_drop: dict[str, bytes] = {}  # path → new content once a transfer was dropped
        self.drip: set[str] = set()  # paths sent a few bytes at a time, slowly
        self.lock = threading.Lock()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{path}"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        srv: Server = self.server
        name = self.path.lstrip("/")
        rng = self.headers.get("Range")
        with srv.lock:
            srv.requests.append((name, rng))
            fail = srv.failures.get(name, 0)
            if fail:
                srv.failures[name] = fail - 1
        path = srv.root / name.split("?")[0]
        if not path.is_file():
            self.send_error(404)
            return
        if fail and rng is None and fail % 2:  # odd counts: a transient 503 before any byte
            self.send_error(503)
            return
        data = path.read_bytes()
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        body = data[start:]
        self.send_response(206 if rng else 200)
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", '"' + hashlib.sha1(data).hexdigest() + '"')
        self.end_headers()
        if fail:  # announce the whole body, send a third of it, hang up
            self.wfile.write(body[: len(body) // 3])
            self.wfile.flush()
            self.close_connection = True
            new = srv.replace_after_drop.pop(name, None)
            if new is not None:  # the object is replaced before the client resumes
                path.write_bytes(new)
            return
        if name in srv.drip:
            for i in range(0, len(body), 64):
                self.wfile.write(body[i:i + 64])
                self.wfile.flush()
                time.sleep(0.05)
            return
        self.wfile.write(body)


@pytest.fixture
def server(tmp_path):
    srv = Server(tmp_path)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _copy(src: Path, dst: Path) -> Path:
    dst.write_bytes(src.read_bytes())
    return dst


def test_http_reader_resumes_dropped_transfers_with_range_requests(server, tmp_path):
    src = _copy(shared_data("warc", "crawls", "sample-0000.warc.gz"), tmp_path / "a.warc.gz")
    server.failures["a.warc.gz"] = 4  # 503, dropped body, 503, dropped body, then fine
    with open_input(server.url("a.warc.gz"), retries=6, backoff=0.0) as f:
        got = f.read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(src.read_bytes()).digest()
    ranges = [r for name, r in server.requests if name == "a.warc.gz" and r]
    assert ranges, "a dropped transfer must resume with a Range request, not start over"


def test_http_reader_does_not_splice_an_object_that_changed_between_attempts(server, tmp_path):
    src = _copy(shared_data("warc", "crawls", "sample-0000.warc.gz"), tmp_path / "a.warc.gz")
    server.failures["a.warc.gz"] = 2  # 503, then a dropped body after which the file is replaced
    server.replace_after_drop["a.warc.gz"] = shared_data("warc", "crawls", "sample-0001.warc.gz").read_bytes()
    with pytest.raises(RemoteChanged, match="changed while it was read"), \
            open_input(server.url("a.warc.gz"), retries=6, backoff=0.0) as f:
        f.read()
    assert src.read_bytes() != shared_data("warc", "crawls", "sample-0000.warc.gz").read_bytes()
    from corpus.config import ReadConf
    from corpus.io.readers import Skip, iter_pages

    # Through the reader, on another name (the first attempt's handler may still be running).
    _copy(shared_data("warc", "crawls", "sample-0001.warc.gz"), tmp_path / "b.warc.gz")
    server.failures["b.warc.gz"] = 2
    server.replace_after_drop["b.warc.gz"] = shared_data("warc", "crawls", "sample-0000.warc.gz").read_bytes()
    items = list(iter_pages(server.url("b.warc.gz"), ReadConf(remote_retries=6, retry_backoff_seconds=0.0)))
    assert isinstance(items[-1], Skip) and items[-1].reason == "read_error" and "changed" in items[-1].detail


def test_http_reader_has_an_overall_deadline_per_file(server, tmp_path):
    _copy(shared_data("warc", "crawls", "sample-0000.warc.gz"), tmp_path / "slow.warc.gz")
    server.drip.add("slow.warc.gz")  # 64 bytes every 50 ms: each read is quick, the whole file takes minutes
    started = time.monotonic()
    with pytest.raises(RemoteDeadline, match="deadline"), \
            open_input(server.url("slow.warc.gz"), retries=2, backoff=0.0, deadline_seconds=1.0) as f:
        f.read()
    assert time.monotonic() - started < 60


def test_http_reader_seeks_for_parquet_footers(server, tmp_path):
    import pyarrow as pa

    pq.write_table(pa.table({"text": ["one", "two", "three"]}), tmp_path / "t.parquet")
    reader = HttpRangeReader(server.url("t.parquet"), retries=1, backoff=0.0)
    assert pq.ParquetFile(reader).read().column("text").to_pylist() == ["one", "two", "three"]


def test_missing_remote_file_fails_after_the_retries_with_the_attempt_count(server):
    with pytest.raises(OSError, match="after 3 attempts") as err:
        HttpRangeReader(server.url("nope.warc.gz"), retries=2, backoff=0.0)
    assert "404" in str(err.value)
    assert sum(name == "nope.warc.gz" for name, _ in server.requests) == 3


def test_build_reads_over_http_retries_flaky_files_and_records_missing_ones(spark, server, tmp_path):
    src = shared_data("warc", "crawls", "sample-0001.warc.gz")
    _copy(src, tmp_path / "good.warc.gz")
    server.failures["good.warc.gz"] = 3
    remote = tmp_path / "remote"
    stats = run_build(spark, [server.url("good.warc.gz"), server.url("gone.warc.gz")], str(remote),
                      load_config(overrides=FAST_RETRY))
    assert stats["files"] == 2
    assert stats["stages"]["read"]["removed"]["read_error"] == 1
    assert any("gone.warc.gz" in e and "after 4 attempts" in e for e in stats["errors"])

    local = tmp_path / "local"
    run_build(spark, [str(src)], str(local), load_config(overrides=FAST_RETRY))
    remote_docs = pq.read_table(remote / "docs").sort_by("id").drop_columns(["file_path"])
    local_docs = pq.read_table(local / "docs").sort_by("id").drop_columns(["file_path"])
    assert remote_docs.num_rows > 0 and remote_docs.equals(local_docs)


def test_sample_and_limit_on_a_listing_are_deterministic(tmp_path):
    listing = tmp_path / "warc.paths"
    names = [f"crawl-data/CC-MAIN-2024-10/segments/{i}/warc/CC-{i:05d}.warc.gz" for i in range(400)]
    listing.write_text("\n".join(names) + "\n")
    every = expand_inputs([str(listing)])
    assert len(every) == 400 and every[0].startswith("https://data.commoncrawl.org/crawl-data/")
    tenth = expand_inputs([str(listing)], sample=0.1)
    assert 20 <= len(tenth) <= 60 and set(tenth) <= set(every)
    assert expand_inputs([str(listing)], sample=0.1) == tenth
    # A file's membership depends on its own name only: sampling a sub-listing picks the same files.
    half = tmp_path / "half.paths"
    half.write_text("\n".join(names[:200]) + "\n")
    assert expand_inputs([str(half)], sample=0.1) == [u for u in tenth if u in set(expand_inputs([str(half)]))]
    assert expand_inputs([str(listing)], sample=0.1, limit=5) == tenth[:5]
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(InputError, match="--sample"):
            expand_inputs([str(listing)], sample=bad)
    with pytest.raises(InputError, match="--limit"):
        expand_inputs([str(listing)], limit=0)
