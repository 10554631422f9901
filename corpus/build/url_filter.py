"""URL blocklist filter with datatrove's URLFilter semantics and its bundled lists.

Same checks, order and reason strings as `datatrove.pipeline.filters.URLFilter` (tested for parity),
but the lists are read straight from datatrove's package assets and tldextract never touches the network:
it uses the public-suffix snapshot bundled in the tldextract wheel.
"""

from __future__ import annotations

import os
import re
import tarfile
from functools import cache

import ahocorasick

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


@cache
def _blocklists() -> tuple[frozenset[str], frozenset[str]]:
    """(domains, urls) from datatrove's url_filterblacklistsv0_3_0.tar.gz, read in memory, not extracted."""
    out: dict[str, set[str]] = {"domains": set(), "urls": set()}
    with tarfile.open(os.path.join(_assets_dir(), "url_filterblacklistsv0_3_0.tar.gz"), "r:gz") as tar:
        for member in tar.getmembers():
            name = os.path.basename(member.name)
            if name in out and member.isfile():
                for raw in tar.extractfile(member).read().decode("utf-8", "replace").splitlines(keepends=True):
                    if raw and raw[0] != "#":
                        out[name].add(raw.strip())
    return frozenset(out["domains"]), frozenset(out["urls"])


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
        if use_integrated_lists:
            bl_domains, bl_urls = _blocklists()
            domains |= bl_domains
            urls |= bl_urls
            self.banned_words = _word_list("banned_words.txt")
            self.banned_subwords = _word_list("banned_subwords.txt")
            self.soft_banned_words = _word_list("soft_banned_words.txt")
        self.domains = frozenset(domains)
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
