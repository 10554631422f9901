"""Word and URL lists of the content filter: C4's bad-words rule over LDNOOBW, the Chinese lexicons by category,
and the illegal-URL list, all read from one local JSONL file (nothing downloads at run time).

The file has one JSON object per line: `term`, `list`, `category`, `lang` (e.g. ../shared/data/content/
wordlists.jsonl.gz, SOURCES.md there). A raw `category` maps to a group (CATEGORY_GROUPS): `obscene` (LDNOOBW,
used by C4's rule), the harm groups `porn`, `weapons`, `terror`, `illegal_url`, and the groups that filter opinions
or ads rather than harm (`politics`, `ads`, `mixed`), which no default enables.

C4's rule is datatrove's `C4BadWordsFilter` (tested for parity): the text is lower-cased; for ja, th and zh any
occurrence of a list word counts, for other languages only an occurrence flanked by a non-word character (`\\W`)
or the text's start/end. datatrove compiles one regex alternation per language; an Aho-Corasick automaton with
the same boundary test finds the same documents without backtracking over hundreds of alternatives.
"""

from __future__ import annotations

import gzip
import json
import os
import re
from collections import defaultdict
from collections.abc import Iterable
from urllib.parse import urlsplit

import ahocorasick

from corpus.config import ConfigError


class ContentFilterError(ConfigError):
    """A content-filter list or model is missing or unreadable; the message names the file and the fix."""


# The raw categories of the shared file (LDNOOBW; konsheng/Sensitive-lexicon's Chinese file names) and their
# group. Unlisted raw categories are their own group, so a user's file may say `porn` directly.
CATEGORY_GROUPS = {
    "obscene": "obscene",
    "色情类型": "porn", "色情词库": "porn",
    "涉枪涉爆": "weapons",
    "暴恐词库": "terror",
    "非法网址": "illegal_url",
    # Opinions, not harm: what a censor removes. Never on by default.
    "反动词库": "politics", "政治类型": "politics", "新思想启蒙": "politics", "GFW补充词库": "politics",
    "贪腐词库": "politics", "民生词库": "politics", "COVID-19词库": "politics",
    "广告类型": "ads",
    # Unsorted lists that mix political terms with everything else.
    "零时-Tencent": "mixed", "网易前端过滤敏感词库": "mixed", "补充词库": "mixed", "其他词库": "mixed",
}
HARM_GROUPS = ("porn", "weapons", "terror", "illegal_url")
OPINION_GROUPS = ("politics", "ads", "mixed")
LEXICON_GROUPS = HARM_GROUPS + OPINION_GROUPS

# C4 / datatrove's allowlist: common subwords of languages without spaces. datatrove removes the union from every
# language's list; so do we (parity).
BADWORDS_ALLOWLIST = {"ja": {"sm", "グロ", "女の子"}, "zh": {"性"}}
NO_BOUNDARY_LANGS = ("ja", "th", "zh")
_WORD_CHAR = re.compile(r"\w")


def read_wordlists(path: str) -> dict[tuple[str, str], set[str]]:
    """{(group, lang): terms} from a JSONL(.gz) file; ContentFilterError when missing or malformed."""
    if not path:
        raise ContentFilterError("quality.content_filter.wordlists: no word-list file given")
    if not os.path.isfile(path):
        raise ContentFilterError(f"quality.content_filter.wordlists: word-list file not found: {path} "
                                 "(a JSONL(.gz) file of {term, list, category, lang}; nothing is downloaded)")
    out: dict[tuple[str, str], set[str]] = defaultdict(set)
    opener = gzip.open if path.endswith(".gz") else open
    n = 0  # the line number, for the error message
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for line in f:
                n += 1
                if not line.strip():
                    continue
                row = json.loads(line)
                term, category, lang = row["term"], row["category"], row["lang"]
                if isinstance(term, str) and term.strip():
                    out[(CATEGORY_GROUPS.get(category, category), lang)].add(term)
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise ContentFilterError(f"quality.content_filter.wordlists: cannot read {path}: {e}") from e
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ContentFilterError(f"quality.content_filter.wordlists: {path} line {n}: expected a JSON object with "
                                 f"term, category and lang ({type(e).__name__}: {e})") from e
    return dict(out)


