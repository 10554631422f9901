"""Fast, exact reimplementations of datatrove's English quality filters, as pure functions of the text.

References (datatrove 0.10.1, ``datatrove/pipeline/filters/``):

* ``GopherRepetitionFilter`` (gopher_repetition_filter.py)
* ``GopherQualityFilter`` (gopher_quality_filter.py)
* ``C4QualityFilter`` (c4_filters.py)
* ``FineWebQualityFilter`` (fineweb_quality_filter.py)

Constructor keywords and defaults are datatrove's (minus ``exclusion_writer``); instead of ``language`` they take
``words``, the word-splitting function of the language (default: English's; corpus.build.lang_words gives
datatrove's tokenizer of any language). ``check(text)`` returns ``(reason, text)``: ``reason`` is None when
datatrove keeps the document and otherwise the exact reason string datatrove returns; ``text`` is the rewritten
text for C4 (kept lines, as datatrove sets ``doc.text``) and the input text otherwise.

Speed comes from tokenizing once per document (``corpus.build.word_tokenizer``, memoized) and from counting n-grams
with C-level ``Counter``/``zip``/``set`` instead of Python loops.

Deliberate deviations, only where datatrove raises ``ZeroDivisionError`` (never with default
thresholds): GopherQuality returns ``"gopher_no_words"`` / ``"gopher_no_lines"`` when a ratio it must
check has no words / no lines; FineWeb returns ``"fineweb_no_words"`` when a text has non-blank lines
but no word (only possible for texts made of ``IS_ALPHA`` tokens, see ``corpus.build.word_tokenizer``).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Mapping
from itertools import accumulate
from operator import itemgetter

import numpy as np
from datatrove.pipeline.filters.c4_filters import CITATION_REGEX, END_PUNCTUATION, POLICY_SUBSTRINGS
from datatrove.pipeline.filters.gopher_quality_filter import STOP_WORDS
from datatrove.utils.text import PUNCTUATION_SET, TERMINAL_PUNCTUATION

from corpus.build import fineweb2
from corpus.build.lang_words import word_splitter
from corpus.build.stage import Doc, Drop, Stage
from corpus.build.word_tokenizer import count_sentences, split_into_sentences, words_tuple
from corpus.config import PipelineConf
from corpus.languages import ENGLISH, fineweb2_name, script_of

_PARAGRAPH_SPLIT = re.compile(r"\n{2,}")
_LINE_SPLIT = re.compile("\n+")
_PUNCT_SET = frozenset(PUNCTUATION_SET)
_ELLIPSIS = "..."


def find_duplicates(items: list[str]) -> tuple[int, int]:
    """(number of repeated items, their total chars) counting every occurrence after the first.

    Same result as datatrove's ``find_duplicates``, with C-level counting.
    """
    counts = Counter(items)
    if len(counts) == len(items):
        return 0, 0
    return len(items) - len(counts), sum(len(x) * (c - 1) for x, c in counts.items() if c > 1)


def top_ngram_chars(words: tuple[str, ...], n: int) -> int | None:
    """Chars covered by the most frequent word n-gram (datatrove ``find_top_duplicate``), None if none.

    Words never contain whitespace, so word tuples are in one-to-one correspondence with datatrove's
    ``" ".join`` strings: same counts, same insertion order, hence the same first maximum.
    """
    if len(words) < n:
        return None
    counts = Counter(zip(*(words[i:] for i in range(n)), strict=False))
    gram, count = max(counts.items(), key=itemgetter(1))
    return (sum(map(len, gram)) + n - 1) * count


def duplicated_ngram_chars(words: tuple[str, ...], n: int) -> int:
    """datatrove ``find_all_duplicate``: chars of repeated n-grams, skipping past each repeat.

    Keys are ``"".join`` of the words like datatrove's, so distinct word tuples that concatenate to the
    same string collide exactly as they do there.
    """
    return _NgramKeys(words).duplicated_chars(n)


_HASH_BASE = 0x9E3779B97F4A7C15  # odd, so invertible modulo 2**64
_HASH_BASE_INV = pow(_HASH_BASE, -1, 1 << 64)


def _powers(base: int, count: int) -> np.ndarray:
    out = np.empty(count, dtype=np.uint64)
    out[0] = 1
    out[1:] = base
    return np.cumprod(out, dtype=np.uint64)  # wraps modulo 2**64


class _NgramKeys:
    """Hashes of the ``"".join`` keys of all n-grams of ``words`` (polynomial hash of the characters
    modulo 2**64, numpy-vectorized), shared by every n.

    Equal strings have equal hashes, so an n-gram whose hash occurs once occurs once as a string: only
    positions with a repeated hash are looked at, with their real string keys, in datatrove's walk.
    """

    def __init__(self, words: tuple[str, ...]):
        self.words = words
        self.concat = concat = "".join(words)
        self.offsets = list(accumulate(map(len, words), initial=0))
        self._prefix: np.ndarray | None = None
        self._inverse: np.ndarray | None = None
        self._offsets = np.array(self.offsets, dtype=np.intp)
        self._concat_len = len(concat)

    def _hashes(self, n: int) -> np.ndarray:
        if self._prefix is None:
            size = self._concat_len
            codes = np.frombuffer(self.concat.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
            prefix = np.zeros(size + 1, dtype=np.uint64)
            np.cumsum(codes * _powers(_HASH_BASE, size), dtype=np.uint64, out=prefix[1:])
            self._prefix, self._inverse = prefix, _powers(_HASH_BASE_INV, size + 1)
        starts, ends = self._offsets[: len(self.words) - n + 1], self._offsets[n:]
        # hash of concat[s:e] = sum(c_j * B**(j - s)), independent of s
        return (self._prefix[ends] - self._prefix[starts]) * self._inverse[starts]

    def duplicated_chars(self, n: int) -> int:
        m = len(self.words) - n + 1
        if m <= 1:
            return 0
        hashes = self._hashes(n)
        order = np.argsort(hashes, kind="stable")
        same = hashes[order[1:]] == hashes[order[:-1]]
        if not same.any():
            return 0
        repeated_hash = np.zeros(m, dtype=bool)
        repeated_hash[1:] = same
        repeated_hash[:-1] |= same
        positions = np.sort(order[repeated_hash]).tolist()
        # datatrove's walk over those positions only: any other position holds an n-gram seen once,
        # which would just advance by one; extra positions (hash collisions) do the same
        concat, offsets = self.concat, self.offsets
        seen: set[str] = set()
        repeated, next_pos = 0, 0
        for i in positions:
            if i < next_pos:
                continue
            key = concat[offsets[i] : offsets[i + n]]
            if key in seen:
                repeated += len(key)
                next_pos = i + n
            else:
                seen.add(key)
                next_pos = i + 1
        return repeated


class GopherRepetitionFilter:
    """datatrove ``GopherRepetitionFilter`` (Gopher, Rae et al. 2021, table A1)."""

    def __init__(
        self,
        dup_line_frac: float | None = 0.3,
        dup_para_frac: float | None = 0.3,
        dup_line_char_frac: float | None = 0.2,
        dup_para_char_frac: float | None = 0.2,
        top_n_grams: tuple[tuple[int, float], ...] = ((2, 0.2), (3, 0.18), (4, 0.16)),
        dup_n_grams: tuple[tuple[int, float], ...] = (
            (5, 0.15),
            (6, 0.14),
            (7, 0.13),
            (8, 0.12),
            (9, 0.11),
            (10, 0.10),
        ),
        words: Callable[[str], tuple[str, ...]] = words_tuple,
    ):
        self.words = words
        self.dup_line_frac = dup_line_frac
        self.dup_para_frac = dup_para_frac
        self.dup_line_char_frac = dup_line_char_frac
        self.dup_para_char_frac = dup_para_char_frac
        self.top_n_grams = tuple(tuple(x) for x in top_n_grams)
        self.dup_n_grams = tuple(tuple(x) for x in dup_n_grams)

    def check(self, text: str) -> tuple[str | None, str]:
        return self._reason(text, {}), text

    def measure(self, text: str) -> tuple[str | None, str, dict[str, float]]:
        """``check`` plus the values it compared to thresholds, up to the first failing check."""
        m: dict[str, float] = {}
        return self._reason(text, m), text, m

    def _reason(self, text: str, m: dict[str, float]) -> str | None:
        if not text:
            return "empty"
        reason = self._line_reason(text, m)
        if reason:
            return reason
        words = self.words(text)
        for n, n_frac in self.top_n_grams:
            top = top_ngram_chars(words, n)
            if top is not None:
                m[f"top_{n}_gram_frac"] = top / len(text)
                if top / len(text) > n_frac:
                    return f"top_{n}_gram"
        keys = _NgramKeys(words)
        for n, n_frac in self.dup_n_grams:
            m[f"duplicated_{n}_n_grams_frac"] = frac = keys.duplicated_chars(n) / len(text)
            if frac > n_frac:
                return f"duplicated_{n}_n_grams"
        return None

    def _line_reason(self, text: str, m: dict[str, float]) -> str | None:
        paragraphs = _PARAGRAPH_SPLIT.split(text.strip())
        dups, dup_chars = find_duplicates(paragraphs)
        m["dup_para_frac"], m["dup_para_char_frac"] = dups / len(paragraphs), dup_chars / len(text)
        if self.dup_para_frac and dups / len(paragraphs) > self.dup_para_frac:
            return "dup_para_frac"
        if self.dup_para_char_frac and dup_chars / len(text) > self.dup_para_char_frac:
            return "dup_para_char_frac"
        lines = _LINE_SPLIT.split(text)
        dups, dup_chars = find_duplicates(lines)
        m["dup_line_frac"], m["dup_line_char_frac"] = dups / len(lines), dup_chars / len(text)
        if self.dup_line_frac and dups / len(lines) > self.dup_line_frac:
            return "dup_line_frac"
        if self.dup_line_char_frac and dup_chars / len(text) > self.dup_line_char_frac:
            return "dup_line_char_frac"
        return None


def _ratio(num: float, den: float) -> float | None:
    """num / den, or None where datatrove's division would raise."""
    return num / den if den else None


