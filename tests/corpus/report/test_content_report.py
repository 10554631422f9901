"""The report and the diff of runs with the content filter: histograms of its columns with the configured
thresholds, samples per drop reason with the deciding values, and what a threshold change moves.

The run folders are written by the real build pipeline (BuildPipeline over real German tweets, a real fastText
model trained by `corpus classifier train`'s function) and the build step's own stats merge, without Spark: the
report reads only the folder, and the Spark path of the stage is the same pipeline (tests/corpus/build/)."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import shared_data

from corpus.build.content_training import labelled, write_training_files
from corpus.build.pipeline import BuildPipeline
from corpus.classify.commands import train
from corpus.config import load_config
from corpus.io.readers import Page
from corpus.report.data import collect
from corpus.report.diff import write_diff
from corpus.schema import DOC_SCHEMA, REMOVED_SCHEMA, with_stage_columns
from corpus.steps.build import merge_file_stats


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    out = tmp_path_factory.mktemp("content-report-model")
    toxic, clean = write_training_files("de", shared_data("content"), out)
    path = str(out / "toxic-de.bin")
    train([toxic], [clean], path, lang="de", max_per_class=1000, epoch=25, lr=0.2)
    return path


def _run(tmp_path, name: str, model: str, threshold: float):
    conf = load_config(overrides=[
        "quality.gopher_repetition=null", "quality.gopher_quality=null", "quality.c4=null", "quality.fineweb=null",
        "language.languages=[de]", "language.threshold=0.0",
        f"quality.content_filter={{badwords: false, categories: [], models: {{de: {model}}}, level: document, "
        f"threshold: {threshold}}}"])
    pipeline = BuildPipeline(conf)
    tweets = labelled("de", shared_data("content"))["heldout"][:300]
    pages = (Page(id=f"t{i}", url=f"https://example.org/{i}", date="2018", file_path="tweets", text=t)
             for i, (t, _, _) in enumerate(tweets))
    docs, removed = [], []
    stats = pipeline.process_pages("tweets", pages, docs.append, removed.append)
    run = tmp_path / name
    for sub, rows, schema in (("docs", docs, DOC_SCHEMA), ("removed", removed, REMOVED_SCHEMA)):
        (run / sub).mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(rows, with_stage_columns(schema, pipeline.extra_fields)),
                       run / sub / "part-0.parquet")
    (run / "stats").mkdir()
    (run / "stats" / "build.json").write_text(json.dumps(merge_file_stats([stats])))
    (run / "config.yaml").write_text(yaml.safe_dump(conf.model_dump()))
    return run, docs, removed


def test_report_and_diff_show_the_content_filter(tmp_path, model):
    a, docs_a, removed_a = _run(tmp_path, "a", model, 0.5)
    b, docs_b, _ = _run(tmp_path, "b", model, 0.8)
    summary = collect(str(a))
    metrics = summary["quality_metrics"]["metrics"]
    score = metrics["content_score"]
    toxic = [r for r in removed_a if r["reason"] == "toxic_score"]
    assert toxic and sum(score["removed"]) == len(toxic)
    assert sum(score["kept"]) == sum(d["content_score"] is not None for d in docs_a)
    assert score["thresholds"] == [{"key": "quality.content_filter.threshold", "value": 0.5, "drops": "above"}]
    assert "quality_score" not in metrics  # a stage's columns are shown only when the run has them
    (group,) = [g for g in summary["samples"]["removed"] if g["reason"] == "toxic_score"]
    assert group["stage"] == "content_filter" and group["samples"]
    for sample in group["samples"]:
        (value,) = [v for v in sample["values"] if v["name"] == "content_score"]
        assert value["value"] >= 0.5 and value["threshold"] == 0.5

    d = write_diff(str(a), str(b), str(tmp_path / "diff.html"))
    moved = {r["id"] for r in toxic if r["content_score"] < 0.8}
    assert moved and {x["id"] for x in docs_b} - {x["id"] for x in docs_a} == moved
    by = d["by_id"]
    assert by["kept_in_b_not_a"]["count"] == len(moved) and by["kept_in_a_not_b"]["count"] == 0
    assert [(g["stage"], g["reason"], g["count"]) for g in by["kept_in_b_not_a"]["by_reason"]] == [
        ("content_filter", "toxic_score", len(moved))]
