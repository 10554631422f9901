"""The per-file build pipeline: read → extract → URL filter → language ID → quality filters → normalize.

Pure Python over one input file; the Spark job only decides which files to run and where results go.
Heavy objects (blocklists, fastText model, spaCy tokenizer) are built once per Python worker.

Documents stream out through callbacks (`process_file_streaming`), so a file's results are never all held in
memory. An exception while processing one page is that page's problem: it is dropped and counted at the stage
it happened in with the reason `pipeline_error:<ExceptionType>`, and the file goes on.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from corpus.build.extract import make_extractor
from corpus.build.language_id import LanguageId
from corpus.build.normalize import normalize_text
from corpus.build.url_filter import UrlFilter
from corpus.config import PipelineConf
from corpus.io.formats import dump_of
from corpus.io.readers import FILE_ENDED_EARLY, Page, Skip, iter_pages, short
from corpus.schema import TEXT_HEAD_CHARS, quality_metric_row

STAGES = ("read", "extract", "url_filter", "language", "gopher_repetition", "gopher_quality", "c4", "fineweb")
MAX_ERROR_DETAILS = 20


class OutputError(RuntimeError):
    """Writing results failed: not a page's fault, so it is not counted as a drop but fails the task."""


@dataclass
class FileResult:
    docs: list[dict] = field(default_factory=list)
    removed: list[dict] = field(default_factory=list)
    stats: dict = field(default_factory=dict)


class _Stats:
    def __init__(self, uri: str):
        self.uri = uri
        self.records: Counter[str] = Counter()
        self.removed: dict[str, Counter[str]] = defaultdict(Counter)
        self.entered: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()
        self.bytes: Counter[str] = Counter()
        self.languages: Counter[str] = Counter()
        self.errors: list[str] = []
        self.ended_early: str | None = None

    def error(self, text: str) -> None:
        if len(self.errors) < MAX_ERROR_DETAILS:
            self.errors.append(text)

    def as_dict(self, kept: int) -> dict:
        stages = {}
        for stage in STAGES:
            n_in = self.entered[stage]
            dropped = dict(sorted(self.removed[stage].items()))
            stages[stage] = {"in": n_in, "removed": dropped, "out": n_in - sum(dropped.values())}
        return {
            "file": self.uri,
            "records": dict(sorted(self.records.items())),
            "stages": stages,
            "kept": kept,
            "bytes": dict(sorted(self.bytes.items())),
            "languages": dict(sorted(self.languages.items())),
            "seconds": {k: round(v, 4) for k, v in sorted(self.seconds.items())},
            "errors": self.errors,
            # The FILE_ENDED_EARLY reason when the file was not read to its end (its pages before are kept).
            "ended_early": self.ended_early,
        }


