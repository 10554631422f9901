"""English word tokenization and sentence splitting, identical to datatrove's English tokenizer but fast.

Reference: ``datatrove.utils.word_tokenizers.SpaCyTokenizer("en")`` (``spacy.blank("en")`` plus the
``sentencizer`` pipe) as used through ``datatrove.utils.text.split_into_words`` / ``split_into_sentences``.

Why this is exact:

* spaCy's tokenizer cuts the text into maximal runs of ``str.isspace`` / non-space characters and
  tokenizes every non-space run ("chunk") on its own. So the tokens of a chunk never depend on its
  neighbours, and we memoize ``chunk -> spaCy tokens`` (computed by the real spaCy tokenizer).
* One exception: spaCy's special-case matcher runs over the whole Doc and can match a pattern across
  a single space, which then blocks a shorter rule inside a chunk (``"(:- )))"`` gives ``( : - ) ) )``
  although ``"(:-"`` alone gives ``(: -``). Where the text around a single space could hold such a
  match (a necessary condition checked on the strings), the whole run of single-space-separated chunks
  is tokenized by spaCy as one unit; any other gap makes a whitespace token, which no pattern crosses.
  This touches ~1 boundary in 2,000 on real web text.
* Whitespace runs give whitespace tokens, except a single ``" "`` that follows a chunk (it becomes the
  chunk's trailing space). Whitespace tokens vanish from word lists (datatrove strips tokens) but they
  do matter to the sentencizer, which we reimplement from ``spacy/pipeline/sentencizer.pyx``: a token
  starts a sentence when a ``punct_chars`` token was seen earlier in the current sentence and the token
  is neither in ``punct_chars`` nor ``is_punct`` (every character in a Unicode ``P*`` category).
* spaCy raises on a token equal to ``"IS_ALPHA"`` (a symbol name) from its second occurrence in a
  process on; datatrove then retries on ``text.replace("IS_ALPHA", "")``. We always apply that retry
  (datatrove's steady state). Deliberate deviation: the very first ``IS_ALPHA`` token a datatrove
  process ever sees is tokenized normally there.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from functools import lru_cache
from itertools import chain

_WS_SPLIT = re.compile(r"(\s+)")  # re's \s is exactly str.isspace, which spaCy uses to cut chunks
_CACHE_MAX = 200_000
_POISON = "IS_ALPHA"

# token kinds for the sentencizer
_PLAIN, _PUNCT, _PERIOD = 0, 1, 2


class _Chunk:
    """spaCy's tokens for one non-space chunk, plus what the sentencizer needs from them."""

    __slots__ = ("tokens", "kinds", "poison", "heads", "tails", "follows", "trans")

    def __init__(self, unit: str, tokens: tuple[str, ...], poison: bool = False):
        self.tokens = tokens
        self.poison = poison or _POISON in tokens
        spacy_data = _spacy_data()
        self.kinds = kinds = tuple(map(spacy_data.token_kind, tokens))
        # pattern tokens this unit could start / end with (strings, since the tokens the special
        # matcher sees are those before its own rewrites, which we never observe)
        self.heads = spacy_data.pattern_heads(unit)
        self.tails = spacy_data.pattern_tails(unit)
        # pattern tokens that may follow one of ``tails`` across a space (empty: no risk after us)
        self.follows = spacy_data.follows(self.tails)
        # trans[state] = (sentence starts inside the chunk, state after it); state = "seen a period"
        trans = _TRANS.get(kinds)
        if trans is None:
            trans = _TRANS[kinds] = (_run_kinds(kinds, False), _run_kinds(kinds, True))
        self.trans = trans


_TRANS: dict[tuple[int, ...], tuple[tuple[int, bool], tuple[int, bool]]] = {}
_EMPTY: frozenset[str] = frozenset()


def _run_kinds(kinds: tuple[int, ...], seen: bool) -> tuple[int, bool]:
    starts = 0
    for kind in kinds:
        if seen and kind == _PLAIN:
            starts += 1
            seen = False
        elif kind == _PERIOD:
            seen = True
    return starts, seen


