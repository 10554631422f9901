"""MinHash signatures for near-duplicate detection, with datatrove's hash family, vectorized with numpy.

Reference: datatrove.pipeline.dedup.minhash.MinhashDedupSignature with MinhashConfig defaults —
text simplified by datatrove's `simplify_text` (lowercase, digits → 0, punctuation → space, whitespace
collapsed, diacritics stripped), English word tokens, word 5-grams joined by " " and hashed with 64-bit
xxhash, then 112 permutations (a·h + b) mod (2^61 − 1) from `np.random.RandomState(seed)`, including
datatrove's uint64 wrap-around of a·h. Signatures are identical to datatrove's (tested).

Documents with fewer words than one n-gram have no shingles: like datatrove, they get no signature and
are never near-duplicates of anything (exact dedup still applies to them).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import xxhash
from datatrove.utils.text import NUMBERS_PATTERN as _NUMBERS
from datatrove.utils.text import PUNCTUATION

MERSENNE_PRIME = np.uint64((1 << 61) - 1)
# Bound the (shingles × permutations) matrix per step: 65k × 112 × 8 B ≈ 60 MB.
MAX_SHINGLES_PER_STEP = 65_536


@dataclass(frozen=True)
class MinHashParams:
    n_grams: int = 5
    num_bands: int = 14
    rows_per_band: int = 8
    seed: int = 1

    @property
    def num_perm(self) -> int:
        return self.num_bands * self.rows_per_band

    def permutations(self) -> tuple[np.ndarray, np.ndarray]:
        gen = np.random.RandomState(self.seed)
        a = gen.randint(1, MERSENNE_PRIME, dtype=np.uint64, size=(1, self.num_perm))
        b = gen.randint(0, MERSENNE_PRIME, dtype=np.uint64, size=(1, self.num_perm))
        return a, b


def default_word_tokenizer() -> Callable[[str], list[str]]:
    from corpus.build.word_tokenizer import word_tokenize

    return word_tokenize


_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")


def _drop_marks(match: re.Match) -> str:
    return "".join(c for c in match.group(0) if unicodedata.category(c) != "Mn")


# datatrove's punctuation table (a dict for `str.translate`, ~80 characters) as one regex character class, and
# its ASCII part as a bytes table: both map the same characters to a space, 6× and ~30× faster.
_PUNCT = re.compile("[" + re.escape(PUNCTUATION) + "]")
_ASCII_PUNCT = bytes.maketrans(bytes(c for c in map(ord, PUNCTUATION) if c < 128),
                               b" " * sum(ord(c) < 128 for c in PUNCTUATION))


def simplify_text(text: str) -> str:
    r"""datatrove's `simplify_text` with its default config, character for character (tested), faster.

    The steps and their order are datatrove's (lowercase, its own number pattern, punctuation to spaces,
    whitespace runs to one space, diacritics); only their implementations differ. Its `str.translate` with a
    dict and its `\s+` pass were 0.9 of the 1.1 ms it spent on a 6 KB web document. The whitespace pass is
    `split()` + `join`: `re`'s `\s` and `str.split()` share one definition of whitespace (Py_UNICODE_ISSPACE).
    Diacritics are stripped from the non-ASCII runs only (marks are never ASCII), not by a per-character
    generator over the whole NFD form.
    """
    text = _NUMBERS.sub("0", text.lower())
    if text.isascii():
        text = text.encode("ascii").translate(_ASCII_PUNCT).decode("ascii")
    else:
        text = _PUNCT.sub(" ", text)
    text = " ".join(text.split())
    if text.isascii():
        return text
    return _NON_ASCII_RUN.sub(_drop_marks, unicodedata.normalize("NFD", text)).strip()


def shingle_texts(text: str, n: int, tokenize: Callable[[str], list[str]]) -> list[str]:
    words = tokenize(simplify_text(text))
    return [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]


def shingle_hashes(text: str, n: int, tokenize: Callable[[str], list[str]]) -> np.ndarray:
    """xxh64 of each word n-gram joined by spaces (datatrove's shingles); built with zip/map, not slices."""
    words = tokenize(simplify_text(text))
    grams = map(" ".join, zip(*(words[i:] for i in range(n))))
    return np.fromiter(map(xxhash.xxh64_intdigest, grams), dtype=np.uint64, count=max(len(words) - n + 1, 0))


def language_key(language: str | None) -> str | None:
    """The FineWeb-2 name of a document's language when it is shingled and bucketed apart from English (and from
    every other language), None for English and for unknown or missing labels (the English default)."""
    from corpus.languages import ENGLISH, fineweb2_name

    name = fineweb2_name(language)
    return None if name is None or name == ENGLISH else name


class MinHasher:
    def __init__(self, params: MinHashParams = MinHashParams(), tokenize: Callable[[str], list[str]] | None = None):
        self.params = params
        self.a, self.b = params.permutations()
        self.tokenize = tokenize or default_word_tokenizer()
        self._tokenizers: dict[str | None, Callable] = {None: self.tokenize}

    def tokenizer_for(self, language: str | None) -> Callable:
        """The word tokenizer a document's shingles come from: its language's, as datatrove assigns it by
        FineWeb-2 name (what FineWeb-2's MinhashDedupSignature(language=...) does); English and unknown labels
        take the default. A language whose tokenizer package is missing falls back to the default tokenizer (the
        build checks the configured languages' tokenizers before it starts, so only unexpected labels do)."""
        key = language_key(language)
        if key not in self._tokenizers:
            from corpus.build.lang_words import MissingTokenizerError, word_splitter

            try:
                self._tokenizers[key] = word_splitter(key)
            except MissingTokenizerError:
                self._tokenizers[key] = self.tokenize
        return self._tokenizers[key]

    def signatures(self, texts: Sequence[str], languages: Sequence[str | None] | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
        """(signatures uint64 [docs, num_perm], has_signature bool [docs]) for a batch of texts; with `languages`,
        each text is shingled with its language's word tokenizer."""
        n = self.params.n_grams
        if languages is None:
            hashes = [shingle_hashes(t, n, self.tokenize) for t in texts]
        else:
            hashes = [shingle_hashes(t, n, self.tokenizer_for(lang)) for t, lang in zip(texts, languages, strict=True)]
        sigs = np.zeros((len(texts), self.params.num_perm), dtype=np.uint64)
        ok = np.array([h.size > 0 for h in hashes], dtype=bool)
        start = 0
        while start < len(texts):
            # Group consecutive documents into one matrix step; a single huge document gets its own steps.
            stop, total = start, 0
            while stop < len(texts) and (stop == start or total + hashes[stop].size <= MAX_SHINGLES_PER_STEP):
                total += hashes[stop].size
                stop += 1
            self._fill(hashes[start:stop], sigs[start:stop])
            start = stop
        return sigs, ok

    def _fill(self, hashes: list[np.ndarray], out: np.ndarray) -> None:
        sizes = np.array([h.size for h in hashes])
        nonempty = np.flatnonzero(sizes)
        if nonempty.size == 0:
            return
        if sizes.sum() > MAX_SHINGLES_PER_STEP:  # one document bigger than a step: fold its chunks
            (i,) = nonempty
            acc = np.full(self.params.num_perm, np.iinfo(np.uint64).max, dtype=np.uint64)
            for lo in range(0, sizes[i], MAX_SHINGLES_PER_STEP):
                acc = np.minimum(acc, self._permuted(hashes[i][lo : lo + MAX_SHINGLES_PER_STEP]).min(axis=0))
            out[i] = acc
            return
        flat = np.concatenate([hashes[i] for i in nonempty])
        offsets = np.concatenate([[0], np.cumsum(sizes[nonempty])[:-1]])
        out[nonempty] = np.minimum.reduceat(self._permuted(flat), offsets, axis=0)

    def _permuted(self, h: np.ndarray) -> np.ndarray:
        """(a·h + b) mod (2^61 − 1), with datatrove's uint64 wrap-around of a·h + b.

        The modulo is a Mersenne fold, x mod p = (x & p) + (x >> 61), then p subtracted where the fold is ≥ p
        (rare): in-place integer ops at ~60 % of numpy's uint64 `%`, the same values."""
        with np.errstate(over="ignore"):  # datatrove's a·h wraps around in uint64; so do we
            x = h.reshape(-1, 1) * self.a
            x += self.b
        high = x >> np.uint64(61)
        x &= MERSENNE_PRIME
        x += high
        np.subtract(x, MERSENNE_PRIME, out=x, where=x >= MERSENNE_PRIME)
        return x

    def band_keys(self, sigs: np.ndarray, languages: Sequence[str | None] | None = None) -> np.ndarray:
        """int64 [docs, num_bands]: a 64-bit xxhash of each band's rows (the LSH bucket key). With `languages`, a
        non-English document's keys are seeded by its language, so documents of different languages never share
        a bucket and are never compared (dedup is per language, as FineWeb-2's); English keys are unchanged."""
        p = self.params
        bands = np.ascontiguousarray(sigs).reshape(len(sigs), p.num_bands, p.rows_per_band)
        keys = np.empty((len(sigs), p.num_bands), dtype=np.int64)
        for d in range(len(sigs)):
            key = language_key(languages[d]) if languages is not None else None
            seed = 0 if key is None else xxhash.xxh64_intdigest(key)
            for band in range(p.num_bands):
                keys[d, band] = xxhash.xxh64_intdigest(bands[d, band].tobytes(), seed) - (1 << 63)
        return keys


def ngram_set(text: str, n: int, tokenize: Callable[[str], list[str]]) -> set[str]:
    return set(shingle_texts(text, n, tokenize))


def jaccard(a: set, b: set) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)
