"""The step base and the chain: markers, fingerprints, failed files retried, stale parts, config changes, overlapping
folders, duplicate ids and the removed tables of dedup and pii."""

from __future__ import annotations

import shutil
import warnings

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import shared_data

from corpus.config import ConfigError, DedupConf, PiiConf, load_config
from corpus.steps.base import MARKERS, Step, join_uri, run_root_of
from corpus.steps.build import run_build
from corpus.steps.chain import run_all
from corpus.steps.dedup import run_dedup
from corpus.steps.pii import run_pii
from corpus.synth.crawl import write_synthetic_crawl

FAST = ["tokenize.vocab_size=600", "tokenize.val_fraction=0.1", "tokenize.partitions=1", "dedup.output_partitions=2",
        "pii.output_partitions=2"]


def _rows(folder) -> list[dict]:
    files = sorted(p for p in folder.glob("*.parquet"))
    return [r for f in files for r in pq.read_table(f).to_pylist()]


def test_run_root_of_keeps_the_scheme():
    assert run_root_of("s3a://bucket/runs/r1/dedup") == "s3a://bucket/runs/r1"
    assert run_root_of("s3://bucket/dedup/") == "s3://bucket"
    assert run_root_of("runs/r1/tokens") == "runs/r1"
    assert run_root_of("tokens") == "."
    assert join_uri("s3://b/run/", "pii", "docs") == "s3://b/run/pii/docs"


class _Failing(Step):
    name, folder = "failing", "failing"

    def fingerprint(self) -> str:
        return "f"

    def work(self, spark) -> dict:
        assert not self.run.exists(MARKERS, "failing.json"), "the marker must be gone before the work starts"
        raise RuntimeError("crash in the middle of writing outputs")


def test_a_crashed_step_leaves_no_marker_that_says_complete(tmp_path):
    step = _Failing(str(tmp_path))
    step.run.makedirs(MARKERS)
    step.run.write_json({"step": "failing", "fingerprint": "f"}, MARKERS, "failing.json")
    assert step.is_complete()
    with pytest.raises(RuntimeError):
        step.execute(None)  # no SparkSession needed: progress reporting is best effort
    assert not step.is_complete() and step.marker() is None


def test_output_folder_overlapping_the_input_is_refused_before_anything_is_deleted(spark, tmp_path):
    run = tmp_path / "run"
    docs = run / "docs"
    docs.mkdir(parents=True)
    pq.write_table(pa.table({"id": ["a"], "text": ["some text here"]}), docs / "part-0.parquet")
    with pytest.raises(ConfigError, match="overlaps its input"):
        run_dedup(spark, str(docs), str(run), DedupConf())  # `corpus dedup --input RUN/docs --out RUN`
    with pytest.raises(ConfigError, match="overlaps its input"):
        run_pii(spark, str(run / "pii" / "docs"), str(run / "pii"), PiiConf())
    assert (docs / "part-0.parquet").exists()


def test_colliding_ids_never_multiply_rows_and_every_drop_is_listed(spark, tmp_path):
    text = "the quick brown fox jumps over the lazy dog near the river bank today " * 3
    rows = [
        {"id": "x", "text": text, "url": "http://a/1", "file_path": "f1"},
        {"id": "x", "text": text, "url": "http://a/1", "file_path": "f2"},  # the same page listed twice
        {"id": "x", "text": "something else entirely, with other words " * 3, "url": "http://b/", "file_path": "f3"},
        {"id": "y", "text": text, "url": "http://c/", "file_path": "f1"},  # exact copy of x
        {"id": "z", "text": "a third page about another topic with its own words " * 3, "url": "", "file_path": "f1"},
    ]
    inp = tmp_path / "in"
    inp.mkdir()
    pq.write_table(pa.Table.from_pylist(rows), inp / "part-0.parquet")
    stats = run_dedup(spark, str(inp), str(tmp_path / "run" / "dedup"), DedupConf())
    kept = _rows(tmp_path / "run" / "dedup" / "docs")
    removed = _rows(tmp_path / "run" / "dedup" / "removed")
    assert len(kept) <= len(rows)
    assert len({r["id"] for r in kept}) == len(kept)
    assert len(kept) + len(removed) == len(rows) == stats["documents_in"]
    assert stats["duplicate_ids_removed"] == 2 and stats["documents_removed"] == len(removed)
    reasons = sorted(r["reason"] for r in removed)
    assert reasons == ["duplicate_id", "duplicate_id", "exact_duplicate"]
    assert all(r["stage"] == "dedup" and r["duplicate_of"] for r in removed)
    exact = next(r for r in removed if r["reason"] == "exact_duplicate")
    assert exact["id"] == "y" and exact["duplicate_of"] == "x"


