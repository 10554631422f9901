"""Final text normalization of kept documents (after the filters, so filter parity with datatrove holds).

Unicode NFC by default (NFKC optional: it also folds compatibility forms such as full-width letters and
ligatures, which changes CJK text, so it is opt-in). Trailing whitespace is stripped per line and the
text as a whole, so documents that differ only in invisible trailing blanks hash the same in dedup.
"""

from __future__ import annotations

import unicodedata

from corpus.config import NormalizeConf


def normalize_text(text: str, conf: NormalizeConf) -> str:
    if conf.unicode_form != "none":
        text = unicodedata.normalize(conf.unicode_form, text)
    if conf.strip_trailing_whitespace:
        text = "\n".join(line.rstrip() for line in text.split("\n")).strip()
    return text