def _token_kind(token: str, spacy_data: _SpacyData) -> int:
    if token in spacy_data.punct_chars:
        return _PERIOD
    return _PUNCT if spacy_data.is_punct(token) else _PLAIN


class _BareEnglish:
    """The two parts of `spacy.blank("en")` we use (its tokenizer and memory zones), without a Language object."""

    def __init__(self, vocab, tokenizer):
        self.vocab, self.tokenizer = vocab, tokenizer

    @contextmanager
    def memory_zone(self):
        """Language.memory_zone for our bare vocab + tokenizer: what spaCy allocates inside is freed after."""
        from contextlib import ExitStack

        from cymem.cymem import Pool

        mem = Pool()
        with ExitStack() as stack:
            stack.enter_context(self.vocab.memory_zone(mem))
            if hasattr(self.tokenizer, "memory_zone"):  # as spaCy's own Language.memory_zone checks
                stack.enter_context(self.tokenizer.memory_zone(mem))
            yield mem


class _SpacyData:
    """The spaCy objects and rule tables, loaded once (spaCy import is slow)."""

    def __init__(self):
        spacy = _import_spacy_without_torch()
        from spacy.lang.lex_attrs import is_punct
        from spacy.pipeline import Sentencizer
        from spacy.tokenizer import Tokenizer

        self.nlp = _BareEnglish(*_english_tokenizer(spacy))
        tok = self.nlp.tokenizer
        self.is_punct = is_punct
        self.punct_chars = frozenset(Sentencizer.default_punct_chars)
        self._kinds: dict[str, int] = {}
        bare = Tokenizer(
            self.nlp.vocab,
            rules={},
            prefix_search=tok.prefix_search,
            suffix_search=tok.suffix_search,
            infix_finditer=tok.infix_finditer,
            token_match=tok.token_match,
            url_match=tok.url_match,
        )
        # special-matcher pattern of a rule = its affix-only tokenization (a superset of the rules
        # spaCy puts in the matcher is fine: it can only cause extra, exact, fallbacks)
        self.pair_patterns: dict[tuple[str, str], list[tuple[tuple[str, ...], int]]] = {}
        for rule in tok.rules:
            pattern = tuple(t.text for t in bare(rule))
            for j in range(len(pattern) - 1):
                self.pair_patterns.setdefault((pattern[j], pattern[j + 1]), []).append((pattern, j))
        self.pair_firsts = frozenset(a for a, _ in self.pair_patterns)
        self.pair_seconds = frozenset(b for _, b in self.pair_patterns)
        self.max_piece = max(map(len, self.pair_firsts | self.pair_seconds))
        # cheap pre-checks: a piece can only start / end a unit with its own first / last character
        self._second_starts = frozenset(b[0] for b in self.pair_seconds)
        self._first_ends = frozenset(a[-1] for a in self.pair_firsts)
        follow_sets: dict[str, set[str]] = {}
        for a, b in self.pair_patterns:
            follow_sets.setdefault(a, set()).add(b)
        self._follow_sets = {a: frozenset(bs) for a, bs in follow_sets.items()}
        self._follows_memo: dict[frozenset[str], frozenset[str]] = {_EMPTY: _EMPTY}
        # fast path (see ``fast_tokens``): special-case strings and the suffix regex
        self.rules = frozenset(tok.rules)
        self.prefix_search = tok.prefix_search
        self.suffix_search = tok.suffix_search
        self.fast_path = tok.token_match is None

    def token_kind(self, token: str) -> int:
        kind = self._kinds.get(token)
        if kind is None:
            kind = _token_kind(token, self)
            if len(self._kinds) < _CACHE_MAX:
                self._kinds[token] = kind
        return kind

    def pattern_heads(self, unit: str) -> frozenset[str]:
        if unit[0] not in self._second_starts:
            return _EMPTY
        prefixes = (unit[:k] for k in range(1, min(len(unit), self.max_piece) + 1))
        return frozenset(p for p in prefixes if p in self.pair_seconds) or _EMPTY

    def pattern_tails(self, unit: str) -> frozenset[str]:
        if unit[-1] not in self._first_ends:
            return _EMPTY
        suffixes = (unit[-k:] for k in range(1, min(len(unit), self.max_piece) + 1))
        return frozenset(p for p in suffixes if p in self.pair_firsts) or _EMPTY

    def follows(self, tails: frozenset[str]) -> frozenset[str]:
        """Pattern pieces that directly follow one of ``tails`` in some special-case pattern."""
        out = self._follows_memo.get(tails)
        if out is None:
            out = frozenset().union(*(self._follow_sets.get(a, ()) for a in tails)) or _EMPTY
            self._follows_memo[tails] = out
        return out

    def fast_tokens(self, unit: str) -> tuple[str, ...] | None:
        """spaCy's tokens for ``unit`` when it is a run of ASCII letters or of ASCII digits with optional
        punctuation around it; None when spaCy itself must decide.

        Replays spaCy's ``Tokenizer._split_affixes`` / ``_attach_tokens`` (spaCy 3.8) with the real
        prefix and suffix regexes, exactly: affixes are cut off one at a time, and any outcome other than
        cutting down to the letters/digits exactly (a special case on the way, an affix reaching into
        them, a leftover that infixes or ``url_match`` would decide, tokens the special-case matcher
        might merge) falls back to spaCy. The one fact
        used without calling a regex: a run of only ASCII letters or only ASCII digits has no prefix,
        suffix or infix match (English affix patterns with letters need a "$", an apostrophe or a
        digit next to them; checked in tests), so such a run that is not a special case is one token.
        """
        m = _WORD_SHAPE.fullmatch(unit)
        if m is None or not self.fast_path or unit in self.rules:
            return None
        lo, hi = m.span(2)
        if lo == 0 and hi == len(unit):
            return (unit,)
        rules, prefix_search, suffix_search = self.rules, self.prefix_search, self.suffix_search
        string, start = unit, 0  # string == unit[start : start + len(string)]
        prefixes: list[str] = []
        suffixes: list[str] = []
        while True:
            if string is not unit and string in rules:
                return None
            if start == lo and len(string) == hi - lo:
                break
            found = prefix_search(string)
            pre_len = found.end() - found.start() if found is not None else 0
            if pre_len and string[pre_len:] in rules:
                return None
            found = suffix_search(string[pre_len:])
            suf_len = found.end() - found.start() if found is not None else 0
            if suf_len and string[:-suf_len] in rules:
                return None
            if pre_len and suf_len and pre_len + suf_len <= len(string):
                prefixes.append(string[:pre_len])
                suffixes.append(string[-suf_len:])
                string, start = string[pre_len:-suf_len], start + pre_len
            elif pre_len:
                prefixes.append(string[:pre_len])
                string, start = string[pre_len:], start + pre_len
            elif suf_len:
                suffixes.append(string[-suf_len:])
                string = string[:-suf_len]
            else:
                return None  # punctuation left on the run: infixes / url_match decide
            if start > lo or start + len(string) < hi:
                return None  # an affix cut into the run
        suffixes.reverse()
        tokens = (*prefixes, string, *suffixes)
        # spaCy's special-case matcher then runs over these tokens: leave any possible match to spaCy
        # (a pattern has one token equal to its rule, or two adjacent tokens listed in pair_patterns)
        if not rules.isdisjoint(tokens) or not self.pair_patterns.keys().isdisjoint(zip(tokens, tokens[1:])):
            return None
        return tokens