class GopherQualityFilter:
    """datatrove ``GopherQualityFilter`` (Gopher quality heuristics)."""

    def __init__(
        self,
        min_doc_words: int | None = 50,
        max_doc_words: int | None = 100000,
        min_avg_word_length: int | None = 3,
        max_avg_word_length: int | None = 10,
        max_symbol_word_ratio: float | None = 0.1,
        max_bullet_lines_ratio: float | None = 0.9,
        max_ellipsis_lines_ratio: float | None = 0.3,
        max_non_alpha_words_ratio: float | None = 0.8,
        min_stop_words: int | None = 2,
        stop_words: list[str] | None = None,
        words: Callable[[str], tuple[str, ...]] = words_tuple,
    ):
        self.words = words
        self.min_doc_words = min_doc_words
        self.max_doc_words = max_doc_words
        self.min_avg_word_length = min_avg_word_length
        self.max_avg_word_length = max_avg_word_length
        self.max_symbol_word_ratio = max_symbol_word_ratio
        self.max_bullet_lines_ratio = max_bullet_lines_ratio
        self.max_ellipsis_lines_ratio = max_ellipsis_lines_ratio
        self.max_non_alpha_words_ratio = max_non_alpha_words_ratio
        self.min_stop_words = min_stop_words
        self.stop_words = frozenset(STOP_WORDS if stop_words is None else stop_words)

    def metrics(self, text: str) -> dict[str, float | None]:
        """Every value the filter thresholds, computed with datatrove's expressions (None: undefined)."""
        words = self.words(text)
        n_words = len(words)
        non_symbol_lengths = [len(w) for w in words if not _PUNCT_SET.issuperset(w)]
        lines = text.splitlines()
        return {
            "n_words": n_words,
            "n_non_symbol_words": len(non_symbol_lengths),
            "avg_word_length": (sum(non_symbol_lengths) / len(non_symbol_lengths) if non_symbol_lengths else math.nan),
            "hash_ratio": _ratio(text.count("#"), n_words),
            "ellipsis_ratio": _ratio(text.count(_ELLIPSIS) + text.count("…"), n_words),
            "bullet_lines_ratio": _ratio(sum(s.lstrip().startswith(("•", "-")) for s in lines), len(lines)),
            "end_ellipsis_lines_ratio": _ratio(sum(s.rstrip().endswith((_ELLIPSIS, "…")) for s in lines), len(lines)),
            "alpha_words_ratio": _ratio(sum(map(_has_alpha, words)), n_words),
            "n_stop_words": len(self.stop_words.intersection(words)),
        }

    def check(self, text: str) -> tuple[str | None, str]:
        return self._reason(self.metrics(text)), text

    def measure(self, text: str) -> tuple[str | None, str, dict[str, float | None]]:
        """``check`` plus every value it thresholds (all computed up front, whatever the verdict)."""
        m = self.metrics(text)
        return self._reason(m), text, m

    def _reason(self, m: Mapping[str, float | None]) -> str | None:
        n = m["n_non_symbol_words"]
        if self.min_doc_words and n < self.min_doc_words:
            return "gopher_short_doc"
        if self.max_doc_words and n > self.max_doc_words:
            return "gopher_long_doc"
        avg = m["avg_word_length"]  # nan (no non-symbol word) passes both, as with np.mean([])
        if self.min_avg_word_length and avg < self.min_avg_word_length:
            return "gopher_below_avg_threshold"
        if self.max_avg_word_length and avg > self.max_avg_word_length:
            return "gopher_above_avg_threshold"
        return self._ratio_reason(m)

    def _ratio_reason(self, m: Mapping[str, float | None]) -> str | None:
        checks = (
            (self.max_symbol_word_ratio, "hash_ratio", "gopher_too_many_hashes", "gopher_no_words"),
            (self.max_symbol_word_ratio, "ellipsis_ratio", "gopher_too_many_ellipsis", "gopher_no_words"),
            (self.max_bullet_lines_ratio, "bullet_lines_ratio", "gopher_too_many_bullets", "gopher_no_lines"),
            (
                self.max_ellipsis_lines_ratio,
                "end_ellipsis_lines_ratio",
                "gopher_too_many_end_ellipsis",
                "gopher_no_lines",
            ),
        )
        for threshold, key, reason, undefined_reason in checks:
            if threshold:
                if m[key] is None:
                    return undefined_reason
                if m[key] > threshold:
                    return reason
        if self.max_non_alpha_words_ratio:
            if m["alpha_words_ratio"] is None:
                return "gopher_no_words"
            if m["alpha_words_ratio"] < self.max_non_alpha_words_ratio:
                return "gopher_below_alpha_threshold"
        if self.min_stop_words and m["n_stop_words"] < self.min_stop_words:
            return "gopher_enough_stop_words"
        return None


