"""End to end on a labelled synthetic crawl: `corpus run` (build → dedup → pii → tokenize) against the truth."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import pyarrow.parquet as pq
import pytest
from conftest import REPO

from corpus.config import load_config
from corpus.steps.chain import run_all
from corpus.synth.crawl import write_synthetic_crawl
from corpus.synth.dedup_eval import pairwise_scores

OVERRIDES = ["tokenize.vocab_size=3000", "tokenize.val_fraction=0.05", "tokenize.shard_tokens=50000",
             "tokenize.partitions=2"]


@pytest.fixture(scope="module")
def synth_run(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("synthrun")
    write_synthetic_crawl(root / "crawl", pages=400, seed=5, files=4)
    truth = [json.loads(line) for line in (root / "crawl" / "truth.jsonl").read_text().splitlines()]
    conf = load_config(overrides=OVERRIDES)
    summary = run_all(spark, [str(root / "crawl")], str(root / "run"), conf, log=lambda m: None)
    return root / "run", truth, summary


def test_build_keeps_good_pages_and_drops_the_rest_at_the_right_stage(synth_run):
    run, truth, _ = synth_run
    kept = {d["id"] for d in pq.read_table(run / "docs").to_pylist()}
    removed = {r["id"]: (r["stage"], r["reason"]) for r in pq.read_table(run / "removed").to_pylist()}
    by_kind = defaultdict(list)
    for t in truth:
        by_kind[t["kind"]].append(t)
    keep_kinds = [t for t in truth if t["expected"] == "keep"]
    assert sum(t["record_id"] in kept for t in keep_kinds) >= 0.95 * len(keep_kinds)
    for t in truth:
        if t["expected"] == "drop":
            assert t["record_id"] not in kept, t["kind"]
            assert t["record_id"] in removed, t["kind"]
    stages = {kind: Counter(removed[t["record_id"]][0] for t in items if t["record_id"] in removed)
              for kind, items in by_kind.items()}
    for lang in ("lang_de", "lang_fr", "lang_es", "lang_ru", "lang_zh", "lang_ja"):
        assert set(stages[lang]) == {"language"}, lang
    assert set(stages["adult_domain"]) == {"url_filter"}
    assert set(stages["non_html"]) == {"read"} and set(stages["http_error"]) == {"read"}
    for kind in ("spam", "repeated_lines", "too_short"):
        assert set(stages[kind]) <= {"gopher_repetition", "gopher_quality", "c4", "fineweb"}, kind
    stats = json.loads((run / "stats" / "build.json").read_text())
    assert stats["documents_kept"] == len(kept)


def test_dedup_pairwise_precision_recall(synth_run):
    run, truth, _ = synth_run
    docs = pq.read_table(run / "docs").to_pylist()
    kept = pq.read_table(run / "dedup" / "docs").to_pylist()
    scores = pairwise_scores(docs, kept, truth_threshold=0.8)
    assert scores["truth_pairs"] > 20
    assert scores["precision"] >= 0.95 and scores["recall"] >= 0.95, scores
    stats = json.loads((run / "stats" / "dedup.json").read_text())
    assert stats["near_duplicate_clusters"] > 5 and stats["exact_duplicates_removed"] > 0


def test_planted_pii_never_reaches_the_output(synth_run):
    run, truth, summary = synth_run
    texts = "\n".join(d["text"] for d in pq.read_table(run / "pii" / "docs").to_pylist())
    planted = [p for t in truth for p in t["pii"]]
    assert len(planted) > 10
    leaked = [p for p in planted if p["value"] in texts]
    assert leaked == []
    stats = json.loads((run / "stats" / "pii.json").read_text())
    assert stats["replaced_spans"] > 0 and summary["pii"]["replaced_spans"] == stats["replaced_spans"]


def test_tokens_and_rerun_skips_finished_steps(synth_run, spark):
    run, _, summary = synth_run
    manifest = json.loads((run / "tokens" / "manifest.json").read_text())
    assert manifest["splits"]["train"]["tokens"] > 10_000 and summary["tokenize"]["tokens"]["train"] > 0
    before = (run / "tokens" / "manifest.json").read_bytes()
    logs = []
    # The same input and config: every later step's fingerprint is current (a changed config would rerun them).
    again = run_all(spark, [str(run.parent / "crawl")], str(run), load_config(overrides=OVERRIDES), log=logs.append)
    assert "step dedup: already complete, skipped" in logs and "step tokenize: already complete, skipped" in logs
    assert (run / "tokens" / "manifest.json").read_bytes() == before
    assert again["dedup"] == summary["dedup"]


def test_pretrain_on_corpus_run_tokens_then_generate(synth_run, tmp_path):
    """The chain's end: `trainer pretrain` streams the shards `corpus run` wrote; loss falls; generate answers."""
    from trainer.config import load_config as load_train_config
    from trainer.generate import generate_text
    from trainer.pretrain import pretrain

    run, _, _ = synth_run
    cfg = load_train_config(REPO / "conf" / "train" / "tiny.yaml", ["train.max_steps=40", "train.warmup_steps=5",
                                                     "train.eval_interval=20", "train.log_interval=1",
                                                     "train.eval_batches=2", "model.block_size=64"])
    out = tmp_path / "pretrain"
    pretrain(cfg, run / "tokens", out, quiet=True)
    losses = [r["loss"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
              if r["kind"] == "train"]
    assert len(losses) == 40 and sum(losses[-5:]) / 5 < 0.8 * losses[0]
    text = generate_text(out, "The history of", max_new_tokens=20, temperature=0.8, seed=1)
    assert isinstance(text, str) and len(text) > 0


FINEWEB_COLUMNS = ["text", "id", "dump", "url", "date", "file_path", "language", "language_score", "token_count"]


def test_published_docs_have_finewebs_schema_in_datasets_and_duckdb(synth_run):
    import datasets
    import duckdb

    run, _, summary = synth_run
    files = sorted(str(p) for p in (run / "final" / "docs").glob("part-*.parquet"))
    ds = datasets.load_dataset("parquet", data_files=files, split="train")
    assert ds.column_names == FINEWEB_COLUMNS
    assert ds.features["token_count"].dtype == "int64" and ds.features["language_score"].dtype == "float64"
    assert len(ds) == summary["pii"]["out"] == summary["publish"]["out"]
    assert all(n > 0 for n in ds["token_count"])

    con = duckdb.connect()
    described = con.execute(f"DESCRIBE SELECT * FROM read_parquet({files!r})").fetchall()
    assert [row[0] for row in described] == FINEWEB_COLUMNS
    extras = sorted(str(p) for p in (run / "final" / "extras").glob("part-*.parquet"))
    joined = con.execute(f"SELECT count(*), count(e.cluster_id) FROM read_parquet({files!r}) d "
                         f"JOIN read_parquet({extras!r}) e USING (id)").fetchone()
    assert joined == (len(ds), len(ds))