_WORD_SHAPE = re.compile(r"([^\w\s$]*)([A-Za-z]+|[0-9]+)([^\w\s$]*)")


def _import_spacy_without_torch():
    """`import spacy`, keeping torch out of this process when nothing imported it yet.

    spaCy imports thinc, which imports torch when it is installed (it is, for the trainer): ~2.5 s and ~300 MiB
    of resident memory in every Python worker that only needs spaCy's rule-based English tokenizer. A `None`
    entry in sys.modules makes thinc's guarded `import torch` fail, so thinc records "no torch"; the entry is
    removed afterwards, so a later `import torch` in the same process works as usual (only thinc's own torch
    layers stay off, which a blank tokenizer never uses).
    """
    import sys

    if "spacy" in sys.modules or "torch" in sys.modules:
        import spacy

        return spacy
    sys.modules["torch"] = None  # type: ignore[assignment]
    try:
        import spacy
    finally:
        if sys.modules.get("torch", 0) is None:
            del sys.modules["torch"]
    return spacy


def _english_tokenizer(spacy):
    """(vocab, tokenizer) exactly as `spacy.blank("en")` builds them (spacy.language.create_tokenizer), without a
    Language object: Language.__init__ loads every installed `spacy_factories` entry point, and Presidio's pulls
    in transformers (and torch), seconds and hundreds of MiB per worker for a pipe we never run."""
    from spacy import util
    from spacy.lang.en import English
    from spacy.tokenizer import Tokenizer
    from spacy.vocab import create_vocab

    defaults = English.Defaults
    vocab = create_vocab("en", defaults)
    tokenizer = Tokenizer(
        vocab,
        rules=defaults.tokenizer_exceptions,
        prefix_search=util.compile_prefix_regex(defaults.prefixes).search,
        suffix_search=util.compile_suffix_regex(defaults.suffixes).search,
        infix_finditer=util.compile_infix_regex(defaults.infixes).finditer,
        token_match=defaults.token_match,
        url_match=defaults.url_match,
    )
    return vocab, tokenizer


