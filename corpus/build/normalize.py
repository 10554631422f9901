"""Final text normalization of kept documents (after the filters, so filter parity with datatrove holds).

Chinese documents can be converted between traditional and simplified script (OpenCC, off by default).
Unicode NFC by default (NFKC optional: it also folds compatibility forms such as full-width letters and
ligatures, which changes CJK text, so it is opt-in). Trailing whitespace is stripped per line and the
text as a whole, so documents that differ only in invisible trailing blanks hash the same in dedup.
"""

from __future__ import annotations

import unicodedata

from corpus.config import NormalizeConf
from corpus.languages import fineweb2_name, script_of


def normalize_text(text: str, conf: NormalizeConf) -> str:
    if conf.unicode_form != "none":
        text = unicodedata.normalize(conf.unicode_form, text)
    if conf.strip_trailing_whitespace:
        text = "\n".join(line.rstrip() for line in text.split("\n")).strip()
    return text


class ChineseScriptError(RuntimeError):
    """normalize.chinese_script is set but OpenCC is not installed."""


_CHINESE_SCRIPTS = frozenset({"Hani", "Hans", "Hant"})


def is_chinese(language: str | None) -> bool:
    """Whether a document's language label (lid.176 `zh`, GlotLID `cmn_Hani`, `yue_Hant`...) is written in Han."""
    return script_of(fineweb2_name(language)) in _CHINESE_SCRIPTS


def chinese_converter(config: str | None):
    """OpenCC's converter for `normalize.chinese_script` (t2s: traditional -> simplified, ...), None when off.
    Applied to Chinese documents' kept text only, after the filters (FineWeb-2's stop words hold both scripts)."""
    if config is None:
        return None
    try:
        import opencc
    except ImportError as e:
        raise ChineseScriptError(f"normalize.chinese_script={config} needs OpenCC: pip install opencc "
                                 "(pinned in requirements.txt)") from e
    return opencc.OpenCC(f"{config}.json")