@pytest.fixture(scope="module")
def small_crawl(tmp_path_factory):
    crawl = tmp_path_factory.mktemp("steps") / "crawl"
    write_synthetic_crawl(crawl, pages=90, seed=21, files=3)
    return crawl


def test_new_input_files_rerun_the_later_steps_and_dropped_inputs_leave(spark, small_crawl, tmp_path):
    conf = load_config(overrides=FAST)
    first = tmp_path / "crawl"
    first.mkdir()
    files = sorted(small_crawl.glob("*.warc.gz"))
    for f in files[:2]:
        shutil.copy(f, first)
    run = tmp_path / "run"
    logs: list[str] = []
    run_all(spark, [str(first)], str(run), conf, log=logs.append)
    before = len(_rows(run / "pii" / "docs"))
    logs.clear()
    run_all(spark, [str(first)], str(run), conf, log=logs.append)
    assert "step dedup: already complete, skipped" in logs and "step tokenize: already complete, skipped" in logs

    shutil.copy(files[2], first)  # a new file arrives: build picks it up, and nothing downstream may stay stale
    logs.clear()
    summary = run_all(spark, [str(first)], str(run), conf, log=logs.append)
    assert "step dedup" in logs and "step pii" in logs and "step tokenize" in logs
    assert len(_rows(run / "pii" / "docs")) > before
    assert summary["tokenize"]["in"] == len(_rows(run / "pii" / "docs"))

    (first / files[0].name).unlink()  # an input leaves the listing: its parts leave docs/
    run_build(spark, [str(first)], str(run), conf)
    assert len(list((run / "docs").glob("*.parquet"))) == 2 == len(list((run / "_progress").glob("*.json")))


def test_pii_drops_are_listed(spark, tmp_path):
    dense = " ".join(f"mail me at user{i}@example.org" for i in range(40))
    inp = tmp_path / "in"
    inp.mkdir()
    pq.write_table(pa.Table.from_pylist([{"id": "d", "text": dense, "url": "http://x/"},
                                         {"id": "ok", "text": "nothing personal in this text at all", "url": ""}]),
                   inp / "part-0.parquet")
    conf = PiiConf(max_candidate_chars=200)  # a small budget, so the 40 addresses make the first one too dense
    stats = run_pii(spark, str(inp), str(tmp_path / "run" / "pii"), conf, partitions=1)
    removed = _rows(tmp_path / "run" / "pii" / "removed")
    assert stats["documents_dropped_too_dense"] == len(removed) == 1
    assert removed[0] == {"id": "d", "url": "http://x/", "stage": "pii", "reason": "too_dense"}


def test_a_failed_file_is_retried_on_the_next_run(spark, tmp_path):
    good = shared_data("warc", "crawls", "sample-0001.warc.gz")
    later = tmp_path / "later.warc.gz"
    listing = tmp_path / "warc.paths"
    listing.write_text(f"{good}\n{later}\n")
    run = tmp_path / "run"
    first = run_build(spark, [str(listing)], str(run), load_config())
    assert first["stages"]["read"]["removed"]["read_error"] == 1
    assert first["files_incomplete"] == [str(later)]
    shutil.copy(shared_data("warc", "crawls", "sample-0000.warc.gz"), later)  # the outage is over
    second = run_build(spark, [str(listing)], str(run), load_config())
    assert second["files_skipped_as_done"] == 1 and second["files_incomplete"] == []
    assert "read_error" not in second["stages"]["read"]["removed"]
    assert second["documents_kept"] > first["documents_kept"]


def test_a_config_change_on_resume_is_refused_unless_forced(spark, tmp_path):
    good = str(shared_data("warc", "crawls", "sample-0001.warc.gz"))
    run = tmp_path / "run"
    run_build(spark, [good], str(run), load_config())
    with pytest.raises(ConfigError, match="language.threshold"):
        run_build(spark, [good], str(run), load_config(overrides=["language.threshold=0.9"]))
    forced = run_build(spark, [good], str(run), load_config(overrides=["language.threshold=0.9"]), force=True)
    assert forced["files_skipped_as_done"] == 0


def test_a_too_large_vocabulary_is_capped_with_a_warning(tmp_path):
    from corpus.tokenize.tokenizer import load_tokenizer, train_tokenizer

    sample = tmp_path / "sample.txt"
    sample.write_text("a small sample of text\nthat cannot fill a large vocabulary\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = train_tokenizer(sample, tmp_path / "tok", 32000)
    assert any("capped" in str(w.message) for w in caught)
    assert 300 < load_tokenizer(model).vocab_size() < 32000