@lru_cache(maxsize=1)
def _spacy_data() -> _SpacyData:
    return _SpacyData()


_CHUNKS: dict[str, _Chunk] = {}


def _tokenize_new_units(units: list[str]) -> list[_Chunk]:
    """Tokenize unseen units: plain words by ``_SpacyData.fast_tokens``, the others with spaCy."""
    data = _spacy_data()
    fast = list(map(data.fast_tokens, units))
    if None not in fast:
        return [_Chunk(unit, toks) for unit, toks in zip(units, fast, strict=True)]
    slow = iter(_spacy_units([u for u, toks in zip(units, fast, strict=True) if toks is None]))
    return [next(slow) if toks is None else _Chunk(unit, toks) for unit, toks in zip(units, fast, strict=True)]


def _spacy_units(units: list[str]) -> list[_Chunk]:
    """Tokenize units with spaCy in one call; "\n" separators keep them independent."""
    data = _spacy_data()
    try:
        with data.nlp.memory_zone():
            doc = data.nlp.tokenizer("\n".join(units))
            toks = [(t.idx, t.text) for t in doc if not t.text.isspace()]
    # spaCy's IS_ALPHA failure: an AssertionError through a Language's vocab, KeyError E064 through the bare vocab
    # we build (the same orth-ID clash); isolate the unit(s) that trigger it
    except (AssertionError, KeyError):
        if len(units) == 1:
            return [_Chunk(units[0], (units[0],), poison=True)]
        return [c for unit in units for c in _spacy_units([unit])]
    out, i, unit_start = [], 0, 0
    for unit in units:
        unit_end, j = unit_start + len(unit), i
        while j < len(toks) and toks[j][0] < unit_end:
            j += 1
        out.append(_Chunk(unit, tuple(text for _, text in toks[i:j])))
        i, unit_start = j, unit_end + 1
    return out


def _unit_infos(units: list[str]) -> list[_Chunk]:
    cache = _CHUNKS
    infos = [cache.get(u) for u in units]
    if None not in infos:
        return infos
    missing = list(dict.fromkeys(u for u, info in zip(units, infos, strict=True) if info is None))
    new = dict(zip(missing, _tokenize_new_units(missing), strict=True))
    if len(cache) + len(new) > _CACHE_MAX:
        cache.clear()  # bounded memory on long runs; the hot words come back quickly
    cache.update(new)
    return [info if info is not None else new[u] for u, info in zip(units, infos, strict=True)]


def _split_parts(text: str) -> tuple[list[str], list[_Chunk | None]]:
    """``parts`` alternates unit, gap, unit, ... (``_WS_SPLIT.split``); one info per unit part, ``None``
    for an empty first/last part."""
    parts = _WS_SPLIT.split(text)
    unit_parts = parts[0::2]
    it = iter(_unit_infos([u for u in unit_parts if u]))
    return parts, [next(it) if u else None for u in unit_parts]