def _has_alpha(word: str) -> bool:
    return word.isalpha() or any(map(str.isalpha, word))


class C4QualityFilter:
    """datatrove ``C4QualityFilter`` (C4 line and document heuristics; no bad-words list)."""

    def __init__(
        self,
        split_paragraph: bool = True,
        remove_citations: bool = True,
        filter_no_terminal_punct: bool = True,
        min_num_sentences: int = 5,
        min_words_per_line: int = 3,
        max_word_length: int = 1000,
        filter_lorem_ipsum: bool = True,
        filter_javascript: bool = True,
        filter_curly_bracket: bool = True,
        filter_policy: bool = True,
    ):
        self.split_paragraph = split_paragraph
        self.remove_citations = remove_citations
        self.filter_no_terminal_punct = filter_no_terminal_punct
        self.min_num_sentences = min_num_sentences
        self.min_words_per_line = min_words_per_line
        self.max_word_length = max_word_length
        self.filter_lorem_ipsum = filter_lorem_ipsum
        self.filter_javascript = filter_javascript
        self.filter_curly_bracket = filter_curly_bracket
        self.filter_policy = filter_policy

    def check(self, text: str) -> tuple[str | None, str]:
        lines = text.splitlines() if self.split_paragraph else split_into_sentences(text)
        num_sentences = 0
        kept_lines = []
        for line in lines:
            line, verdict = self._line(line)
            if verdict == "drop":
                continue
            if verdict is not None:
                return verdict, text
            if self.min_num_sentences != -1:
                # datatrove counts len(split_into_sentences(line)), which is 1 for a sentence-less line
                num_sentences += max(1, count_sentences(line)) if self.split_paragraph else 1
            kept_lines.append(line)
        if num_sentences < self.min_num_sentences:
            return "too_few_sentences", text
        return None, ("\n" if self.split_paragraph else " ").join(kept_lines).strip()

    def measure(self, text: str) -> tuple[str | None, str, dict[str, float]]:
        reason, text = self.check(text)
        return reason, text, {}

    def _line(self, line: str) -> tuple[str, str | None]:
        """(cleaned line, None to keep it | "drop" | a reason that rejects the whole document)."""
        line = line.strip()
        words = line.split()
        if self.max_word_length != -1 and any(len(word) > self.max_word_length for word in words):
            return line, "drop"
        if self.remove_citations:
            line = CITATION_REGEX.sub("", line)
        if self.filter_no_terminal_punct and (not line.endswith(END_PUNCTUATION) or line.endswith(_ELLIPSIS)):
            return line, "drop"
        if len(words) < self.min_words_per_line:
            return line, "drop"
        line_l = line.lower()
        if self.filter_lorem_ipsum and "lorem ipsum" in line_l:
            return line, "lorem_ipsum"
        if self.filter_javascript and "javascript" in line_l:
            return line, "drop"
        if self.filter_curly_bracket and "{" in line:
            return line, "curly_bracket"
        if self.filter_policy and any(p in line_l for p in POLICY_SUBSTRINGS):
            return line, "drop"
        return line, None


