"""HTML → main-content text. resiliparse by default (fast, C++); trafilatura with favor_precision as an option."""

from __future__ import annotations

from collections.abc import Callable

from corpus.build.stage import Doc, Drop, Stage
from corpus.config import ExtractConf, PipelineConf


def resiliparse_extractor(conf: ExtractConf) -> Callable[[str], str]:
    from resiliparse.extract.html2text import extract_plain_text

    opts = conf.resiliparse

    def extract(html: str) -> str:
        return extract_plain_text(
            html,
            main_content=opts.main_content,
            alt_texts=opts.alt_texts,
            links=opts.links,
            list_bullets=opts.list_bullets,
        )

    return extract


def trafilatura_extractor(conf: ExtractConf) -> Callable[[str], str]:
    import trafilatura

    opts = conf.trafilatura

    def extract(html: str) -> str:
        text = trafilatura.extract(
            html,
            favor_precision=opts.favor_precision,
            include_comments=opts.include_comments,
            deduplicate=opts.deduplicate,
            include_images=False,
            include_tables=True,
        )
        return text or ""

    return extract


def make_extractor(conf: ExtractConf) -> Callable[[str], str]:
    if conf.engine == "trafilatura":
        return trafilatura_extractor(conf)
    return resiliparse_extractor(conf)


class ExtractStage(Stage):
    """HTML → text (pages read from WET/JSONL/Parquet bring their text); drops what has no usable text."""

    name = "extract"
    section = "extract"

    def __init__(self, conf: PipelineConf):
        super().__init__(conf)
        self.extract = make_extractor(conf.extract)
        self.max_chars = conf.read.max_text_chars

    def apply(self, doc: Doc) -> Drop | None:
        page = doc.page
        if page.html is not None:
            try:
                text = self.extract(page.html)
            except Exception:  # noqa: BLE001 - an extractor crash on one page is that page's problem
                return Drop("extractor_error")
            if text is None:
                return Drop("extractor_error")
        else:
            text = page.text or ""
        doc.text = doc.extracted = text  # a removed row shows the start of a text that was too long or blank
        if len(text) > self.max_chars:
            return Drop("text_too_long")
        if not text.strip():
            return Drop("empty_text")
        doc.text_bytes = len(text.encode("utf-8"))
        return None
