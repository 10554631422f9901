"""Opening input files, local or remote, with retries (executor side).

`http(s)://` (Common Crawl's public endpoint) is read by `HttpRangeReader`, standard library only: when a
connection fails or ends early, it waits and re-requests from the byte it had reached (HTTP Range), so a long
WARC download survives transient failures without starting over. Other schemes (s3a://, gs://, hdfs://) go
through fsspec, whose clients retry their own reads; opening them is retried here. After the last attempt the
error propagates, and the build records the file as one `read_error` — the job goes on.
"""

from __future__ import annotations

import http.client
import io
import time
import urllib.request
from collections.abc import Callable
from typing import TypeVar

import fsspec

from corpus.io.formats import is_remote

T = TypeVar("T")
USER_AGENT = "corpus-builder/0.1"
TIMEOUT_SECONDS = 60


def with_retries(fn: Callable[[], T], retries: int, backoff: float, what: str,
                 sleep: Callable[[float], None] = time.sleep) -> T:
    """fn(), tried 1 + retries times with exponential backoff; the last error is raised with the attempt count."""
    for attempt in range(retries + 1):
        try:
            return fn()
        # HTTPError/URLError are OSErrors; a body cut short raises http.client.IncompleteRead.
        except (OSError, EOFError, ValueError, http.client.HTTPException) as e:
            if attempt == retries:
                raise OSError(f"{what}: failed after {retries + 1} attempts: {type(e).__name__}: {e}") from e
            sleep(backoff * 2**attempt)
    raise AssertionError("unreachable")


class HttpRangeReader(io.RawIOBase):
    """A seekable, read-only HTTP(S) file that resumes interrupted transfers with Range requests."""

    def __init__(self, url: str, retries: int = 3, backoff: float = 2.0, sleep: Callable[[float], None] = time.sleep):
        self.url, self.retries, self.backoff, self._sleep = url, retries, backoff, sleep
        self.pos = 0
        self.size: int | None = None
        self._resp = None
        with_retries(self._connect, retries, backoff, url, sleep)  # a missing file fails here, on open

    def _connect(self) -> None:
        self._drop()
        headers = {"User-Agent": USER_AGENT}
        if self.pos:
            headers["Range"] = f"bytes={self.pos}-"
        resp = urllib.request.urlopen(urllib.request.Request(self.url, headers=headers), timeout=TIMEOUT_SECONDS)
        if self.pos and resp.status != 206:  # the server ignored Range: it would resend from byte 0
            resp.close()
            raise OSError(f"{self.url}: server does not support range requests (status {resp.status})")
        if self.size is None:
            length = resp.headers.get("Content-Length")
            self.size = int(length) if length is not None and not self.pos else self.size
        self._resp = resp

    def _drop(self) -> None:
        if self._resp is not None:
            try:
                self._resp.close()
            except OSError:
                pass
            self._resp = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_END:
            if self.size is None:
                raise OSError(f"{self.url}: size unknown (no Content-Length), cannot seek from the end")
            target = self.size + offset
        else:
            target = offset if whence == io.SEEK_SET else self.pos + offset
        if target != self.pos:
            self.pos = max(0, target)
            self._drop()  # the next read reconnects at the new position
        return self.pos

    def readinto(self, buffer) -> int:
        want = len(buffer)
        if want == 0 or (self.size is not None and self.pos >= self.size):
            return 0

        def attempt() -> int:
            if self._resp is None:
                self._connect()
            n = self._resp.readinto(buffer)
            if n == 0 and self.size is not None and self.pos < self.size:
                self._drop()
                raise EOFError(f"connection ended at byte {self.pos} of {self.size}")
            return n

        try:
            n = with_retries(attempt, self.retries, self.backoff, self.url, self._sleep)
        except OSError:
            self._drop()
            raise
        self.pos += n
        return n

    def close(self) -> None:
        self._drop()
        super().close()


def open_http(url: str, retries: int, backoff: float) -> io.BufferedReader:
    return io.BufferedReader(HttpRangeReader(url, retries, backoff), buffer_size=1 << 20)


def is_http(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def open_input(uri: str, retries: int = 3, backoff: float = 2.0, seekable: bool = False):
    """Open an input file for binary reading, local or remote, retried; the caller closes it.

    http(s) through `HttpRangeReader`; s3:// (and Hadoop's s3a://), gs://, hdfs:// through pyarrow's filesystems
    (no extra package; S3 clients honour the AWS credential chain and AWS_ENDPOINT_URL); other schemes through
    fsspec. `seekable` asks for random access (Parquet footers)."""
    from corpus.io.rundir import arrow_filesystem, has_arrow_filesystem

    if not is_remote(uri):
        return open(uri.removeprefix("file://"), "rb")
    if is_http(uri):
        return open_http(uri, retries, backoff)
    if has_arrow_filesystem(uri):
        fs, path = arrow_filesystem(uri)
        opener = fs.open_input_file if seekable else fs.open_input_stream
        return with_retries(lambda: opener(path), retries, backoff, uri)
    return with_retries(lambda: fsspec.open(uri, "rb").open(), retries, backoff, uri)