class FineWebQualityFilter:
    """datatrove ``FineWebQualityFilter`` (FineWeb's own line heuristics)."""

    def __init__(
        self,
        line_punct_thr: float = 0.12,
        line_punct_exclude_zero: bool = False,
        stop_chars: tuple[str, ...] | None = None,
        short_line_thr: float = 0.67,
        short_line_length: int = 30,
        char_duplicates_ratio: float = 0.01,
        new_line_ratio: float = 0.3,
        words: Callable[[str], tuple[str, ...]] = words_tuple,
    ):
        self.words = words
        self.line_punct_thr = line_punct_thr
        self.line_punct_exclude_zero = line_punct_exclude_zero
        self.stop_chars = tuple(stop_chars) if stop_chars is not None else tuple(TERMINAL_PUNCTUATION)
        self.short_line_threshold = short_line_thr
        self.short_line_length = short_line_length
        self.char_duplicates_ratio = char_duplicates_ratio
        self.new_line_ratio = new_line_ratio

    def metrics(self, text: str) -> dict[str, float | None]:
        """Every value the filter thresholds, computed with datatrove's expressions (None: undefined)."""
        lines = [line for line in text.split("\n") if line.strip() != ""]
        if not lines:
            return {"n_lines": 0}
        n_words = len(self.words(text))
        return {
            "n_lines": len(lines),
            "line_punct_ratio": sum(1 for line in lines if line.endswith(self.stop_chars)) / len(lines),
            "short_line_ratio": sum(1 for line in lines if len(line) <= self.short_line_length) / len(lines),
            "char_dup_ratio": find_duplicates(lines)[1] / len(text.replace("\n", "")),
            "list_ratio": _ratio(text.count("\n"), n_words),
        }

    def check(self, text: str) -> tuple[str | None, str]:
        return self._reason(text, {}), text

    def measure(self, text: str) -> tuple[str | None, str, dict[str, float]]:
        """``check`` plus the values it compared to thresholds, up to the first failing check."""
        m: dict[str, float] = {}
        return self._reason(text, m), text, m

    def _reason(self, text: str, m: dict[str, float]) -> str | None:
        lines = [line for line in text.split("\n") if line.strip() != ""]
        if not lines:
            return "empty"
        m["line_punct_ratio"] = ratio = sum(1 for line in lines if line.endswith(self.stop_chars)) / len(lines)
        if ratio < self.line_punct_thr and not (ratio == 0 and self.line_punct_exclude_zero):
            return "line_punct_ratio"
        m["short_line_ratio"] = ratio = sum(1 for line in lines if len(line) <= self.short_line_length) / len(lines)
        if ratio > self.short_line_threshold:
            return "short_line_ratio"
        m["char_dup_ratio"] = ratio = find_duplicates(lines)[1] / len(text.replace("\n", ""))
        if ratio > self.char_duplicates_ratio:
            return "char_dup_ratio"
        n_words = len(self.words(text))
        if not n_words:
            return "fineweb_no_words"
        m["list_ratio"] = ratio = text.count("\n") / n_words
        if ratio > self.new_line_ratio:
            return "list_ratio"
        return None


