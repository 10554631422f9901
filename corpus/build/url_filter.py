"""URL blocklist filter with datatrove's URLFilter semantics and its bundled lists.

Same checks, order and reason strings as `datatrove.pipeline.filters.URLFilter` (tested for parity),
but the lists are read straight from datatrove's package assets and tldextract never touches the network:
it uses the public-suffix snapshot bundled in the tldextract wheel.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import tarfile
import tempfile
from functools import cache

import ahocorasick
import numpy as np
import xxhash

from corpus.build.stage import Doc, Drop, Stage
from corpus.config import PipelineConf
from corpus.io.offline_tldextract import offline_tld_extractor

_NON_ALNUM = re.compile(r"[^a-zA-Z0-9]+")


def _normalize(text: str) -> str:
    return _NON_ALNUM.sub("", text).lower()


def _assets_dir() -> str:
    from datatrove.utils._import_utils import ASSETS_PATH

    return ASSETS_PATH


def _word_list(name: str) -> set[str]:
    with open(os.path.join(_assets_dir(), name), encoding="utf-8") as f:
        return {_normalize(x) for x in f if x[0] != "#"}


BLOCKLIST_TAR = "url_filterblacklistsv0_3_0.tar.gz"


def _read_blocklists() -> tuple[frozenset[str], frozenset[str]]:
    """(domains, urls) from datatrove's url_filterblacklistsv0_3_0.tar.gz, read in memory, not extracted."""
    out: dict[str, set[str]] = {"domains": set(), "urls": set()}
    with tarfile.open(os.path.join(_assets_dir(), BLOCKLIST_TAR), "r:gz") as tar:
        for member in tar.getmembers():
            name = os.path.basename(member.name)
            if name in out and member.isfile():
                for raw in tar.extractfile(member).read().decode("utf-8", "replace").splitlines(keepends=True):
                    if raw and raw[0] != "#":
                        out[name].add(raw.strip())
    return frozenset(out["domains"]), frozenset(out["urls"])


_blocklists = cache(_read_blocklists)  # the plain sets, for tests and tools; workers use _mapped_blocklists


def cache_dir() -> str:
    """Where per-machine caches live: $CORPUS_CACHE_DIR, else a folder in the system temp dir (executor-local)."""
    return os.environ.get("CORPUS_CACHE_DIR") or os.path.join(tempfile.gettempdir(), "corpus-cache")


class MappedStrings:
    """A read-only set of strings as three memory-mapped arrays: sorted xxh64 hashes, offsets, UTF-8 bytes.

    Why: the integrated domain list has 4.6 M entries; as a Python frozenset it costs ~0.6 GiB in every Python
    worker (~0.9 GiB with the copy a union makes). Mapped files cost ~0.1 GiB of page cache per machine, shared by
    every worker, and only the pages a lookup touches become resident. Membership is exact: a hash hit is
    confirmed against the stored bytes.
    """

    def __init__(self, folder: str):
        self.hashes = np.load(os.path.join(folder, "hashes.npy"), mmap_mode="r")
        self.offsets = np.load(os.path.join(folder, "offsets.npy"), mmap_mode="r")
        self.blob = np.load(os.path.join(folder, "blob.npy"), mmap_mode="r")

    @staticmethod
    def write(strings, folder: str) -> None:
        encoded = [x.encode("utf-8", "surrogatepass") for x in strings]
        hashes = np.fromiter((xxhash.xxh64_intdigest(b) for b in encoded), dtype=np.uint64, count=len(encoded))
        order = np.argsort(hashes, kind="stable")
        lengths = np.fromiter((len(encoded[i]) for i in order), dtype=np.int64, count=len(encoded))
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        np.save(os.path.join(folder, "hashes.npy"), hashes[order])
        np.save(os.path.join(folder, "offsets.npy"), offsets)
        np.save(os.path.join(folder, "blob.npy"), np.frombuffer(b"".join(encoded[i] for i in order), dtype=np.uint8))

    def __len__(self) -> int:
        return len(self.hashes)

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, str):
            return False
        key = item.encode("utf-8", "surrogatepass")
        h = np.uint64(xxhash.xxh64_intdigest(key))
        i = int(np.searchsorted(self.hashes, h))
        while i < len(self.hashes) and self.hashes[i] == h:
            if self.blob[self.offsets[i] : self.offsets[i + 1]].tobytes() == key:
                return True
            i += 1
        return False


