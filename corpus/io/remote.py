"""Opening input files, local or remote, with retries (executor side).

`http(s)://` (Common Crawl's public endpoint) is read by `HttpRangeReader`, standard library only: when a
connection fails or ends early, it waits and re-requests from the byte it had reached (HTTP Range), so a long
WARC download survives transient failures without starting over. A resumed transfer must come from the same
object: its ETag / Last-Modified / size are compared with the first response's, and a change fails the file
(`RemoteChanged`) instead of splicing two versions. Each file has an overall deadline (`read.remote_deadline_seconds`)
covering all attempts, waits and slow transfers (`RemoteDeadline`). Other schemes (s3a://, gs://, hdfs://) go
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


class RemoteReadError(Exception):
    """A remote read that must not be retried (not an OSError, so `with_retries` lets it through)."""


class RemoteChanged(RemoteReadError):
    """The object changed between the first request and a resumed one."""


class RemoteDeadline(RemoteReadError):
    """The file's overall deadline passed."""


def with_retries(fn: Callable[[], T], retries: int, backoff: float, what: str,
                 sleep: Callable[[float], None] = time.sleep, deadline: float | None = None) -> T:
    """fn(), tried 1 + retries times with exponential backoff; the last error is raised with the attempt count.
    `deadline` (time.monotonic() value): no wait may end after it."""
    for attempt in range(retries + 1):
        try:
            return fn()
        # HTTPError/URLError are OSErrors; a body cut short raises http.client.IncompleteRead.
        except (OSError, EOFError, ValueError, http.client.HTTPException) as e:
            if attempt == retries:
                raise OSError(f"{what}: failed after {retries + 1} attempts: {type(e).__name__}: {e}") from e
            wait = backoff * 2**attempt
            if deadline is not None and time.monotonic() + wait > deadline:
                raise RemoteDeadline(f"{what}: deadline reached after {attempt + 1} attempts: "
                                     f"{type(e).__name__}: {e}") from e
            sleep(wait)
    raise AssertionError("unreachable")


class HttpRangeReader(io.RawIOBase):
    """A seekable, read-only HTTP(S) file that resumes interrupted transfers with Range requests."""

    def __init__(self, url: str, retries: int = 3, backoff: float = 2.0, sleep: Callable[[float], None] = time.sleep,
                 deadline_seconds: float | None = None):
        self.url, self.retries, self.backoff, self._sleep = url, retries, backoff, sleep
        self.deadline = None if deadline_seconds is None else time.monotonic() + deadline_seconds
        self.pos = 0
        self.size: int | None = None
        self.version: tuple[str | None, str | None] | None = None  # (ETag, Last-Modified) of the first response
        self._resp = None
        self._retry(self._connect)  # a missing file fails here, on open

    def _retry(self, fn: Callable[[], T]) -> T:
        return with_retries(fn, self.retries, self.backoff, self.url, self._sleep, self.deadline)

    def _timeout(self) -> float:
        if self.deadline is None:
            return TIMEOUT_SECONDS
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise RemoteDeadline(f"{self.url}: deadline reached at byte {self.pos}")
        return min(TIMEOUT_SECONDS, max(left, 0.5))

    def _connect(self) -> None:
        self._drop()
        headers = {"User-Agent": USER_AGENT}
        if self.pos:
            headers["Range"] = f"bytes={self.pos}-"
        resp = urllib.request.urlopen(urllib.request.Request(self.url, headers=headers), timeout=self._timeout())
        if self.pos and resp.status != 206:  # the server ignored Range: it would resend from byte 0
            resp.close()
            raise OSError(f"{self.url}: server does not support range requests (status {resp.status})")
        self._check_version(resp)
        if self.size is None:
            length = resp.headers.get("Content-Length")
            self.size = int(length) if length is not None and not self.pos else self.size
        self._resp = resp

    def _check_version(self, resp) -> None:
        """Resume only the object first read: same ETag, else same Last-Modified, and the same total size."""
        version = (resp.headers.get("ETag"), resp.headers.get("Last-Modified"))
        if self.version is None:
            self.version = version
            return
        (etag0, modified0), (etag, modified) = self.version, version
        total = (resp.headers.get("Content-Range") or "").rpartition("/")[2]
        changed = (etag0 and etag and etag0 != etag) or (not (etag0 and etag) and modified0 and modified
                                                        and modified0 != modified)
        if changed or (total.isdigit() and self.size is not None and int(total) != self.size):
            resp.close()
            raise RemoteChanged(f"{self.url}: the object changed while it was read (ETag {etag0} → {etag}, "
                                f"Last-Modified {modified0} → {modified}, size {self.size} → {total or '?'}); "
                                f"not splicing two versions")

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
            self._timeout()  # raises once the deadline has passed, however slowly the bytes come
            n = self._resp.readinto(buffer)
            if n == 0 and self.size is not None and self.pos < self.size:
                self._drop()
                raise EOFError(f"connection ended at byte {self.pos} of {self.size}")
            return n

        try:
            n = self._retry(attempt)
        except (OSError, RemoteReadError):
            self._drop()
            raise
        self.pos += n
        return n

    def close(self) -> None:
        self._drop()
        super().close()


def open_http(url: str, retries: int, backoff: float, deadline_seconds: float | None = None) -> io.BufferedReader:
    return io.BufferedReader(HttpRangeReader(url, retries, backoff, deadline_seconds=deadline_seconds),
                             buffer_size=1 << 20)


def is_http(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def open_input(uri: str, retries: int = 3, backoff: float = 2.0, seekable: bool = False,
               deadline_seconds: float | None = None):
    """Open an input file for binary reading, local or remote, retried; the caller closes it.

    http(s) through `HttpRangeReader`; s3:// (and Hadoop's s3a://), gs://, hdfs:// through pyarrow's filesystems
    (no extra package; S3 clients honour the AWS credential chain and AWS_ENDPOINT_URL); other schemes through
    fsspec. `seekable` asks for random access (Parquet footers); `deadline_seconds` bounds the whole read of an
    http(s) file."""
    from corpus.io.rundir import arrow_filesystem, has_arrow_filesystem

    if not is_remote(uri):
        return open(uri.removeprefix("file://"), "rb")
    if is_http(uri):
        return open_http(uri, retries, backoff, deadline_seconds)
    if has_arrow_filesystem(uri):
        fs, path = arrow_filesystem(uri)
        opener = fs.open_input_file if seekable else fs.open_input_stream
        return with_retries(lambda: opener(path), retries, backoff, uri)
    return with_retries(lambda: fsspec.open(uri, "rb").open(), retries, backoff, uri)
