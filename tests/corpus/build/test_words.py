"""Parity of corpus.build.word_tokenizer with datatrove's English SpaCyTokenizer (spaCy blank "en" + sentencizer)."""

from __future__ import annotations

import gzip
import itertools
import json
import string
from pathlib import Path

import pytest
from conftest import shakespeare_slices
from datatrove.utils.text import split_into_sentences as dt_split_into_sentences
from datatrove.utils.text import split_into_words as dt_split_into_words
from datatrove.utils.word_tokenizers import load_word_tokenizer
from hypothesis import given, settings
from hypothesis import strategies as st

from corpus.build import word_tokenizer as words

REPO = Path(__file__).resolve().parents[3]
DATA = REPO.parent / "shared" / "data"
DT = load_word_tokenizer("eng")
# spaCy fails on an "IS_ALPHA" token from its 2nd occurrence in a process on; put datatrove in that
# steady state, which corpus.build.word_tokenizer always reproduces
DT.word_tokenize("IS_ALPHA")
DT.word_tokenize("IS_ALPHA")

ALPHABET = list("abcdeXYZ019 .!?…,;:'\"()-#•\n\t\u00a0  ") + list("éü—’“”。中\u2028￥")

EDGE_CASES = [
    "",
    " ",
    "   ",
    "\n",
    "\n\n\n",
    "\t",
    "\u00a0",
    "a",
    ".",
    "...",
    "!!! ??? ...",
    "Hello world.",
    "Hello.  World.",
    "Hello. \n World!",
    " leading space. Two",
    "trailing spaces.   ",
    "Mr. Smith went to Washington. He said hi.",
    "e.g. this, i.e. that. U.S.A. is big.",
    "Wait... what?! Really…",
    "• bullet one\n• bullet two\n- dash",
    "tabs\tand\u00a0nbsp\u2028line sep\u2029para",
    "中文文本。这是第二句！还有吗？",
    "«Guillemets» and „quotes“ and ‘single’.",
    "Email me at a.b@example.com or visit https://example.com/a?b=c. Thanks!",
    "Prices: $5.00, €6, 7%.",
    "x" * 2000 + ". Next sentence.",
    "relevant: (1) first item",
    "(:- )))",
    ":- ))):",
    "a . b ( : ) c",
    "IS_ALPHA foo",
    "x IS_ALPHA. y",
    "xIS_ALPHAy stays",
    "don't can't won't I'm y'all",
    "lorem ipsum {javascript} [1] [edit] [citation needed]",
]


def _real_docs() -> list[str]:
    folder = DATA / "docs"
    if not folder.is_dir():
        pytest.skip(f"real documents folder {folder} is absent")
    texts = []
    for path in sorted(folder.glob("*.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            texts += [json.loads(line)["text"] for line in f if line.strip()]
    assert texts, f"no documents in {folder}"
    return texts


def assert_same(text: str) -> None:
    assert words.word_tokenize(text) == DT.word_tokenize(text), text
    spans = DT.span_tokenize(text)
    assert words.span_tokenize(text) == spans, text
    assert words.count_sentences(text) == len(spans), text
    assert words.split_into_sentences(text) == dt_split_into_sentences(text), text


@pytest.mark.parametrize("text", EDGE_CASES)
def test_edge_cases(text):
    assert_same(text)


def test_real_documents_and_their_lines():
    docs = _real_docs()
    assert len(docs) >= 30
    for doc in docs:
        assert_same(doc)
        for line in doc.splitlines()[:40]:
            assert_same(line)


def test_shakespeare():
    for text in shakespeare_slices(5000, 100_000):
        assert_same(text)


def test_split_into_words_is_datatrove_function():
    doc = _real_docs()[0]
    assert words.word_tokenize(doc) == dt_split_into_words(doc, "eng")


def test_tokens_have_no_whitespace_and_cover_text():
    # the n-gram code in quality_filters relies on this
    for doc in _real_docs()[:10]:
        toks = words.word_tokenize(doc)
        assert all(t and not any(c.isspace() for c in t) for t in toks)
        assert "".join(toks) == "".join(doc.split())


def test_special_case_across_a_space_changes_tokens():
    # spaCy's special-case matcher blocks the rule "(:" with the longer pattern ":-)))" across the space:
    # tokenizing chunks independently would give "(:" here; corpus.build.word_tokenizer must not
    text = "(:- )))"
    assert [t.text for t in DT.tokenizer(text)] == ["(", ":", "-", ")", ")", ")"]
    assert words.word_tokenize("(:-") == ["(:", "-"]
    assert words.word_tokenize(text) == ["(", ":", "-", ")", ")", ")"]


def test_is_alpha_retry_matches_datatrove():
    text = "Start. IS_ALPHA is a spaCy symbol. fooIS_ALPHAbar too. End here"
    assert "IS_ALPHA" not in words.word_tokenize(text)
    assert "foobar" in words.word_tokenize(text)
    assert_same(text)


def test_chunk_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(words, "_CACHE_MAX", 50)
    words._words.cache_clear()
    text = " ".join(f"w{i}." for i in range(200))
    assert words.word_tokenize(text) == DT.word_tokenize(text)
    assert len(words._CHUNKS) <= 200
    words.word_tokenize(" ".join(f"v{i}" for i in range(30)))
    assert len(words._CHUNKS) <= 50


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(ALPHABET), max_size=120))
def test_property_random_text(text):
    assert_same(text)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.sampled_from(sorted({t for p in words._spacy_data().pair_patterns for t in p})), max_size=8),
    st.lists(st.sampled_from([" ", "", "  ", "\n"]), min_size=8, max_size=8),
)
def test_property_special_case_pieces(pieces, gaps):
    # glue pieces of spaCy special-case patterns with various gaps: the cross-space matcher paths
    text = "".join(p + g for p, g in zip(pieces, gaps, strict=False))
    assert_same(text)


