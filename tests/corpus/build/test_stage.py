"""The build-stage protocol without Spark: the one declared list, what the base class counts, and stage by stage
behaviour inside the pipeline (enable/disable from config, drops with their values, errors at the right stage)."""

from __future__ import annotations

import json

import pytest

from corpus.build import stages as registry
from corpus.build.pipeline import BuildPipeline
from corpus.build.stage import Doc, Drop, Stage, StageStats
from corpus.config import load_config
from corpus.io.readers import Page
from corpus.report.data import BUILD_STAGES
from corpus.synth.crawl import write_synthetic_crawl


@pytest.fixture(scope="module")
def warc(tmp_path_factory):
    crawl = tmp_path_factory.mktemp("stages") / "crawl"
    write_synthetic_crawl(crawl, pages=60, seed=21, files=1)
    (path,) = crawl.glob("*.warc.gz")
    return str(path)


def test_one_declared_list_in_order_read_by_pipeline_and_report():
    assert registry.STAGES[0] == "read" and registry.STAGES[1:] == tuple(n for n, _ in registry.STAGE_CLASSES)
    assert BUILD_STAGES is registry.STAGES  # the report's funnel reads the same list
    for name, _ in registry.STAGE_CLASSES:  # each class carries the name it is declared under
        assert registry.stage_class(name).name == name
    pipeline = BuildPipeline(load_config())
    assert [s.name for s in pipeline.stages] == list(registry.STAGES[1:len(pipeline.stages) + 1])
    assert pipeline.extra_fields == []  # the default stages add no column: the default schemas are unchanged


def test_a_stage_is_switched_off_by_its_config_section(warc):
    conf = load_config(overrides=["quality.c4=null", "url_filter.enabled=false"])
    pipeline = BuildPipeline(conf)
    names = [s.name for s in pipeline.stages]
    assert "c4" not in names and "url_filter" not in names and "fineweb" in names
    stats = pipeline.process_file(warc).stats
    # the core stages are always listed (runs of any config compare stage by stage); off ones see nothing
    assert list(stats["stages"]) == list(registry.CORE_STAGES)
    assert stats["stages"]["c4"] == {"in": 0, "removed": {}, "out": 0}
    assert stats["stages"]["url_filter"]["in"] == 0
    assert set(stats["seconds"]) >= {"read", "extract", "language", "fineweb", "total"}


class _Counting(Stage):
    name = "toy"
    section = "language"

    def apply(self, doc: Doc) -> Drop | None:
        if "drop" in doc.text:
            return Drop("toy_reason", {"value": 0.5})
        self.record(doc, {"value": 0.1})
        return None


def test_the_base_class_counts_times_and_reports_each_drop_once():
    stage, stats, dropped = _Counting(load_config()), StageStats("file", ("toy",)), []
    page = Page(id="a", url="u", date=None, file_path="f", html=None, text=None)
    kept, dropped_doc = Doc(page, text="keep me"), Doc(page, text="drop me")
    assert stage.run(kept, stats, lambda st, reason: dropped.append((st, reason)))
    assert not stage.run(dropped_doc, stats, lambda st, reason: dropped.append((st, reason)))
    assert dropped == [("toy", "toy_reason")]
    assert kept.metrics == {"toy.value": 0.1} and dropped_doc.metrics == {"toy.value": 0.5}
    out = stats.as_dict(kept=1)["stages"]["toy"]
    assert out == {"in": 2, "removed": {}, "out": 2}  # removals are counted by the pipeline's drop callback
    assert stats.seconds["toy"] > 0


def test_an_exception_in_a_stage_drops_the_page_at_that_stage(warc, monkeypatch):
    pipeline = BuildPipeline(load_config())
    gopher = pipeline.stage("gopher_quality")

    def broken(doc):
        raise ZeroDivisionError("bug in a filter")

    monkeypatch.setattr(gopher, "apply", broken)
    result = pipeline.process_file(warc)
    errors = [r for r in result.removed if r["reason"] == "pipeline_error:ZeroDivisionError"]
    assert errors and {r["stage"] for r in errors} == {"gopher_quality"}
    assert result.stats["stages"]["gopher_quality"]["removed"]["pipeline_error:ZeroDivisionError"] == len(errors)
    assert not result.docs  # every page that reached the broken stage was dropped there, none kept
    assert any("bug in a filter" in e for e in result.stats["errors"])
    json.dumps(result.stats)
