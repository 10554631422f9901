"""Every command on S3, against a real S3-compatible server on 127.0.0.1 (moto's standalone server, conftest).

Nothing in our code is patched: the clients find the server through AWS_ENDPOINT_URL, as a user's would.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import REPO
from pyarrow import fs as pafs

from corpus.config import DedupConf, load_config
from corpus.io.listing import expand_inputs
from corpus.io.rundir import RunDir
from corpus.steps.build import run_build
from corpus.steps.chain import run_all
from corpus.steps.dedup import run_dedup
from corpus.synth.crawl import write_synthetic_crawl

sys.path.insert(0, str(REPO / "scripts"))
from compare_runs import compare  # noqa: E402

OVERRIDES = ["tokenize.vocab_size=800", "tokenize.val_fraction=0.1", "tokenize.shard_tokens=20000",
             "tokenize.partitions=2", "dedup.output_partitions=2", "pii.output_partitions=2"]
pytestmark = pytest.mark.slow


def _bucket(name: str) -> str:
    import boto3

    boto3.client("s3").create_bucket(Bucket=name)
    return name


def _download(uri: str, to: Path) -> Path:
    fs, root = RunDir(uri).fs, RunDir(uri).root
    pafs.copy_files(root, str(to), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
    return to


def _upload(local: Path, uri: str) -> None:
    run = RunDir(uri)
    pafs.copy_files(str(local), run.root, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=run.fs)


@pytest.fixture(scope="module")
def s3_crawl(spark, tmp_path_factory):
    crawl = tmp_path_factory.mktemp("s3crawl") / "crawl"
    write_synthetic_crawl(crawl, pages=120, seed=8, files=3)
    bucket = _bucket("corpus-test")
    _upload(crawl, f"s3://{bucket}/crawl")
    return crawl, f"s3://{bucket}/crawl/"


def test_listing_s3_folders_globs_and_paths_files(s3_crawl, tmp_path):
    crawl, uri = s3_crawl
    files = expand_inputs([uri])
    assert files == [f"s3://corpus-test/crawl/{p.name}" for p in sorted(crawl.glob("*.warc.gz"))]  # no truth.jsonl
    assert expand_inputs(["s3a://corpus-test/crawl/*-00001.warc.gz"]) == ["s3a://corpus-test/crawl/crawl-00001.warc.gz"]
    listing = tmp_path / "warc.paths.gz"
    listing.write_bytes(gzip.compress("\n".join(f.replace("s3://", "s3a://") for f in files).encode() + b"\n"))
    RunDir("s3://corpus-test/listings").write_bytes_atomic(listing.read_bytes(), "warc.paths.gz")
    assert expand_inputs(["s3://corpus-test/listings/warc.paths.gz"]) == [f.replace("s3://", "s3a://") for f in files]


def test_corpus_run_on_s3_matches_the_same_run_on_local_disk(spark, s3_crawl, tmp_path):
    _, uri = s3_crawl
    conf = load_config(overrides=OVERRIDES)
    local = tmp_path / "run"  # the same folder name as on S3: the report names the run by it
    run_all(spark, [uri], str(local), conf, log=lambda m: None)
    remote = "s3://corpus-test/run"
    summary = run_all(spark, [uri], remote, conf, log=lambda m: None)
    assert summary["tokenize"]["tokens"]["train"] > 0

    got = _download(remote, tmp_path / "from-s3")
    for name in ("docs", "removed", "dedup/docs", "dedup/removed", "pii/docs", "tokens", "report.html",
                 "report.json", "stats/build.json", "lineage.json", "config.yaml", "inputs.txt", "_steps"):
        assert (got / name).exists(), name
    manifest = json.loads((got / "tokens" / "manifest.json").read_text())
    assert {s["name"] for s in manifest["shards"]} <= {p.name for p in (got / "tokens").glob("*.bin")}
    assert (got / "tokens" / "tokenizer.model").exists()
    # The manifest names its sources (s3://… here, a local path there): lineage, different by design.
    assert compare(local, got) == ["differs: tokens/manifest.json"]
    local_manifest = json.loads((local / "tokens" / "manifest.json").read_text())
    for m in (manifest, local_manifest):
        m.pop("source_runs"), [s.pop("path") for s in m["sources"]]
    assert manifest == local_manifest

    # A rerun on S3 finds every step complete and changes no output.
    logs: list[str] = []
    run_all(spark, [uri], remote, conf, log=logs.append)
    assert "step dedup: already complete, skipped" in logs and "step tokenize: already complete, skipped" in logs
    again = _download(remote, tmp_path / "again")
    # Only the build's stats change: this time it skipped every file as done.
    assert compare(got, again) == ["differs (timings aside): stats/build.json"]
    rerun = json.loads((again / "stats" / "build.json").read_text())
    assert rerun["files_skipped_as_done"] == rerun["files"] and rerun["documents_kept"] == summary["build"]["out"]


def test_each_step_alone_on_s3a_and_a_rerun_gives_the_same_bytes(spark, s3_crawl, tmp_path):
    _, uri = s3_crawl
    conf = load_config(overrides=OVERRIDES)
    run = "s3a://corpus-test/steps"
    run_build(spark, [uri], run, conf)
    run_dedup(spark, f"{run}/docs", f"{run}/dedup", DedupConf(output_partitions=2))
    first = _download(run.replace("s3a://", "s3://"), tmp_path / "first")
    run_dedup(spark, f"{run}/docs", f"{run}/dedup", DedupConf(output_partitions=2))
    assert compare(first, _download("s3://corpus-test/steps", tmp_path / "second")) == []
    assert RunDir(run).read_json("_steps", "dedup.json")["step"] == "dedup"

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for args in (["pii", "--run", run], ["tokenize", "--run", run], ["report", run]):
        cmd = [sys.executable, "-m", "corpus.cli", *args, "--master", "local[1]",
               *[a for o in OVERRIDES for a in ("--set", o)]] if args[0] != "report" else \
              [sys.executable, "-m", "corpus.cli", *args]
        res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
    got = _download("s3://corpus-test/steps", tmp_path / "third")
    assert pq.read_table(got / "pii" / "docs").num_rows > 0
    assert json.loads((got / "tokens" / "manifest.json").read_text())["splits"]["train"]["tokens"] > 0
    assert (got / "report.html").stat().st_size > 10_000 and (got / "stats" / "pii.json").exists()


def test_a_killed_build_on_s3_neither_duplicates_nor_loses(spark, tmp_path):
    crawl = tmp_path / "crawl"
    write_synthetic_crawl(crawl, pages=400, seed=4, files=8)
    _bucket("corpus-kill")
    _upload(crawl, "s3://corpus-kill/crawl")
    out = "s3://corpus-kill/run"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "corpus.cli", "build", "--input", "s3://corpus-kill/crawl/",
                             "--out", out, "--master", "local[1]"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    run = RunDir(out)
    deadline = time.time() + 300
    def committed() -> int:  # markers only: a listing may also show a marker's temporary name
        return sum(not n.startswith(".tmp-") for n in run.list("_progress"))

    while time.time() < deadline and proc.poll() is None and committed() < 2:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    committed = committed()
    assert 2 <= committed < 8, "the kill must land mid-run for this test to mean anything"

    stats = run_build(spark, ["s3://corpus-kill/crawl/"], out, load_config())
    assert stats["files_skipped_as_done"] == committed
    assert not [n for sub in ("docs", "removed", "_progress") for n in run.list(sub) if n.startswith(".tmp-")]
    clean = tmp_path / "clean"
    run_build(spark, ["s3://corpus-kill/crawl/"], str(clean), load_config())
    got = _download(out, tmp_path / "killed")
    for sub in ("docs", "removed"):
        a = sorted((got / sub).glob("*.parquet"))
        b = sorted((clean / sub).glob("*.parquet"))
        assert [p.name for p in a] == [p.name for p in b]
        assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b)), sub
    ids = pq.read_table(got / "docs", columns=["id"]).column("id").to_pylist()
    assert len(ids) == len(set(ids)) == stats["documents_kept"]
