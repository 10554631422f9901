"""The per-file build pipeline on its own, without Spark: one WARC file in, kept rows, removed rows and stats out."""

from __future__ import annotations

import json
from collections import Counter

import pyarrow as pa
import pytest

from corpus.build.pipeline import BuildPipeline
from corpus.build.stages import CORE_STAGES
from corpus.config import load_config
from corpus.schema import DOC_SCHEMA, REMOVED_SCHEMA
from corpus.synth.crawl import write_synthetic_crawl


@pytest.fixture(scope="module")
def one_file(tmp_path_factory):
    crawl = tmp_path_factory.mktemp("pipeline") / "crawl"
    write_synthetic_crawl(crawl, pages=80, seed=13, files=1)
    truth = [json.loads(line) for line in (crawl / "truth.jsonl").read_text().splitlines()]
    (warc,) = crawl.glob("*.warc.gz")
    result = BuildPipeline(load_config()).process_file(str(warc))
    return warc, truth, result


def test_every_record_is_kept_or_removed_once_with_the_expected_stage(one_file):
    _, truth, result = one_file
    kept = {d["id"] for d in result.docs}
    removed = {r["id"]: r for r in result.removed}
    assert not kept & removed.keys()
    assert len(kept) + len(removed) == len(truth)
    for t in truth:
        if t["expected"] == "drop":
            assert t["record_id"] in removed, t["kind"]
        if t["kind"].startswith("lang_"):
            assert removed[t["record_id"]]["stage"] == "language"
        if t["kind"] == "adult_domain":
            assert removed[t["record_id"]]["stage"] == "url_filter"


def test_rows_fit_the_schemas_and_the_stats_add_up(one_file):
    warc, truth, result = one_file
    pa.Table.from_pylist(result.docs, schema=DOC_SCHEMA)  # raises on a missing or mistyped column
    pa.Table.from_pylist(result.removed, schema=REMOVED_SCHEMA)
    stats = result.stats
    assert stats["file"] == str(warc) and stats["kept"] == len(result.docs)
    assert set(stats["stages"]) == set(CORE_STAGES)  # stages after them (off by default) are listed when on
    removed_by_stage = Counter(r["stage"] for r in result.removed)
    for stage, st in stats["stages"].items():
        assert st["in"] - st["out"] == sum(st["removed"].values()) == removed_by_stage.get(stage, 0), stage
    assert stats["stages"]["read"]["in"] == len(truth)
    assert all(d["language"] == "en" and d["language_score"] > 0.65 for d in result.docs)


def test_the_same_file_gives_the_same_rows(one_file):
    warc, _, result = one_file
    again = BuildPipeline(load_config()).process_file(str(warc))
    assert again.docs == result.docs and again.removed == result.removed


def test_dump_comes_from_the_data_and_the_config_only_as_a_fallback():
    from conftest import shared_data

    from corpus.io.formats import dump_of

    assert dump_of("s3://commoncrawl/crawl-data/CC-MAIN-2024-10/segments/x/warc/a.warc.gz") == "CC-MAIN-2024-10"
    assert dump_of("/data/crawl-00000.warc.gz") is None
    real = shared_data("warc", "cc", "CC-MAIN-2020-34-excerpt.warc.gz")
    result = BuildPipeline(load_config(overrides=["dump=fallback"])).process_file(str(real))
    assert result.docs and {d["dump"] for d in result.docs} == {"CC-MAIN-2020-34"}
