"""HTML → main-content text. resiliparse by default (fast, C++); trafilatura with favor_precision as an option."""

from __future__ import annotations

from collections.abc import Callable

from corpus.config import ExtractConf


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