def test_fast_path_claims_on_letter_and_digit_runs():
    # corpus.build.word_tokenizer.fast_tokens relies on runs of only ASCII letters / only ASCII digits having no
    # prefix, suffix or infix match (the affix patterns with letters need "$", an apostrophe or a digit)
    tok = words._spacy_data().nlp.tokenizer
    runs = ["".join(t) for k in (1, 2, 3) for t in itertools.product(string.ascii_letters, repeat=k)]
    runs += ["".join(t) for k in (1, 2, 3, 4) for t in itertools.product(string.digits, repeat=k)]
    runs += [w for doc in _real_docs() for w in doc.split() if w.isascii() and (w.isalpha() or w.isdigit())]
    for run in runs:
        assert tok.prefix_search(run) is None, run
        assert tok.suffix_search(run) is None, run
        assert next(tok.infix_finditer(run), None) is None, run


def _spacy_tokens(unit: str) -> tuple[str, ...]:
    data = words._spacy_data()
    with data.nlp.memory_zone():
        return tuple(t.text for t in data.nlp.tokenizer(unit))


FAST_HEADS = ["", "(", '"', "“", "'", "‘", "[", "((", "...", "-", "#", "*", "+", "%", "<", "«", "¿"]
FAST_RUNS = ["word", "Word", "e", "s", "o", "US", "A", "C", "Mr", "can", "gon", "ca", "wo", "vs", "em"]
FAST_RUNS += ["cause", "am", "pm", "km", "x", "D", "St", "etc", "Inc", "ll", "re", "9", "10", "2024", "0", "8"]
FAST_TAILS = ["", ".", ",", ")", ").", "!", "?", '"', "'", "''", ":", ";", "%", "..", "...", "…", "-", "/"]
FAST_TAILS += ["°", "°.", "+", "*", "€", "”", "’", "]", ".)", "),", "?!", "'.", "”.", ">", "»", ":)", ":-)"]


def test_fast_tokens_match_spacy_on_affix_combinations():
    data = words._spacy_data()
    n_fast = 0
    for head, run, tail in itertools.product(FAST_HEADS, FAST_RUNS, FAST_TAILS):
        unit = head + run + tail
        fast = data.fast_tokens(unit)
        if fast is not None:
            n_fast += 1
            assert fast == _spacy_tokens(unit), unit
    assert n_fast > 5000


def test_fast_tokens_match_spacy_on_real_chunks():
    data = words._spacy_data()
    chunks = {c for doc in _real_docs() for c in doc.split()}
    chunks |= {c for t in shakespeare_slices(5000, 100_000) for c in t.split()}
    n_fast = 0
    for unit in chunks:
        fast = data.fast_tokens(unit)
        if fast is not None:
            n_fast += 1
            assert fast == _spacy_tokens(unit), unit
    assert n_fast > len(chunks) // 2


@settings(max_examples=500, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list("(\"'“‘[#*+%<«-.…")), max_size=3),
    st.sampled_from(FAST_RUNS),
    st.text(alphabet=st.sampled_from(list(".,)!?\"':;%…-/°+*€”’]>»(")), max_size=4),
)
def test_property_fast_tokens(head, run, tail):
    unit = head + run + tail
    fast = words._spacy_data().fast_tokens(unit)
    if fast is not None:
        assert fast == _spacy_tokens(unit), unit