def _analyse(text: str) -> tuple[str, list[str], list[_Chunk | None]]:
    """(text actually tokenized, parts, infos) with spaCy's whole-Doc effects resolved."""
    parts, infos = _split_parts(text)
    if any(info is not None and info.poison for info in infos):
        # datatrove's retry; it does not retry twice, so a second IS_ALPHA is left as is
        text = text.replace(_POISON, "")
        parts, infos = _split_parts(text)
    return text, *_merge_risky_segments(parts, infos)


def _merge_risky_segments(parts: list[str], infos: list[_Chunk | None]):
    """Re-tokenize as one unit each run of single-space-separated chunks where a special-case pattern
    matches across a space (other gaps make whitespace tokens, which no pattern crosses)."""
    k = 1
    while True:
        k = next((j for j in _risky_boundaries(infos, k) if _pattern_across(parts, infos, j)), 0)
        if not k:
            return parts, infos
        lo, hi = _segment(parts, infos, k, -1), _segment(parts, infos, k, 1)
        merged = " ".join(parts[2 * lo : 2 * hi + 1 : 2])
        parts = parts[: 2 * lo] + [merged] + parts[2 * hi + 1 :]
        infos = infos[:lo] + _unit_infos([merged]) + infos[hi + 1 :]
        k = lo + 1


def _risky_boundaries(infos: list[_Chunk | None], start: int):
    """Indices ``k >= start`` where some pattern piece ending unit ``k-1`` is followed, in a pattern, by
    one starting unit ``k``: the pairs ``_pattern_across`` looks at (all other ``k`` give False)."""
    return (
        k
        for k, (a, b) in enumerate(zip(infos[start - 1 :], infos[start:]), start)
        if a is not None and a.follows and b is not None and not a.follows.isdisjoint(b.heads)
    )


def _pattern_across(parts: list[str], infos: list[_Chunk | None], k: int) -> bool:
    """True when a special-case pattern may match across the single space before unit ``k``.

    Necessary condition on the text: pattern tokens p[:j+1] end the run of single-space-joined units
    on the left (spaces removed) and p[j+1:] start the run on the right.
    """
    prev, cur = infos[k - 1], infos[k]
    if prev is None or cur is None or not (prev.tails and cur.heads) or parts[2 * k - 1] != " ":
        return False
    index = _spacy_data().pair_patterns
    for a in prev.tails:
        for b in cur.heads:
            for pattern, j in index.get((a, b), ()):
                left, right = "".join(pattern[: j + 1]), "".join(pattern[j + 1 :])
                if _run_text(parts, infos, k - 1, -1, len(left)).endswith(left) and _run_text(
                    parts, infos, k, 1, len(right)
                ).startswith(right):
                    return True
    return False


def _segment(parts: list[str], infos: list[_Chunk | None], k: int, step: int) -> int:
    """Index of the last unit reached from ``k`` going ``step`` over single-space gaps."""
    while 0 <= k + step < len(infos) and infos[k + step] is not None:
        if parts[2 * k - 1 if step < 0 else 2 * k + 1] != " ":
            break
        k += step
    return k


def _run_text(parts: list[str], infos: list[_Chunk | None], k: int, step: int, need: int) -> str:
    """At least ``need`` chars (if available) of units from ``k`` on, going ``step`` over single-space
    gaps, spaces removed."""
    text = ""
    while True:
        text = parts[2 * k] + text if step < 0 else text + parts[2 * k]
        if len(text) >= need or _segment(parts, infos, k, step) == k:
            return text
        k += step


# ---------------------------------------------------------------- words


@lru_cache(maxsize=16)
def _words(text: str) -> tuple[str, ...]:
    # lru_cache: the four filters of a chain tokenize the same document text
    infos = _unit_infos(text.split())
    if any(info.poison for info in infos) or _may_be_risky(infos):
        _, _, infos = _analyse(text)
        infos = [info for info in infos if info is not None]
    return tuple(chain.from_iterable(info.tokens for info in infos))


def _may_be_risky(infos: list[_Chunk]) -> bool:
    """Necessary condition for ``_merge_risky_segments`` to merge anything (gaps not looked at)."""
    return any(a.follows and not a.follows.isdisjoint(b.heads) for a, b in zip(infos, infos[1:], strict=False))


