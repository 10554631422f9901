"""Cluster mode for real: a Spark standalone Master + Worker on 127.0.0.1, the project shipped to executors as a
venv-pack archive (`--archives …#env`, `spark.pyspark.python=./env/bin/python`, built by scripts/pack_env.sh),
and each of `corpus run`'s jobs submitted with `spark-submit jobs/<name>.py`. Every output file must be
byte-identical to the same chain run in local mode."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO
from standalone_cluster import SPARK_HOME, StandaloneCluster, spark_env

from corpus.config import load_config
from corpus.steps.chain import run_all
from corpus.synth.crawl import write_synthetic_crawl

OVERRIDES = ["tokenize.vocab_size=1500", "tokenize.val_fraction=0.1", "tokenize.shard_tokens=20000",
             "tokenize.partitions=2"]
ARCHIVE = REPO / "build" / "corpus-env.tar.gz"


def content_digests(folder: Path) -> dict[str, str]:
    """sha256 of every data file under folder; Spark's bookkeeping files (_SUCCESS, .crc, checkpoints) aside."""
    out = {}
    for f in sorted(folder.rglob("*")):
        rel = f.relative_to(folder).as_posix()
        if f.is_file() and not f.name.startswith((".", "_")) and "_checkpoints" not in rel:
            out[rel] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    subprocess.run(["bash", str(REPO / "scripts" / "pack_env.sh"), str(ARCHIVE)], check=True, cwd=REPO,
                   stdout=subprocess.DEVNULL)
    root = tmp_path_factory.mktemp("standalone")
    c = StandaloneCluster(root).start()
    yield c
    c.stop()


def submit(cluster: StandaloneCluster, job: str, args: list[str], log: Path) -> None:
    cmd = [str(SPARK_HOME / "bin" / "spark-submit"), "--master", cluster.url, "--deploy-mode", "client",
           "--archives", f"{ARCHIVE}#env",
           "--conf", "spark.pyspark.python=./env/bin/python",  # executors: the shipped venv
           "--conf", f"spark.pyspark.driver.python={sys.executable}",  # client-mode driver: this venv
           "--conf", "spark.executor.memory=2g", "--conf", "spark.ui.enabled=false",
           str(REPO / "jobs" / f"{job}.py"), *args]
    with open(log, "wb") as fh:
        rc = subprocess.run(cmd, cwd=REPO, env=spark_env(log.parent), stdout=fh, stderr=subprocess.STDOUT,
                            timeout=900).returncode
    assert rc == 0, f"spark-submit {job} failed ({rc}); last lines:\n" + "\n".join(
        log.read_text(errors="replace").splitlines()[-40:])


def test_corpus_run_jobs_on_a_standalone_cluster_match_local_mode(cluster, spark, tmp_path):
    crawl = tmp_path / "crawl"
    write_synthetic_crawl(crawl, pages=160, seed=11, files=3)
    local = tmp_path / "local"
    run_all(spark, [str(crawl)], str(local), load_config(overrides=OVERRIDES), log=lambda m: None)

    run = tmp_path / "cluster"
    sets = [a for o in OVERRIDES for a in ("--set", o)]
    submit(cluster, "build", ["--input", str(crawl), "--out", str(run), *sets], tmp_path / "build.log")
    submit(cluster, "dedup", ["--input", str(run / "docs"), "--out", str(run / "dedup"), *sets],
           tmp_path / "dedup.log")
    submit(cluster, "pii", ["--input", str(run / "dedup" / "docs"), "--out", str(run / "pii"), *sets],
           tmp_path / "pii.log")
    submit(cluster, "tokens", ["--input", str(run / "pii" / "docs"), "--out", str(run / "tokens"), *sets],
           tmp_path / "tokenize.log")

    # The executors really ran in the shipped environment: the worker unpacked the archive for this app.
    unpacked = list((cluster.root / "work").glob("app-*/*/env/bin/python"))
    assert unpacked, "no executor unpacked the venv archive"

    for sub in ("docs", "removed", "dedup/docs", "pii/docs", "tokens"):
        ours, theirs = content_digests(run / sub), content_digests(local / sub)
        if sub == "tokens":  # the manifest names its source folders (lineage), which differ by design
            ours.pop("manifest.json"), theirs.pop("manifest.json")
        assert ours and ours == theirs, sub
    manifests = [json.loads((r / "tokens" / "manifest.json").read_text()) for r in (run, local)]
    for m in manifests:
        assert m.pop("source_runs") and all(s.pop("path") for s in m["sources"])
    assert manifests[0] == manifests[1]
    for name in ("build", "dedup", "pii"):
        a = json.loads((run / "stats" / f"{name}.json").read_text())
        b = json.loads((local / "stats" / f"{name}.json").read_text())
        for timing in ("wall_seconds", "task_seconds", "timing"):
            a.pop(timing, None), b.pop(timing, None)
        assert a == b, name
