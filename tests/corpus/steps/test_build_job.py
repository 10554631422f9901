"""`corpus build` on real Spark (local mode): outputs, stats, determinism, resume after kill -9."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import REPO, shared_data

from corpus.config import load_config
from corpus.steps.build import run_build


def _digest_dir(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.parquet"))}


def _docs(run: Path):
    return pq.read_table(run / "docs").to_pylist()


@pytest.fixture(scope="module")
def real_inputs():
    return [str(shared_data("warc", "crawls")), str(shared_data("warc", "cc")), str(shared_data("warc", "edge")),
            str(shared_data("wet"))]


@pytest.fixture(scope="module")
def real_run(spark, real_inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("real") / "run"
    inputs = [p for p in real_inputs]
    stats = run_build(spark, inputs, str(out), load_config())
    return out, stats


def test_real_warcs_build_outputs_and_stats(real_run):
    out, stats = real_run
    docs = _docs(out)
    assert stats["documents_kept"] == len(docs) > 10
    assert stats["files"] == len(list((out / "_progress").glob("*.json")))
    assert {d["language"] for d in docs} == {"en"}
    assert all(d["language_score"] > 0.65 for d in docs)
    assert len({d["id"] for d in docs}) == len(docs)
    # dump: the CC-MAIN-YYYY-WW crawl named in the file's path, else the config's value
    from corpus.io.formats import dump_of

    assert all(d["text"].strip() and d["dump"] == (dump_of(d["file_path"]) or "synthetic") for d in docs)
    assert any(d["dump"].startswith("CC-MAIN-") for d in docs)
    removed = pq.read_table(out / "removed").to_pylist()
    # Every page that entered is either kept or removed with a stage and a reason: no silent loss.
    assert stats["documents_in"] == len(docs) + len(removed)
    assert all(r["stage"] and r["reason"] for r in removed)
    stages = stats["stages"]
    assert stages["language"]["removed"] and stages["read"]["removed"]["not_html"] > 0
    for name, st in stages.items():
        assert st["in"] - sum(st["removed"].values()) == st["out"], name
    saved = json.loads((out / "stats" / "build.json").read_text())
    assert saved["documents_kept"] == stats["documents_kept"]
    assert (out / "config.yaml").exists() and (out / "inputs.txt").read_text().count("\n") == stats["files"]


def test_same_input_same_bytes(spark, real_run, real_inputs, tmp_path):
    first, _ = real_run
    second = tmp_path / "again"
    run_build(spark, real_inputs, str(second), load_config())
    assert _digest_dir(first / "docs") == _digest_dir(second / "docs")
    assert _digest_dir(first / "removed") == _digest_dir(second / "removed")


def test_rerun_skips_finished_files(spark, real_run, real_inputs):
    out, stats = real_run
    before = _digest_dir(out / "docs")
    again = run_build(spark, real_inputs, str(out), load_config())
    # Files that ended early (damaged edge cases among the inputs) are not complete: a rerun retries them.
    assert stats["files_incomplete"] and again["files_incomplete"] == stats["files_incomplete"]
    assert again["files_skipped_as_done"] == stats["files"] - len(stats["files_incomplete"])
    assert _digest_dir(out / "docs") == before


def test_trafilatura_engine_runs(spark, tmp_path):
    out = tmp_path / "traf"
    stats = run_build(spark, [str(shared_data("warc", "crawls"))], str(out),
                      load_config(overrides=["extract.engine=trafilatura"]))
    assert stats["documents_kept"] > 0


def _cli(*args, env=None, **kw):
    return subprocess.run([sys.executable, "-m", "corpus.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=REPO, **kw)


def test_cli_reports_missing_java_clearly(tmp_path):
    env = {"PATH": str(tmp_path), "JAVA_HOME": ""}  # an empty PATH: no java to find
    res = _cli("build", "--input", str(shared_data("warc", "edge")), "--out", str(tmp_path / "r"), env=env)
    assert res.returncode == 2
    assert "Java 17+ is required" in res.stderr and "openjdk-17" in res.stderr


def test_cli_reports_bad_config_before_starting_spark(tmp_path):
    res = _cli("build", "--input", str(shared_data("warc", "edge")), "--out", str(tmp_path / "r"),
               "--set", "extract.engine=justext")
    assert res.returncode == 2
    assert "extract.engine" in res.stderr and "resiliparse" in res.stderr


def test_kill_minus_9_then_rerun_neither_duplicates_nor_loses(spark, tmp_path):
    from corpus.synth.crawl import write_synthetic_crawl

    crawl = tmp_path / "crawl"
    write_synthetic_crawl(crawl, pages=600, seed=3, files=12)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "corpus.cli", "build", "--input", str(crawl), "--out", str(killed),
         "--master", "local[1]"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.time() + 300
    progress = killed / "_progress"
    while time.time() < deadline and proc.poll() is None:
        if progress.exists() and len(list(progress.glob("*.json"))) >= 2:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    committed = len(list(progress.glob("*.json")))
    assert 2 <= committed < 12, "the kill must land mid-run for this test to mean anything"

    stats = run_build(spark, [str(crawl)], str(killed), load_config())
    assert stats["files_skipped_as_done"] == committed
    clean = tmp_path / "clean"
    run_build(spark, [str(crawl)], str(clean), load_config())
    assert _digest_dir(killed / "docs") == _digest_dir(clean / "docs")
    ids = [d["id"] for d in _docs(killed)]
    assert len(ids) == len(set(ids)) == len(_docs(clean))


def test_missing_file_in_a_listing_is_recorded_and_the_job_finishes(spark, tmp_path):
    good = shared_data("warc", "crawls", "sample-0001.warc.gz")
    listing = tmp_path / "warc.paths"
    listing.write_text(f"{good}\n{tmp_path / 'gone.warc.gz'}\n")
    stats = run_build(spark, [str(listing)], str(tmp_path / "run"), load_config())
    assert stats["files"] == 2 and stats["documents_kept"] > 0
    assert stats["stages"]["read"]["removed"]["read_error"] == 1
    assert any("gone.warc.gz" in e and "FileNotFoundError" in e for e in stats["errors"])


def test_ids_are_unique_within_a_run_with_colliding_sources(spark, tmp_path):
    """The same WARC under two URIs and JSONL files that reuse ids: every document id is unique, deterministically."""
    src = shared_data("warc", "crawls", "sample-0001.warc.gz")
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / src.name).write_bytes(src.read_bytes())
        rows = [{"id": str(i), "text": text, "url": f"http://{folder}.example/{i}"}
                for i, text in enumerate(_dolma_texts())]
        (tmp_path / folder / "docs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    inputs = [str(tmp_path / f / n) for f in ("a", "b") for n in (src.name, "docs.jsonl")]
    stats = run_build(spark, inputs, str(tmp_path / "run"), load_config())
    docs = _docs(tmp_path / "run")
    ids = [d["id"] for d in docs]
    assert stats["documents_kept"] == len(docs) > 4 and len(set(ids)) == len(ids)
    warc_ids = [d["id"] for d in docs if d["file_path"].endswith(".warc.gz")]
    assert len(warc_ids) % 2 == 0 and all("/<urn:uuid:" in i for i in warc_ids)
    again = run_build(spark, list(reversed(inputs)), str(tmp_path / "again"), load_config())
    assert again["documents_kept"] == stats["documents_kept"]
    assert sorted(d["id"] for d in _docs(tmp_path / "again")) == sorted(ids)


def _dolma_texts() -> list[str]:
    import gzip

    with gzip.open(shared_data("docs", "provided__documents__000.json.gz"), "rt") as f:
        return [json.loads(line)["text"] for line in f]


def test_bad_rows_do_not_stop_the_build(spark, tmp_path):
    """Rows that used to raise out of the task (url of the wrong type, lone surrogates) are read, coerced and
    counted; the job finishes with the good documents."""
    texts = _dolma_texts()
    rows = [{"id": "n", "url": 12345, "text": texts[0]}, {"id": "l", "url": ["http://a.example/"], "text": texts[1]},
            {"id": "s", "text": texts[2][:200] + "\ud800" + texts[2][200:]},
            {"id": "m", "metadata": {"url": {"x": 1}}, "text": texts[3]}]
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    stats = run_build(spark, [str(path)], str(tmp_path / "run"), load_config())
    assert stats["documents_in"] == 4 and stats["documents_kept"] == len(_docs(tmp_path / "run"))
    removed = pq.read_table(tmp_path / "run" / "removed").num_rows
    assert stats["documents_kept"] + removed == 4
