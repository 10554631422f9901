"""Faults at scale: a standalone cluster with two workers, one executor JVM killed (SIGKILL) in the middle of
`corpus build` and again in the middle of `corpus dedup`. Each job must finish through Spark's task retry
(a lost executor's tasks, shuffle outputs and cached blocks are recomputed elsewhere or on its replacement) and
write outputs byte-identical (scripts/compare_runs.py) to an undisturbed run of the same steps.

The executors run this checkout with the test's own interpreter (one host): shipping the venv as an archive is
what tests/e2e/test_cluster.py proves; here only the failure matters."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from conftest import REPO
from standalone_cluster import SPARK_HOME, StandaloneCluster, spark_env

from corpus.config import load_config
from corpus.steps.build import run_build
from corpus.steps.dedup import run_dedup
from corpus.synth.crawl import write_synthetic_crawl

sys.path.insert(0, str(REPO / "scripts"))
from compare_runs import compare  # noqa: E402

SETS = ["dedup.output_partitions=4"]


def submit(cluster: StandaloneCluster, job: str, args: list[str], log: Path) -> subprocess.Popen:
    env = spark_env(log.parent)
    env["PYTHONPATH"] = str(REPO)
    cmd = [str(SPARK_HOME / "bin" / "spark-submit"), "--master", cluster.url, "--deploy-mode", "client",
           "--conf", f"spark.pyspark.python={sys.executable}",
           "--conf", f"spark.pyspark.driver.python={sys.executable}",
           "--conf", f"spark.executorEnv.PYTHONPATH={REPO}",
           "--conf", "spark.executor.memory=1g", "--conf", "spark.ui.enabled=false",
           str(REPO / "jobs" / f"{job}.py"), *args, *[a for s in SETS for a in ("--set", s)]]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT)


def kill_busy_executor(cluster: StandaloneCluster, job: subprocess.Popen, delay: float, timeout: float = 300) -> int:
    """SIGKILL an executor JVM `delay` seconds after it starts running Python tasks (its Python daemon appears),
    while the job still runs; returns the executor's pid."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert job.poll() is None, "the job ended before any executor ran a Python task"
        for executor in cluster.executors():
            try:
                if not any("python" in c.name() for c in executor.children(recursive=True)):
                    continue
                time.sleep(delay)
                assert job.poll() is None, "the job ended before the executor could be killed"
                executor.kill()
            except psutil.NoSuchProcess:
                continue
            executor.wait(30)
            return executor.pid
        time.sleep(0.1)
    raise AssertionError("no executor ran a Python task in time")


def wait_for_no_executors(cluster: StandaloneCluster, timeout: float = 60) -> None:
    """The workers stop an application's executors when it ends; the next job's kill must not pick one of those."""
    deadline = time.monotonic() + timeout
    while cluster.executors():
        assert time.monotonic() < deadline, "a finished application's executors are still running"
        time.sleep(0.2)


def finish(job: subprocess.Popen, log: Path) -> str:
    rc = job.wait(timeout=600)
    text = log.read_text(errors="replace")
    assert rc == 0, f"job failed ({rc}) after its executor was killed; last lines:\n" + "\n".join(
        text.splitlines()[-40:])
    return text


@pytest.mark.slow
def test_build_and_dedup_survive_a_killed_executor(spark, tmp_path):
    crawl = tmp_path / "crawl"
    write_synthetic_crawl(crawl, pages=240, seed=5, files=6)
    conf = load_config(overrides=SETS)
    calm, hit = tmp_path / "calm", tmp_path / "hit"
    run_build(spark, [str(crawl)], str(calm), conf)
    run_dedup(spark, str(calm / "docs"), str(calm / "dedup"), conf.dedup)

    root = tmp_path / "cluster"
    root.mkdir()
    cluster = StandaloneCluster(root, cores=1, memory="2g", workers=2).start()
    try:
        build = submit(cluster, "build", ["--input", str(crawl), "--out", str(hit)], root / "build.log")
        killed = [kill_busy_executor(cluster, build, delay=0.5)]
        build_log = finish(build, root / "build.log")
        wait_for_no_executors(cluster)
        dedup = submit(cluster, "dedup", ["--input", str(hit / "docs"), "--out", str(hit / "dedup")],
                       root / "dedup.log")
        killed.append(kill_busy_executor(cluster, dedup, delay=4))
        dedup_log = finish(dedup, root / "dedup.log")
    finally:
        cluster.stop()

    # The kills hit running applications: each driver saw its executor lost (and the tasks rescheduled).
    for log in (build_log, dedup_log):
        assert "Lost executor" in log or "ExecutorLostFailure" in log, log[-3000:]
    assert len(set(killed)) == 2
    assert compare(calm, hit) == []
