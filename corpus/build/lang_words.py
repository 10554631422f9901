"""Word splitting per language, with the tokenizer datatrove assigns to FineWeb-2's `iso3_Script` name.

English takes our exact fast reimplementation (corpus.build.word_tokenizer). Every other language takes
datatrove's own `load_word_tokenizer(<iso3_Script>)` (spaCy for most languages; jieba for cmn_Hani, SudachiPy for
jpn_Jpan), so our filters see exactly the words datatrove's filters see for that language. Always by the
FineWeb-2 name: datatrove given `zh` returns its multi-language tokenizer, which does not segment Chinese.

Tokenizers are built once per process (Spark reuses Python workers) and checked on first use, so a missing
package is one clear MissingTokenizerError naming what to install, not a traceback from deep inside spaCy.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from corpus.languages import ENGLISH, is_unspaced

Words = Callable[[str], tuple[str, ...]]

# Packages datatrove's tokenizers import for some languages (datatrove's `multilingual` extra), pinned in
# requirements.txt for the languages we ship thresholds for.
PACKAGES = {"cmn_Hani": ("jieba",), "jpn_Jpan": ("sudachipy", "sudachidict_core"), "vie_Latn": ("pyvi",),
            "tha_Thai": ("pythainlp",), "kor_Hang": ("kiwipiepy",)}
_PIP_NAMES = {"sudachidict_core": "sudachidict-core"}


class MissingTokenizerError(RuntimeError):
    """The word tokenizer of a configured language cannot be built (a package is missing, or none is assigned)."""


@cache
def word_splitter(name: str, char_ngrams: bool = False) -> Words:
    """The word-splitting function of FineWeb-2 language `name`; with `char_ngrams`, languages written without
    spaces (Hani, Jpan, ...) are split into their non-space characters instead."""
    if char_ngrams and is_unspaced(name):
        return _characters
    if name == ENGLISH:
        from corpus.build.word_tokenizer import words_tuple

        return words_tuple
    tokenizer = _datatrove_tokenizer(name)
    last: list = [None, ()]

    def words(text: str) -> tuple[str, ...]:
        # the three filters of one document ask for the same text in turn: keep the last answer
        if last[0] is not text:
            last[0], last[1] = text, tuple(tokenizer.word_tokenize(text))
        return last[1]

    return words


def _characters(text: str) -> tuple[str, ...]:
    return tuple(ch for ch in text if not ch.isspace())


def _datatrove_tokenizer(name: str):
    import importlib.util

    missing = [p for p in PACKAGES.get(name, ()) if importlib.util.find_spec(p) is None]
    if missing:
        pips = " ".join(_PIP_NAMES.get(p, p) for p in missing)
        raise MissingTokenizerError(f"the {name} word tokenizer needs {', '.join(missing)}: pip install {pips} "
                                    "(pinned in requirements.txt)")
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    try:
        tokenizer = load_word_tokenizer(name)
        tokenizer.word_tokenize("test")  # builds the spaCy pipeline / dictionaries now, not on a document
    except ValueError as e:  # no tokenizer assigned to this name
        raise MissingTokenizerError(f"no word tokenizer for {name}: {e}") from e
    except ImportError as e:
        raise MissingTokenizerError(f"the {name} word tokenizer cannot be loaded: {e}; install datatrove's "
                                    "multilingual dependencies for it (pip install 'datatrove[multilingual]')") from e
    return tokenizer


def check_tokenizers(names: list[str]) -> None:
    """Driver-side check before any task starts: every named language's tokenizer builds here (the word counts
    need it even where the repetition measures take characters)."""
    for name in names:
        word_splitter(name)