class QualityChain:
    """The four filters in FineWeb's order, gopher_repetition -> gopher_quality -> c4 -> fineweb, as one object for
    parity tests and benchmarks (the build runs them as stages: GopherRepetitionStage etc. below).

    Built from ``{stage: kwargs or None}``; a missing or None stage is disabled. C4's rewritten text is
    what the later stages see, as in a datatrove pipeline.
    """

    def __init__(self, config: Mapping[str, Mapping | None]):
        unknown = set(config) - set(STAGES)
        if unknown:
            raise ValueError(f"unknown quality stages: {sorted(unknown)}; expected {STAGES}")
        self.stages = [(name, _STAGE_CLASSES[name](**config[name])) for name in STAGES if config.get(name) is not None]

    def check(self, text: str) -> tuple[str | None, str | None, str]:
        """(failing stage or None, its reason or None, text after the stages run)."""
        for name, stage in self.stages:
            reason, text = stage.check(text)
            if reason is not None:
                return name, reason, text
        return None, None, text

    def measure(self, text: str) -> tuple[str | None, str | None, str, dict[str, float | None]]:
        """``check`` plus the values the stages that ran compared to thresholds, keyed ``"stage.value"``."""
        metrics: dict[str, float | None] = {}
        for name, stage in self.stages:
            reason, text, m = stage.measure(text)
            metrics.update((f"{name}.{k}", v) for k, v in m.items())
            if reason is not None:
                return name, reason, text, metrics
        return None, None, text, metrics