def _automaton(words: Iterable[str]):
    automaton = ahocorasick.Automaton()
    for word in words:
        automaton.add_word(word, word)
    automaton.make_automaton()
    return automaton


class C4BadWords:
    """C4's bad-words rule per language (datatrove C4BadWordsFilter with keep_fraction=0, languages without a
    list pass)."""

    def __init__(self, words_by_lang: dict[str, set[str]]):
        allow = set().union(*BADWORDS_ALLOWLIST.values())
        self.words = {lang: words - allow for lang, words in words_by_lang.items() if words - allow}
        self._automata: dict[str, object] = {}

    def languages(self) -> list[str]:
        return sorted(self.words)

    def find(self, text: str, lang: str | None) -> list[str]:
        """The distinct list words C4's rule finds in `text` (empty: the document passes), sorted."""
        if lang not in self.words:
            return []
        automaton = self._automata.get(lang)
        if automaton is None:
            automaton = self._automata[lang] = _automaton(sorted(self.words[lang]))
        lowered = text.lower()
        found = set()
        bounded = lang not in NO_BOUNDARY_LANGS
        n = len(lowered)
        for end, word in automaton.iter(lowered):
            if bounded:
                start = end - len(word) + 1
                if start > 0 and _WORD_CHAR.match(lowered, start - 1):
                    continue
                if end + 1 < n and _WORD_CHAR.match(lowered, end + 1):
                    continue
            found.add(word)
        return sorted(found)


class Lexicons:
    """Substring match of the enabled lexicon groups, per language (the Chinese lists have no word boundaries to
    respect): the distinct terms found, by group."""

    def __init__(self, lists: dict[tuple[str, str], set[str]], groups: Iterable[str]):
        by_lang: dict[str, dict[str, str]] = defaultdict(dict)
        for (group, lang), terms in sorted(lists.items()):
            if group in groups and group != "illegal_url":
                for term in sorted(terms):
                    by_lang[lang].setdefault(term.lower(), group)  # a term in two groups counts for the first
        self.groups_by_lang = dict(by_lang)
        self._automata: dict[str, object] = {}

    def find(self, text: str, lang: str | None) -> dict[str, list[str]]:
        terms = self.groups_by_lang.get(lang)
        if not terms:
            return {}
        automaton = self._automata.get(lang)
        if automaton is None:
            automaton = self._automata[lang] = _automaton(terms)
        found: dict[str, set[str]] = defaultdict(set)
        for _, term in automaton.iter(text.lower()):
            found[terms[term]].add(term)
        return {group: sorted(v) for group, v in sorted(found.items())}


def _host(entry: str) -> str:
    entry = entry.strip().lower()
    host = urlsplit(entry if "//" in entry else "//" + entry).hostname or ""
    return host.removeprefix("www.")


class UrlList:
    """Hosts from a list of domains or URLs (the Chinese illegal-URL list): a page matches when its host, or a
    domain above it, is listed. Entries are lower-cased, stripped of scheme, path, port and `www.`."""

    def __init__(self, entries: Iterable[str]):
        self.hosts = frozenset(h for h in map(_host, entries) if h)

    def __len__(self) -> int:
        return len(self.hosts)

    def find(self, url: str | None) -> str | None:
        if not url or not self.hosts:
            return None
        try:
            host = _host(url)
        except ValueError:  # a malformed URL (e.g. a bad IPv6 literal) matches nothing
            return None
        parts = host.split(".")
        for i in range(len(parts) - 1):
            candidate = ".".join(parts[i:])
            if candidate in self.hosts:
                return candidate
        return None