class BuildPipeline:
    def __init__(self, conf: PipelineConf):
        from corpus.build.quality_filters import QualityChain

        self.conf = conf
        self.extract = make_extractor(conf.extract)
        u = conf.url_filter
        self.url_filter = (
            UrlFilter(u.soft_word_threshold, u.extra_domains, u.extra_urls, u.use_integrated_lists)
            if u.enabled
            else None
        )
        self.langid = LanguageId(conf.language)
        quality = conf.quality.model_dump()
        self.quality = QualityChain(quality)
        self.quality_stages = [name for name in STAGES[4:] if quality.get(name) is not None]
        self._emit_removed: Callable[[dict], None] | None = None

    def process_file(self, uri: str, qualify_ids: bool = False) -> FileResult:
        """All results of one file in memory (tests, small inputs); the build streams them instead."""
        result = FileResult()
        removed = result.removed.append if self.conf.output.write_removed else None
        result.stats = self.process_file_streaming(uri, result.docs.append, removed, qualify_ids)
        return result

    def process_file_streaming(self, uri: str, emit_doc: Callable[[dict], None],
                               emit_removed: Callable[[dict], None] | None, qualify_ids: bool = False) -> dict:
        """Run one file, giving each kept document to `emit_doc` and each removed one to `emit_removed` (None:
        not written) as they come. Returns the file's stats. No exception of a page's escapes."""
        return self.process_pages(uri, iter_pages(uri, self.conf.read, qualify_ids), emit_doc, emit_removed)

    def process_pages(self, uri: str, pages: Iterator[Page | Skip], emit_doc: Callable[[dict], None],
                      emit_removed: Callable[[dict], None] | None) -> dict:
        """The pipeline over one file's pages and skips (as `iter_pages` gives them); see process_file_streaming."""
        stats = _Stats(uri)
        self._emit_removed = emit_removed
        kept = 0
        started = time.perf_counter()
        while True:
            t0 = time.perf_counter()
            item = next(pages, None)
            stats.seconds["read"] += time.perf_counter() - t0
            if item is None:
                break
            if isinstance(item, Skip) and item.reason.startswith("record_type_"):
                stats.records[item.reason.removeprefix("record_type_")] += 1
                continue
            stats.records["page" if isinstance(item, Page) else "unusable"] += 1
            stats.entered["read"] += 1
            if isinstance(item, Skip):
                self._drop(stats, "read", item.reason, item.id, item.url, uri)
                if item.reason in FILE_ENDED_EARLY:
                    stats.ended_early = item.reason
                if item.detail:
                    stats.error(f"{item.reason}: {item.detail}")
                continue
            where = ["extract"]  # the stage a page is in, for pipeline errors
            try:
                doc = self._process_page(item, stats, where)
            except OutputError:
                raise
            except Exception as e:  # noqa: BLE001 - one page's failure must not fail the file (and the job)
                reason = f"pipeline_error:{type(e).__name__}"
                self._drop(stats, where[0], reason, _as_text(item.id), _as_text(item.url), uri)
                stats.error(f"{reason}: {uri}: page {short(item.id, 80)}: {short(e)}")
                continue
            if doc is not None:
                emit_doc(doc)
                kept += 1
        stats.seconds["total"] = time.perf_counter() - started
        return stats.as_dict(kept)

    def _drop(self, stats, stage, reason, doc_id, url, uri, chars=None, metrics=None, text_bytes=0, text=None,
              lang=(None, None)) -> None:
        stats.removed[stage][reason] += 1
        if text_bytes:  # the byte funnel: extracted text bytes each stage removes
            stats.bytes[f"text_removed_{stage}"] += text_bytes
        if self._emit_removed is not None:
            row = {"id": doc_id, "url": url, "stage": stage, "reason": reason, "file_path": uri, "chars": chars,
                   **quality_metric_row(metrics or {}),
                   "text_head": None if text is None else text[:TEXT_HEAD_CHARS],
                   "language": lang[0], "language_score": lang[1]}
            try:
                self._emit_removed(row)
            except Exception as e:  # the writer failed (disk, network): the task fails, no page is blamed
                raise OutputError(f"writing removed rows of {uri}: {type(e).__name__}: {e}") from e

    def _process_page(self, page: Page, stats: _Stats, where: list[str]) -> dict | None:
        def drop(stage, reason, metrics=None):
            chars = None if text is None else len(text)
            self._drop(stats, stage, reason, page.id, page.url, page.file_path, chars, metrics, text_bytes, text,
                       lang_score)

        text, text_bytes, lang_score = None, 0, (None, None)

        stats.entered["extract"] += 1
        if page.html is not None:
            stats.bytes["html"] += len(page.html)
            t0 = time.perf_counter()
            try:
                text = self.extract(page.html)
            except Exception:  # noqa: BLE001 - an extractor crash on one page is that page's problem
                text = None
            stats.seconds["extract"] += time.perf_counter() - t0
            if text is None:
                drop("extract", "extractor_error")
                return None
        else:
            text = page.text or ""
        if len(text) > self.conf.read.max_text_chars:
            drop("extract", "text_too_long")
            return None
        if not text.strip():
            drop("extract", "empty_text")
            return None
        text_bytes = len(text.encode("utf-8"))
        stats.bytes["text_extracted"] += text_bytes
        chars = len(text)

        if self.url_filter is not None and page.url:
            where[0] = "url_filter"
            stats.entered["url_filter"] += 1
            t0 = time.perf_counter()
            reason = self.url_filter.check(page.url)
            stats.seconds["url_filter"] += time.perf_counter() - t0
            if reason:
                drop("url_filter", reason)
                return None

        where[0] = "language"
        stats.entered["language"] += 1
        t0 = time.perf_counter()
        lang, score, keep = self.langid.predict(text)
        stats.seconds["language"] += time.perf_counter() - t0
        stats.languages[lang] += 1
        lang_score = (lang, score)
        if not keep:
            drop("language", f"not_{'_'.join(self.conf.language.languages)}")
            return None

        t0 = time.perf_counter()
        stage, reason, filtered, metrics = self.quality.measure(text)
        stats.seconds["quality"] += time.perf_counter() - t0
        for name in self.quality_stages:  # stages run in order and stop at the first rejection
            where[0] = name
            stats.entered[name] += 1
            if name == stage:
                break
        if stage is not None:
            drop(stage, reason, metrics)
            return None

        text = normalize_text(filtered, self.conf.normalize)
        stats.bytes["text_kept"] += len(text.encode("utf-8"))
        return {
            "id": page.id,
            "text": text,
            "url": page.url,
            "date": page.date,
            "dump": dump_of(page.file_path) or self.conf.dump,  # from the data: the crawl named in the path
            "file_path": page.file_path,
            "language": lang,
            "language_score": score,
            "chars": chars,
            **quality_metric_row(metrics),
        }


def _as_text(value) -> str:
    return value if isinstance(value, str) else ""


_WORKER_PIPELINES: dict[str, BuildPipeline] = {}


def worker_pipeline(conf_json: str) -> BuildPipeline:
    """One pipeline per Python worker and config: Spark reuses workers across tasks."""
    pipeline = _WORKER_PIPELINES.get(conf_json)
    if pipeline is None:
        from corpus.config import config_from_json

        pipeline = BuildPipeline(config_from_json(conf_json))
        _WORKER_PIPELINES[conf_json] = pipeline
    return pipeline
