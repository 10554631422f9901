"""FineWeb-2's per-language filter recipe: its thresholds (copied from its configs) and how they enter our stages.

Source: huggingface/fineweb-2 at commit d0defb24f193bb9a5a11b8b14524a03c4858e1b6, `configs/{iso3}_{script}.yml`
(the numbers and stop words below are those files' values, unchanged), and `fineweb-2-pipeline.py` (step 5) for
what is fixed for every language:

* Gopher repetition: paragraph checks off (trafilatura keeps no paragraphs) and `dup_line_char_frac` off (FineWeb's
  char-duplication check replaces it); `dup_line_frac`, `top_n_grams`, `dup_n_grams` per language.
* FineWeb quality: `short_line_thr` off (999), `char_duplicates_ratio` 0.1 instead of English's 0.01;
  `line_punct_thr`, `new_line_ratio` per language.
* Gopher quality: word-length bounds, `max_non_alpha_words_ratio` and stop words per language,
  `min_stop_words` 2, the rest datatrove's defaults.
* C4: not applied.
* Language ID: `language_score` per language (FineWeb-2 thresholds GlotLID's score; we apply it to the score of
  the configured model).

English keeps FineWeb's recipe (the `quality.*` sections). A language without a row here gets DEFAULT_THRESHOLDS
(FineWeb-2's structure with datatrove's default numbers, no stop-word check), with a warning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

SOURCE = "huggingface/fineweb-2@d0defb24f193bb9a5a11b8b14524a03c4858e1b6 configs/{iso3}_{script}.yml"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FineWeb2Thresholds:
    language_score: float
    dup_line_frac: float
    top_n_grams: tuple[tuple[int, float], ...]
    dup_n_grams: tuple[tuple[int, float], ...]
    line_punct_thr: float
    min_avg_word_length: int
    max_avg_word_length: int
    max_non_alpha_words_ratio: float
    new_line_ratio: float
    stop_words: tuple[str, ...]


THRESHOLDS: dict[str, FineWeb2Thresholds] = {
    "cmn_Hani": FineWeb2Thresholds(
        language_score=0.692,
        dup_line_frac=0.287,
        top_n_grams=((2, 0.256), (3, 0.201), (4, 0.171)),
        dup_n_grams=((5, 0.198), (6, 0.182), (7, 0.167), (8, 0.154), (9, 0.14), (10, 0.127)),
        line_punct_thr=0.106,
        min_avg_word_length=1,
        max_avg_word_length=5,
        max_non_alpha_words_ratio=0.735,
        new_line_ratio=0.178,
        stop_words=(
            "的",
            "年",
            "在",
            "月",
            "是",
            "和",
            "日",
            "了",
            "於",
            "·",
            "為",
            "有",
            "被",
            "人",
            "中",
            "为",
            "他",
            "與",
            "後",
            "也",
            "而",
            "由",
        ),
    ),
    "jpn_Jpan": FineWeb2Thresholds(
        language_score=0.886,
        dup_line_frac=0.328,
        top_n_grams=((2, 0.239), (3, 0.196), (4, 0.172)),
        dup_n_grams=((5, 0.243), (6, 0.225), (7, 0.207), (8, 0.19), (9, 0.175), (10, 0.159)),
        line_punct_thr=0.096,
        min_avg_word_length=1,
        max_avg_word_length=6,
        max_non_alpha_words_ratio=0.759,
        new_line_ratio=0.13,
        stop_words=("の", "に", "を", "は", "た", "て", "が", "と", "で", "年", "し", "・", "月", "れ", "さ"),
    ),
    "deu_Latn": FineWeb2Thresholds(
        language_score=0.821,
        dup_line_frac=0.263,
        top_n_grams=((2, 0.169), (3, 0.153), (4, 0.137)),
        dup_n_grams=((5, 0.141), (6, 0.134), (7, 0.126), (8, 0.117), (9, 0.108), (10, 0.098)),
        line_punct_thr=0.0,
        min_avg_word_length=0,
        max_avg_word_length=15,
        max_non_alpha_words_ratio=0.774,
        new_line_ratio=0.152,
        stop_words=(
            "der",
            "und",
            "die",
            "in",
            "von",
            "im",
            "den",
            "des",
            "mit",
            "das",
            "er",
            "dem",
            "als",
            "wurde",
            "für",
        ),
    ),
    "fra_Latn": FineWeb2Thresholds(
        language_score=0.824,
        dup_line_frac=0.264,
        top_n_grams=((2, 0.161), (3, 0.149), (4, 0.134)),
        dup_n_grams=((5, 0.15), (6, 0.141), (7, 0.131), (8, 0.121), (9, 0.111), (10, 0.1)),
        line_punct_thr=0.1,
        min_avg_word_length=2,
        max_avg_word_length=11,
        max_non_alpha_words_ratio=0.812,
        new_line_ratio=0.185,
        stop_words=(
            "de",
            "la",
            "le",
            "et",
            "à",
            "en",
            "l'",
            "des",
            "du",
            "les",
            "est",
            "d'",
            "un",
            "une",
            "il",
            "dans",
            "par",
            "au",
        ),
    ),
    "spa_Latn": FineWeb2Thresholds(
        language_score=0.84,
        dup_line_frac=0.252,
        top_n_grams=((2, 0.156), (3, 0.14), (4, 0.125)),
        dup_n_grams=((5, 0.145), (6, 0.136), (7, 0.127), (8, 0.117), (9, 0.108), (10, 0.099)),
        line_punct_thr=0.182,
        min_avg_word_length=3,
        max_avg_word_length=14,
        max_non_alpha_words_ratio=0.825,
        new_line_ratio=0.138,
        stop_words=(
            "de",
            "la",
            "en",
            "el",
            "y",
            "a",
            "que",
            "del",
            "los",
            "se",
            "por",
            "un",
            "con",
            "una",
            "las",
            "su",
        ),
    ),
    "rus_Cyrl": FineWeb2Thresholds(
        language_score=0.9,
        dup_line_frac=0.322,
        top_n_grams=((2, 0.184), (3, 0.164), (4, 0.146)),
        dup_n_grams=((5, 0.168), (6, 0.156), (7, 0.145), (8, 0.133), (9, 0.121), (10, 0.109)),
        line_punct_thr=0.231,
        min_avg_word_length=3,
        max_avg_word_length=11,
        max_non_alpha_words_ratio=0.713,
        new_line_ratio=0.139,
        stop_words=(
            "в",
            "и",
            "на",
            "с",
            "года",
            "по",
            "году",
            "из",
            "был",
            "к",
            "не",
            "от",
            "что",
            "за",
            "для",
            "его",
            "как",
            "а",
            "он",
            "также",
            "до",
            "после",
        ),
    ),
}

# A language FineWeb-2 has no config for here: its structure, datatrove's default (English) numbers, no stop words
# (English ones would drop every document), the configured language.threshold.
DEFAULT_THRESHOLDS = FineWeb2Thresholds(
    language_score=0.65,
    dup_line_frac=0.3,
    top_n_grams=((2, 0.2), (3, 0.18), (4, 0.16)),
    dup_n_grams=((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10)),
    line_punct_thr=0.12,
    min_avg_word_length=3,
    max_avg_word_length=10,
    max_non_alpha_words_ratio=0.8,
    new_line_ratio=0.3,
    stop_words=(),
)

_warned: set[str] = set()


def thresholds(name: str) -> FineWeb2Thresholds:
    """The thresholds of a FineWeb-2 language name; DEFAULT_THRESHOLDS (warned once per process) when none ship."""
    found = THRESHOLDS.get(name)
    if found is not None:
        return found
    if name not in _warned:
        _warned.add(name)
        log.warning(
            "no FineWeb-2 thresholds shipped for %s: using the defaults (datatrove's English numbers, "
            "no stop-word check); see corpus/build/fineweb2.py",
            name,
        )
    return DEFAULT_THRESHOLDS


def has_thresholds(name: str) -> bool:
    return name in THRESHOLDS


def stage_kwargs(stage: str, name: str) -> dict | None:
    """Keyword arguments of our filter class for `stage` on language `name` (not English) under FineWeb-2's recipe;
    None when the recipe does not apply that stage (C4)."""
    t = thresholds(name)
    if stage == "gopher_repetition":
        return {
            "dup_line_frac": t.dup_line_frac,
            "dup_para_frac": 0,
            "dup_line_char_frac": 0,
            "dup_para_char_frac": 0,
            "top_n_grams": t.top_n_grams,
            "dup_n_grams": t.dup_n_grams,
        }
    if stage == "fineweb":
        return {
            "line_punct_thr": t.line_punct_thr,
            "short_line_thr": 999,
            "char_duplicates_ratio": 0.1,
            "new_line_ratio": t.new_line_ratio,
        }
    if stage == "gopher_quality":
        return {
            "min_avg_word_length": t.min_avg_word_length,
            "max_avg_word_length": t.max_avg_word_length,
            "max_non_alpha_words_ratio": t.max_non_alpha_words_ratio,
            "stop_words": list(t.stop_words),
            "min_stop_words": 2 if t.stop_words else None,
        }
    if stage == "c4":
        return None
    raise ValueError(f"no FineWeb-2 recipe for stage {stage!r}")


def datatrove_reference_chain(name: str) -> list:
    """datatrove's own filter objects as FineWeb-2 runs them for FineWeb-2 language `name` (fineweb-2-pipeline.py,
    step 5; English: FineWeb's four): the reference our per-language stages are checked against (tests, bench)."""
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    if name == "eng_Latn":
        return [GopherRepetitionFilter(language=name), GopherQualityFilter(language=name),
                C4QualityFilter(filter_no_terminal_punct=False, language=name), FineWebQualityFilter(language=name)]
    t = THRESHOLDS[name]
    return [
        GopherRepetitionFilter(language=name, dup_para_frac=0, dup_line_char_frac=0, dup_para_char_frac=0,
                               dup_line_frac=t.dup_line_frac, top_n_grams=t.top_n_grams, dup_n_grams=t.dup_n_grams),
        FineWebQualityFilter(language=name, short_line_thr=999, char_duplicates_ratio=0.1,
                             line_punct_thr=t.line_punct_thr, new_line_ratio=t.new_line_ratio),
        GopherQualityFilter(language=name, max_avg_word_length=t.max_avg_word_length,
                            min_avg_word_length=t.min_avg_word_length, stop_words=list(t.stop_words),
                            max_non_alpha_words_ratio=t.max_non_alpha_words_ratio, min_stop_words=2),
    ]
