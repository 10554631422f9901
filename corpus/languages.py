"""Language names: lid.176's labels (ISO 639-1 mostly) and FineWeb-2's `iso3_Script` names, in one table.

FineWeb-2's thresholds, datatrove's word tokenizers and GlotLID all name a language `iso3_Script` (`cmn_Hani`);
lid.176 says `zh`. Everything per language is looked up by the FineWeb-2 name, which `fineweb2_name` gives for
either kind of label. The pitfall this avoids: datatrove's `load_word_tokenizer("zh")` silently returns the
multi-language spaCy tokenizer (`xx`, no Chinese segmentation); only `cmn_Hani` gets jieba.

Pure lookups: no model, no tokenizer is loaded here. A top-level module because corpus.config validates
`language.languages` with it and corpus.build reads it (config must not import build: they would form a cycle).
"""

from __future__ import annotations

import csv
import importlib.util
import os
import re
from functools import lru_cache

ALL = "all"
ENGLISH = "eng_Latn"

# lid.176 label -> FineWeb-2 name, for the languages this project ships thresholds for (corpus.build.fineweb2).
# Other lid.176 labels map through datatrove's tokenizer_assignment.csv (its default script for the code).
LID176_TO_FINEWEB2: dict[str, str] = {
    "en": "eng_Latn",
    "zh": "cmn_Hani",  # lid.176 has one label for Chinese, simplified and traditional; FineWeb-2 calls it cmn_Hani
    "ja": "jpn_Jpan",
    "de": "deu_Latn",
    "fr": "fra_Latn",
    "es": "spa_Latn",
    "ru": "rus_Cyrl",
}

_ISO3_SCRIPT = re.compile(r"^[a-z]{3}_[A-Z][a-z]{3}$")
# Scripts written without spaces between words, where character n-grams are the alternative repetition measure.
UNSPACED_SCRIPTS = frozenset({"Hani", "Hans", "Hant", "Jpan", "Thai", "Khmr", "Laoo", "Mymr", "Tibt"})


class UnknownLanguageError(ValueError):
    """A language code that neither lid.176/ISO 639-1 nor FineWeb-2's iso3_Script names know."""


@lru_cache(maxsize=1)
def _datatrove_table() -> tuple[dict[str, str], frozenset[str]]:
    """(code -> iso3_Script for codes with a default script, every iso3_Script) from datatrove's assignment table;
    empty when datatrove is not installed (the explicit table above still works)."""
    spec = importlib.util.find_spec("datatrove")
    if spec is None or not spec.submodule_search_locations:
        return {}, frozenset()
    path = os.path.join(spec.submodule_search_locations[0], "assets", "tokenizer_assignment.csv")
    codes: dict[str, str] = {}
    names: set[str] = set()
    with open(path, encoding="utf-8") as f:
        for row in csv.DictReader(f):
            name = f"{row['code_3']}_{row['script']}"
            names.add(name)
            if row["default_script"] == "TRUE":
                codes.setdefault(row["code_3"], name)
                if row["code_1"] and row["default_code_1"] == "TRUE":
                    codes.setdefault(row["code_1"], name)
    return codes, frozenset(names)


@lru_cache(maxsize=4096)
def fineweb2_name(label: str | None) -> str | None:
    """The FineWeb-2 `iso3_Script` name of a lid.176 label (`zh`), a GlotLID label (`cmn_Hani`, already one) or an
    ISO 639-3 code; None when unknown (or None)."""
    if not label:
        return None
    label = label.removeprefix("__label__")
    if label in LID176_TO_FINEWEB2:
        return LID176_TO_FINEWEB2[label]
    if _ISO3_SCRIPT.match(label):
        return label
    return _datatrove_table()[0].get(label)


def resolve(codes: list[str] | str) -> list[str] | str:
    """Validate the configured `language.languages`: `all`, or codes `fineweb2_name` knows. Raises
    UnknownLanguageError naming the bad code and the shipped ones."""
    if isinstance(codes, str):
        if codes != ALL:
            raise UnknownLanguageError(f"expected a list of language codes or {ALL!r}, got {codes!r}")
        return codes
    if not codes:
        raise UnknownLanguageError(f"no language given: list codes such as {sorted(LID176_TO_FINEWEB2)} or {ALL!r}")
    for code in codes:
        if not isinstance(code, str) or fineweb2_name(code) is None:
            raise UnknownLanguageError(
                f"unknown language code {code!r}: use a lid.176 / ISO 639-1 code (e.g. "
                f"{', '.join(LID176_TO_FINEWEB2)}) or a FineWeb-2 iso3_Script name (e.g. cmn_Hani)")
    return codes


def script_of(name: str | None) -> str | None:
    """The script part of an iso3_Script name (`Hani`)."""
    return name.partition("_")[2] or None if name else None


def is_unspaced(name: str | None) -> bool:
    return script_of(name) in UNSPACED_SCRIPTS