# Line ends FineWeb's line-punctuation ratio also counts on Chinese/Japanese text with quality.cjk_line_end.
CJK_LINE_END = ("…", "⋯")
_CJK_SCRIPTS = frozenset({"Hani", "Hans", "Hant", "Jpan"})


class _FilterStage(Stage):
    """One of the four filters above as a build stage: its config section is `quality.<name>`, its keyword
    arguments; C4's rewritten text is what the later stages see, as in a datatrove pipeline.

    Per language (`doc.language`, from the language stage): English, and every language under
    `quality.preset: english`, takes the section; under `fineweb2` any other language takes FineWeb-2's recipe
    (corpus.build.fineweb2) and its own word tokenizer (corpus.build.lang_words). Filters are built on a
    language's first document, once per worker; a stage FineWeb-2 does not apply (C4) does not see the document.
    """

    filter_class: type

    def __init__(self, conf: PipelineConf):
        super().__init__(conf)
        self.filter = self.filter_class(**self.section_conf(conf).model_dump())
        self._per_language = conf.quality.preset == "fineweb2"
        self._filters: dict[str | None, object | None] = {}

    def filter_for(self, language: str | None):
        """The filter for a document of lid/GlotLID label `language`; None when the recipe skips this stage."""
        if not self._per_language:
            return self.filter
        try:
            return self._filters[language]
        except KeyError:
            pass
        name = fineweb2_name(language)
        if name is None or name == ENGLISH:
            found = self.filter
        else:
            kwargs = fineweb2.stage_kwargs(self.name, name)
            found = None if kwargs is None else self._language_filter(name, kwargs)
        self._filters[language] = found
        return found

    def _language_filter(self, name: str, kwargs: dict):
        quality = self.conf.quality
        # character n-grams replace words in the repetition measures only (word counts, stop words stay words)
        char_ngrams = quality.char_ngrams and self.name == "gopher_repetition"
        if self.name == "fineweb" and quality.cjk_line_end and script_of(name) in _CJK_SCRIPTS:
            kwargs = {**kwargs, "stop_chars": (*TERMINAL_PUNCTUATION, *CJK_LINE_END)}
        return self.filter_class(**kwargs, words=word_splitter(name, char_ngrams))

    def applies(self, doc: Doc) -> bool:
        return self.filter_for(doc.language) is not None

    def apply(self, doc: Doc) -> Drop | None:
        reason, doc.text, metrics = self.filter_for(doc.language).measure(doc.text)
        self.record(doc, metrics)
        return None if reason is None else Drop(reason)


class GopherRepetitionStage(_FilterStage):
    name = "gopher_repetition"
    section = "quality.gopher_repetition"
    filter_class = GopherRepetitionFilter


class GopherQualityStage(_FilterStage):
    name = "gopher_quality"
    section = "quality.gopher_quality"
    filter_class = GopherQualityFilter


class C4Stage(_FilterStage):
    name = "c4"
    section = "quality.c4"
    filter_class = C4QualityFilter


class FineWebStage(_FilterStage):
    name = "fineweb"
    section = "quality.fineweb"
    filter_class = FineWebQualityFilter


# QualityChain's stages, from the stage classes (the build's order is declared in corpus.build.stages).
_STAGE_CLASSES = {cls.name: cls.filter_class for cls in (GopherRepetitionStage, GopherQualityStage, C4Stage,
                                                         FineWebStage)}
STAGES = tuple(_STAGE_CLASSES)
