"""The `quality_classifier` build stage in the pure pipeline (no Spark): a small classifier trained in seconds on
Wikipedia articles vs blog posts, then the build over unseen articles and posts with the stage enabled."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from conftest import shared_data

from corpus.build.pipeline import BuildPipeline
from corpus.build.quality_classifier import pareto_draw, resolve_top_fraction, sample_order
from corpus.classify.commands import train
from corpus.classify.fasttext_model import load_classifier
from corpus.config import ConfigError, load_config
from corpus.schema import DOC_SCHEMA, REMOVED_SCHEMA


def _lines(src: Path, start: int, n: int) -> list[dict]:
    with gzip.open(src, "rt", encoding="utf-8") as f:
        return [json.loads(line) for i, line in zip(range(start + n), f) if i >= start]


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("qclass")
    wiki, blogs = shared_data("quality", "wikipedia-en.jsonl.gz"), shared_data("blogs", "blogs-sample.jsonl.gz")
    pos = _write(d / "pos.jsonl", _lines(wiki, 0, 600))
    neg = _write(d / "neg.jsonl", _lines(blogs, 0, 600))
    model = str(d / "quality.bin")
    train([str(pos)], [str(neg)], model, seed=1, dim=16)
    # the build's input: unseen articles and (long enough to pass the rule filters) posts, interleaved
    articles = [{"id": f"w{i}", "text": r["text"], "url": r["url"]} for i, r in enumerate(_lines(wiki, 20000, 80))]
    posts = [{"id": f"b{i}", "text": r["text"], "url": f"http://blog.example/{i}"}
             for i, r in enumerate(r for r in _lines(blogs, 20000, 600) if len(r["text"]) > 500)][:80]
    mixed = [row for pair in zip(articles, posts) for row in pair]
    files = [_write(d / "in-a.jsonl", mixed[:80]), _write(d / "in-b.jsonl", mixed[80:])]
    return {"model": model, "files": [str(f) for f in files], "dir": d}


# The rule filters off, so that most of the documents reach the classifier (WikiExtractor's short heading lines
# fail FineWeb's short-line rule, many posts Gopher's): this tests the classifier stage itself.
RULES_OFF = [f"quality.{name}=null" for name in ("gopher_repetition", "gopher_quality", "c4", "fineweb")]


def _conf(model: str, *more: str):
    return load_config(overrides=[*RULES_OFF, f"quality.quality_classifier.model={model}", *more])


def _run(conf, files):
    pipeline = BuildPipeline(conf)
    docs, removed, stats = [], [], []
    for f in files:
        result = pipeline.process_file(f)
        docs += result.docs
        removed += result.removed
        stats.append(result.stats)
    return docs, removed, stats


def _source(doc_id: str) -> str:
    return doc_id.rsplit("/", 1)[-1][0]  # ids are qualified by the file: "<file key>/w3"


def test_the_build_keeps_articles_and_drops_posts_by_the_classifier(setup):
    docs, removed, stats = _run(_conf(setup["model"]), setup["files"])
    scored = [r for r in removed if r["stage"] == "quality_classifier"]
    # every document that reached the stage carries its score, kept or removed, and the threshold decided
    assert all(d["quality_score"] >= 0.5 for d in docs)
    assert scored and all(r["quality_score"] < 0.5 and r["reason"] == "quality_classifier_below_threshold"
                          for r in scored)
    pa.Table.from_pylist(docs, schema=DOC_SCHEMA.append(pa.field("quality_score", pa.float64())))
    pa.Table.from_pylist(removed, schema=REMOVED_SCHEMA.append(pa.field("quality_score", pa.float64())))
    kept = [_source(d["id"]) for d in docs]
    dropped = [_source(r["id"]) for r in scored]
    assert kept.count("w") >= 0.9 * len(kept) and dropped.count("b") >= 0.9 * len(dropped)
    entered = sum(s["stages"]["quality_classifier"]["in"] for s in stats)
    assert entered == len(docs) + len(scored)
    # the score is the model's P(positive) of the text the stage saw
    classifier = load_classifier(setup["model"])
    assert docs[0]["quality_score"] == pytest.approx(classifier.score_one(docs[0]["text"]), abs=1e-6)


def test_the_default_config_has_no_classifier_and_no_new_column(setup):
    pipeline = BuildPipeline(load_config())
    assert "quality_classifier" not in [s.name for s in pipeline.stages] and pipeline.extra_fields == []
    assert "quality_classifier" not in pipeline.stage_names
    # off, it is left out of the config's dump: RUN/config.yaml and the step fingerprints stay as before the stage
    assert "quality_classifier" not in load_config().model_dump()["quality"]
    assert "quality_classifier" in _conf(setup["model"]).model_dump()["quality"]


def test_pareto_keep_is_seeded_per_document_and_keeps_some_low_scores(setup):
    # alpha 1 keeps a score-0 document with probability 1/2 (alpha 3: 1/8): some of the ~70 posts stay whatever
    # the ids (they hold the temporary folder's file key)
    pareto = ["quality.quality_classifier.keep=pareto", "quality.quality_classifier.pareto_alpha=1"]
    conf = _conf(setup["model"], *pareto, "quality.quality_classifier.seed=5")
    docs, removed, _ = _run(conf, setup["files"])
    again, _, _ = _run(conf, list(reversed(setup["files"])))
    assert sorted(d["id"] for d in again) == sorted(d["id"] for d in docs)
    kept = {d["id"] for d in docs}
    scored = docs + [r for r in removed if r["stage"] == "quality_classifier"]
    for row in scored:
        assert (pareto_draw(row["id"], 5, 1.0) > 1 - row["quality_score"]) == (row["id"] in kept), row["id"]
    assert len(scored) > 100 and any(d["quality_score"] < 0.5 for d in docs), "soft keep: some low scores stay"
    other, _, _ = _run(_conf(setup["model"], *pareto, "quality.quality_classifier.seed=6"), setup["files"])
    assert sorted(d["id"] for d in other) != sorted(d["id"] for d in docs)


def test_top_fraction_resolves_one_threshold_from_a_deterministic_sample(setup):
    conf = _conf(setup["model"], "quality.quality_classifier.top_fraction=0.3")
    with pytest.raises(ConfigError, match="resolved into a threshold once per run"):
        BuildPipeline(conf)
    resolved, record = resolve_top_fraction(conf, setup["files"])
    again, record_again = resolve_top_fraction(conf, list(reversed(setup["files"])))
    assert record == record_again and record["top_fraction"] == 0.3
    assert resolved.quality.quality_classifier.threshold == record["threshold"]
    # the sample here is every document reaching the stage: the threshold is their 70% quantile
    scores = [d["quality_score"] for d in _run(_conf(setup["model"], "quality.quality_classifier.threshold=0"),
                                               sample_order(setup["files"], 0))[0]]
    assert record["sample_documents"] == len(scores) and record["sample_files"] == 2
    assert record["threshold"] == pytest.approx(float(np.quantile(scores, 0.7)))
    docs, _, _ = _run(resolved, setup["files"])
    assert abs(len(docs) / len(scores) - 0.3) <= 1 / len(scores) + 1e-9
    # a smaller sample: its share of each file (the first documents reaching the classifier), files in sample order
    small = _conf(setup["model"], "quality.quality_classifier.top_fraction=0.3",
                  "quality.quality_classifier.sample_documents=20")
    _, small_record = resolve_top_fraction(small, setup["files"])
    per_file = [[d["quality_score"] for d in _run(_conf(setup["model"], "quality.quality_classifier.threshold=0"),
                                                  [f])[0]][:10] for f in sample_order(setup["files"], 0)]
    assert small_record["sample_documents"] == 20
    assert small_record["threshold"] == pytest.approx(float(np.quantile(per_file[0] + per_file[1], 0.7)))


def test_bad_classifier_settings_are_clear_errors(setup, tmp_path):
    with pytest.raises(ConfigError, match="does not combine with keep: pareto"):
        _conf(setup["model"], "quality.quality_classifier.keep=pareto", "quality.quality_classifier.top_fraction=0.1")
    with pytest.raises(ConfigError, match="model: Field required"):
        load_config(overrides=["quality.quality_classifier.threshold=0.2"])
    from corpus.classify.fasttext_model import ClassifierError

    with pytest.raises(ClassifierError, match="classifier model not found"):
        BuildPipeline(_conf(str(tmp_path / "missing.bin")))


def test_corpus_build_keeps_the_top_fraction_with_the_threshold_in_the_stats(spark, setup):
    import pyarrow.parquet as pq

    from corpus.cli import main

    out = setup["dir"] / "run"
    sets = [x for s in [*RULES_OFF, f"quality.quality_classifier.model={setup['model']}",
                        "quality.quality_classifier.top_fraction=0.25"] for x in ("--set", s)]
    main(["build", *(x for f in setup["files"] for x in ("-i", f)), "--out", str(out), *sets])
    stats = json.loads((out / "stats" / "build.json").read_text())
    record = stats["quality_classifier"]
    assert record["top_fraction"] == 0.25 and record["sample_files"] == 2
    # the driver's threshold is the one the tasks kept by: the same as resolving it again, here
    _, again = resolve_top_fraction(_conf(setup["model"], "quality.quality_classifier.top_fraction=0.25"),
                                    setup["files"])
    assert record == again
    docs = pq.read_table(out / "docs")
    scores = docs.column("quality_score").to_pylist()
    assert docs.schema.field("quality_score").type == pa.float64() and min(scores) >= record["threshold"]
    entered = stats["stages"]["quality_classifier"]["in"]
    assert entered == record["sample_documents"] and abs(len(scores) / entered - 0.25) <= 1 / entered + 1e-9
    removed = pq.read_table(out / "removed").to_pylist()
    assert all(r["quality_score"] < record["threshold"] for r in removed if r["stage"] == "quality_classifier")
    assert "top_fraction: 0.25" in (out / "config.yaml").read_text()  # the setting as given, not the threshold