class _DomainSet:
    """The mapped integrated list plus the user's extra domains (a small in-memory set)."""

    def __init__(self, mapped: MappedStrings | None, extra: frozenset[str]):
        self.mapped, self.extra = mapped, extra

    def __contains__(self, item: object) -> bool:
        return item in self.extra or (self.mapped is not None and item in self.mapped)


def _mapped_blocklists() -> tuple[MappedStrings, frozenset[str]]:
    """The integrated lists from a per-machine cache keyed by the tar's content hash, built by the first worker
    (under a file lock; the others wait, then map the same files)."""
    tar_path = os.path.join(_assets_dir(), BLOCKLIST_TAR)
    with open(tar_path, "rb") as f:
        key = hashlib.sha256(f.read()).hexdigest()[:24]
    root = cache_dir()
    os.makedirs(root, exist_ok=True)
    final = os.path.join(root, f"url-blocklists-{key}")
    if not os.path.exists(os.path.join(final, "urls.txt")):
        with open(os.path.join(root, f".url-blocklists-{key}.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not os.path.exists(os.path.join(final, "urls.txt")):
                domains, urls = _read_blocklists()
                tmp = tempfile.mkdtemp(prefix=f".url-blocklists-{key}-", dir=root)
                MappedStrings.write(sorted(domains), tmp)
                with open(os.path.join(tmp, "urls.txt"), "w", encoding="utf-8", errors="surrogatepass") as f:
                    f.write("".join(u + "\n" for u in sorted(urls)))  # written last: its presence marks done
                shutil.rmtree(final, ignore_errors=True)
                os.rename(tmp, final)
    with open(os.path.join(final, "urls.txt"), encoding="utf-8", errors="surrogatepass") as f:
        urls = frozenset(line.rstrip("\n") for line in f)
    return MappedStrings(final), urls


class UrlFilter:
    def __init__(
        self,
        soft_word_threshold: int = 2,
        extra_domains: list[str] | None = None,
        extra_urls: list[str] | None = None,
        use_integrated_lists: bool = True,
    ):
        self.soft_word_threshold = soft_word_threshold
        domains = {d.strip() for d in extra_domains or [] if d and d[0] != "#"}
        urls = {u.strip() for u in extra_urls or [] if u and u[0] != "#"}
        self.banned_words: set[str] = set()
        self.banned_subwords: set[str] = set()
        self.soft_banned_words: set[str] = set()
        mapped = None
        if use_integrated_lists:
            mapped, bl_urls = _mapped_blocklists()
            urls |= bl_urls
            self.banned_words = _word_list("banned_words.txt")
            self.banned_subwords = _word_list("banned_subwords.txt")
            self.soft_banned_words = _word_list("soft_banned_words.txt")
        self.domains = _DomainSet(mapped, frozenset(domains))
        self.urls = frozenset(urls)
        self.automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
        for i, word in enumerate(sorted(self.banned_subwords)):
            self.automaton.add_word(word, i)
        if self.banned_subwords:
            self.automaton.make_automaton()
        self.tld = offline_tld_extractor()

    def check(self, url: str) -> str | None:
        """Reason the URL is blocked, or None."""
        info = self.tld(url)
        if info.top_domain_under_public_suffix in self.domains:
            return "domain"
        if info.fqdn in self.domains:
            return "subdomain"
        if url in self.urls:
            return "url"
        # Case-sensitive split, as datatrove does: the word lists are lowercase.
        url_words = set(_NON_ALNUM.split(url))
        if not self.banned_words.isdisjoint(url_words):
            return "hard_blacklisted"
        if len(self.soft_banned_words & url_words) >= self.soft_word_threshold:
            return "soft_blacklisted"
        if self.banned_subwords and next(self.automaton.iter(_normalize(url)), False):
            return "blacklisted_subword"
        return None


class UrlFilterStage(Stage):
    """datatrove's URLFilter on the page's URL (pages without a URL pass, uncounted)."""

    name = "url_filter"
    section = "url_filter"

    def __init__(self, conf: PipelineConf):
        super().__init__(conf)
        u = conf.url_filter
        self.filter = UrlFilter(u.soft_word_threshold, u.extra_domains, u.extra_urls, u.use_integrated_lists)

    def applies(self, doc: Doc) -> bool:
        return bool(doc.page.url)

    def apply(self, doc: Doc) -> Drop | None:
        reason = self.filter.check(doc.page.url)
        return Drop(reason) if reason else None
