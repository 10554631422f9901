"""The per-file build pipeline: read → the declared stages (corpus.build.stages) → normalize.

Pure Python over one input file; the Spark job only decides which files to run and where results go.
Heavy objects (blocklists, fastText model, spaCy tokenizer) are built once per Python worker.

Documents stream out through callbacks (`process_file_streaming`), so a file's results are never all held in
memory. An exception while processing one page is that page's problem: it is dropped and counted at the stage
it happened in with the reason `pipeline_error:<ExceptionType>`, and the file goes on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from corpus.build.normalize import chinese_converter, is_chinese, normalize_text
from corpus.build.stage import Doc, StageStats
from corpus.build.stages import build_stages, stats_stage_names
from corpus.config import PipelineConf
from corpus.io.formats import dump_of
from corpus.io.readers import FILE_ENDED_EARLY, Page, Skip, iter_pages, short
from corpus.schema import TEXT_HEAD_CHARS, quality_metric_row


class OutputError(RuntimeError):
    """Writing results failed: not a page's fault, so it is not counted as a drop but fails the task."""


@dataclass
class FileResult:
    docs: list[dict] = field(default_factory=list)
    removed: list[dict] = field(default_factory=list)
    stats: dict = field(default_factory=dict)


class BuildPipeline:
    """The stages declared in corpus.build.stages that the config enables, run page by page over one file."""

    def __init__(self, conf: PipelineConf):
        self.conf = conf
        self.stages = build_stages(conf)
        self.stage_names = stats_stage_names(conf)
        # Output columns the enabled stages add beyond the base schema (none with the default config).
        self.extra_fields = [f for stage in self.stages for f in stage.columns]
        self._chinese = chinese_converter(conf.normalize.chinese_script)
        self._emit_removed: Callable[[dict], None] | None = None

    def stage(self, name: str):
        """The enabled stage called `name` (KeyError when it is not part of this pipeline)."""
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)

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
        stats = StageStats(uri, self.stage_names)
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
                self._emit(stats, "read", item.reason, item.id, item.url, uri)
                if item.reason in FILE_ENDED_EARLY:
                    stats.ended_early = item.reason
                if item.detail:
                    stats.error(f"{item.reason}: {item.detail}")
                continue
            row = self._process_page(item, stats)
            if row is not None:
                emit_doc(row)
                kept += 1
        stats.seconds["total"] = time.perf_counter() - started
        return stats.as_dict(kept)

    def _process_page(self, page: Page, stats: StageStats) -> dict | None:
        doc = Doc(page)

        def drop(stage: str, reason: str) -> None:
            self._emit(stats, stage, reason, page.id, page.url, page.file_path, doc.chars,
                       doc.metrics, doc.text_bytes, doc.extracted, (doc.language, doc.language_score), doc.columns)

        stage = self.stages[0]
        try:
            for stage in self.stages:
                if stage.name == "extract" and page.html is not None:
                    stats.bytes["html"] += len(page.html)
                if not stage.run(doc, stats, drop):
                    return None
                if stage.name == "extract":
                    stats.bytes["text_extracted"] += doc.text_bytes
            text = normalize_text(doc.text, self.conf.normalize)
            if self._chinese is not None and is_chinese(doc.language):
                text = self._chinese.convert(text)
        except OutputError:
            raise
        except Exception as e:  # noqa: BLE001 - one page's failure must not fail the file (and the job)
            reason = f"pipeline_error:{type(e).__name__}"
            self._emit(stats, stage.name, reason, _as_text(page.id), _as_text(page.url), page.file_path)
            stats.error(f"{reason}: {page.file_path}: page {short(page.id, 80)}: {short(e)}")
            return None
        finally:
            if doc.language is not None:
                stats.languages[doc.language] += 1
        stats.bytes["text_kept"] += len(text.encode("utf-8"))
        return {
            "id": page.id,
            "text": text,
            "url": page.url,
            "date": page.date,
            "dump": dump_of(page.file_path) or self.conf.dump,  # from the data: the crawl named in the path
            "file_path": page.file_path,
            "language": doc.language,
            "language_score": doc.language_score,
            "chars": doc.chars,
            **quality_metric_row(doc.metrics),
            **doc.columns,
        }

    def _emit(self, stats, stage, reason, doc_id, url, uri, chars=None, metrics=None, text_bytes=0, text=None,
              lang=(None, None), columns=None) -> None:
        """Count a drop and write its removed row."""
        stats.removed[stage][reason] += 1
        if text_bytes:  # the byte funnel: extracted text bytes each stage removes
            stats.bytes[f"text_removed_{stage}"] += text_bytes
        if self._emit_removed is not None:
            row = {"id": doc_id, "url": url, "stage": stage, "reason": reason, "file_path": uri, "chars": chars,
                   **quality_metric_row(metrics or {}),
                   "text_head": None if text is None else text[:TEXT_HEAD_CHARS],
                   "language": lang[0], "language_score": lang[1],
                   **{name: (columns or {}).get(name) for name, _ in self.extra_fields}}
            try:
                self._emit_removed(row)
            except Exception as e:  # the writer failed (disk, network): the task fails, no page is blamed
                raise OutputError(f"writing removed rows of {uri}: {type(e).__name__}: {e}") from e


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