def word_tokenize(text: str) -> list[str]:
    """Same as datatrove ``split_into_words(text, "eng")``: spaCy tokens, stripped, empty ones dropped."""
    return list(_words(text))


def words_tuple(text: str) -> tuple[str, ...]:
    """Like ``word_tokenize`` but returns the cached tuple (no copy)."""
    return _words(text)


# ---------------------------------------------------------------- sentences


def _ws_token_before(k: int, parts: list[str], infos: list[_Chunk | None]) -> int | None:
    """Start offset of the whitespace token made from gap ``parts[2k-1]``, or None if it makes none."""
    gap = parts[2 * k - 1]
    after_chunk = infos[k - 1] is not None
    if after_chunk and gap == " ":
        return None
    return 1 if after_chunk and gap[0] == " " else 0


def count_sentences(text: str) -> int:
    """Number of sentences spaCy's sentencizer finds (``len(list(nlp(text).sents))``)."""
    units = text.split()
    if units and text.count(" ") == len(units) - 1 and len(text) == sum(map(len, units)) + len(units) - 1:
        # text is its units joined by single spaces: no whitespace token; without IS_ALPHA or a
        # possible cross-space special case, the chunks' own transitions give the count
        infos = _unit_infos(units)
        if not any(info.poison for info in infos) and not _may_be_risky(infos):
            starts, seen = 0, False
            for info in infos:
                n, seen = info.trans[seen]
                starts += n
            return starts + 1
    _, parts, infos = _analyse(text)
    starts, seen, started = 0, False, False
    for k, info in enumerate(infos):
        if k and _ws_token_before(k, parts, infos) is not None:
            if seen:
                starts += 1
            seen, started = False, True
        if info is not None:
            n, seen = info.trans[seen]
            starts += n
            started = True
    # the first token always opens a sentence and can never be counted as a "start" above
    return starts + 1 if started else 0


def _token_stream(parts: list[str], infos: list[_Chunk | None]):
    """Yield (start, end, kind) for every token, whitespace tokens included, with text offsets."""
    pos = 0
    for k, info in enumerate(infos):
        unit = parts[2 * k]
        if k:
            gap = parts[2 * k - 1]
            skip = _ws_token_before(k, parts, infos)
            if skip is not None:
                yield pos + skip, pos + len(gap), _PLAIN
            pos += len(gap)
        if info is not None:
            offset = 0
            for token, kind in zip(info.tokens, info.kinds, strict=True):
                if unit[offset] == " ":  # merged segments keep their single spaces, tokens never do
                    offset += 1
                yield pos + offset, pos + offset + len(token), kind
                offset += len(token)
            pos += len(unit)


def span_tokenize(text: str) -> list[tuple[int, int]]:
    """Sentence (start_char, end_char) spans, same as datatrove ``SpaCyTokenizer("en").span_tokenize``.

    For texts with an ``IS_ALPHA`` token the spans refer to ``text.replace("IS_ALPHA", "")``, like
    datatrove's retry does.
    """
    _, parts, infos = _analyse(text)
    spans: list[tuple[int, int]] = []
    sent_start = prev_end = None
    seen = False
    for start, end, kind in _token_stream(parts, infos):
        if sent_start is None:
            sent_start = start
        elif seen and kind == _PLAIN:
            spans.append((sent_start, prev_end))
            sent_start, seen = start, False
        if kind == _PERIOD:
            seen = True
        prev_end = end
    if sent_start is not None:
        spans.append((sent_start, prev_end))
    return spans


def split_into_sentences(text: str) -> list[str]:
    """Same as datatrove ``split_into_sentences(text, "eng")``: pieces cut at the sentence ends.

    Pieces cover the whole text (each sentence's leading whitespace goes with it); an empty text or
    one without sentences gives ``[text]``. Like datatrove, the cut points of a text with an
    ``IS_ALPHA`` token come from the replaced text but cut the original one.
    """
    ends = [b for _, b in span_tokenize(text)]
    return [text[a:b] for a, b in zip([0] + ends[:-1], ends[:-1] + [len(text)], strict=True)]
