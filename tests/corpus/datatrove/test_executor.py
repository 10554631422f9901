"""SparkPipelineExecutor against datatrove's LocalPipelineExecutor: the same pipeline, the same files.

Real datatrove steps end to end (readers, Trafilatura, URL / language / Gopher / FineWeb filters, JsonlWriter,
the four MinHash stages), real Spark (the shared local session), real lid.176 (the bundled .ftz)."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("datatrove")

from conftest import shared_data  # noqa: E402
from datatrove.executor import LocalPipelineExecutor  # noqa: E402
from datatrove.pipeline.extractors import Trafilatura  # noqa: E402
from datatrove.pipeline.readers import JsonlReader, WarcReader  # noqa: E402
from datatrove.pipeline.writers import JsonlWriter  # noqa: E402

from corpus.datatrove import RankFailedError, SparkPipelineExecutor  # noqa: E402
from corpus.datatrove.recipes import fineweb_filters, url_from_id  # noqa: E402


def _outputs(folder: Path) -> dict[str, list[dict]]:
    return {p.relative_to(folder).as_posix(): [json.loads(line) for line in gzip.open(p, "rt")]
            for p in sorted(folder.rglob("*.jsonl.gz"))}


def _stats(logging_dir: Path) -> list[dict]:
    """The merged stats.json, timings aside (they differ from run to run)."""
    return [{k: v for k, v in step.items() if k != "time_stats"}
            for step in json.loads((logging_dir / "stats.json").read_text())]


def _run_both(spark, tmp_path: Path, make_pipeline, tasks: int) -> tuple[Path, Path]:
    local, remote = tmp_path / "local", tmp_path / "spark"
    LocalPipelineExecutor(make_pipeline(local / "out"), tasks=tasks, workers=1,
                          logging_dir=str(local / "logs")).run()
    SparkPipelineExecutor(make_pipeline(remote / "out"), tasks=tasks, logging_dir=str(remote / "logs"),
                          spark=spark).run()
    return local, remote


def _assert_same_run(local: Path, remote: Path, tasks: int) -> None:
    outputs = _outputs(local / "out")
    assert sum(len(docs) for docs in outputs.values()) > 0
    assert _outputs(remote / "out") == outputs
    assert _stats(remote / "logs") == _stats(local / "logs")
    for rank in range(tasks):
        assert (remote / "logs" / "completions" / f"{rank:05d}").exists()
        assert (remote / "logs" / "stats" / f"{rank:05d}.json").exists()
        assert f"Processing done for rank={rank}" in (remote / "logs" / "logs" / f"task_{rank:05d}.log").read_text()


@pytest.mark.slow
def test_fineweb_filters_on_warc_same_as_local_executor(spark, tmp_path):
    warcs = shared_data("warc", "cc")

    def pipeline(out):
        return [WarcReader(str(warcs), glob_pattern="*.warc.gz"), Trafilatura(favour_precision=True, timeout=10),
                *fineweb_filters(), JsonlWriter(str(out))]

    local, remote = _run_both(spark, tmp_path, pipeline, tasks=3)
    _assert_same_run(local, remote, 3)


def test_fineweb_filters_on_jsonl_same_as_local_executor(spark, tmp_path):
    docs = shared_data("docs")

    def pipeline(out):
        return [JsonlReader(str(docs), glob_pattern="*.jsonl.gz", adapter=url_from_id), *fineweb_filters(),
                JsonlWriter(str(out))]

    local, remote = _run_both(spark, tmp_path, pipeline, tasks=2)
    _assert_same_run(local, remote, 2)


def test_failed_rank_fails_the_job_keeps_the_others_and_rerun_runs_only_it(spark, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    good = sorted(shared_data("docs").glob("*.jsonl.gz"))
    shutil.copy(good[0], inputs / "a.jsonl.gz")
    (inputs / "b.jsonl.gz").write_bytes(b"this is not gzip")  # rank 1 reads it: BadGzipFile
    logs, out = tmp_path / "logs", tmp_path / "out"

    def executor():
        return SparkPipelineExecutor([JsonlReader(str(inputs), glob_pattern="*.jsonl.gz"), JsonlWriter(str(out))],
                                     tasks=2, logging_dir=str(logs), spark=spark)

    with pytest.raises(RankFailedError, match=r"1 of 2 datatrove ranks failed") as failed:
        executor().run()
    message = str(failed.value)
    assert "rank 1: BadGzipFile" in message and "task_00001.log" in message
    assert [rank for rank, _ in failed.value.failures] == [1]
    # rank 0's work is kept and marked; rank 1 left no marker, its log has the traceback
    assert (logs / "completions" / "00000").exists() and not (logs / "completions" / "00001").exists()
    assert (out / "00000.jsonl.gz").exists()
    assert "BadGzipFile" in (logs / "logs" / "task_00001.log").read_text()
    kept = (out / "00000.jsonl.gz").stat().st_mtime_ns

    shutil.copy(good[1], inputs / "b.jsonl.gz")
    stats = executor().run()
    assert (out / "00000.jsonl.gz").stat().st_mtime_ns == kept  # rank 0 skipped, not rerun
    assert (logs / "completions" / "00001").exists()
    written = sum(1 for p in out.glob("*.jsonl.gz") for _ in gzip.open(p))
    read = sum(1 for p in good[:2] for _ in gzip.open(p))
    assert written == read
    # as LocalPipelineExecutor's: stats.json merges the ranks this call ran (rank 1); stats/ keeps every rank's
    rank1 = sum(1 for _ in gzip.open(good[1]))
    assert json.loads((logs / "stats.json").read_text())[-1]["stats"]["total"] == rank1
    assert stats.stats[-1].stats["total"].total == rank1
    assert sorted(p.name for p in (logs / "stats").iterdir()) == ["00000.json", "00001.json"]

    assert executor().run() is None  # all complete: nothing runs


def test_bad_arguments_are_clear_errors(spark, tmp_path):
    with pytest.raises(ValueError, match="tasks must be a positive integer"):
        SparkPipelineExecutor([], tasks=0, logging_dir=str(tmp_path))
    with pytest.raises(TypeError, match="depends= must be a datatrove PipelineExecutor"):
        SparkPipelineExecutor([], logging_dir=str(tmp_path), depends="stage1")
