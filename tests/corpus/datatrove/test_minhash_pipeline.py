"""datatrove's 4-stage MinHash dedup end to end with our distributed stage 3 (SparkMinhashDedupCluster).

The input is the shared CC documents plus near-duplicate copies of some of them (one word changed, a sentence
added), spread over the two input files so clusters cross files and ranks."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

pytest.importorskip("datatrove")

from conftest import shared_data  # noqa: E402
from datatrove.executor import LocalPipelineExecutor  # noqa: E402
from datatrove.pipeline.dedup import MinhashDedupCluster, MinhashDedupFilter, MinhashDedupSignature  # noqa: E402
from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupBuckets  # noqa: E402
from datatrove.pipeline.readers import JsonlReader  # noqa: E402
from datatrove.pipeline.writers import JsonlWriter  # noqa: E402

from corpus.datatrove import SparkMinhashDedupCluster, SparkPipelineExecutor  # noqa: E402

CONFIG = MinhashConfig(num_buckets=6, hashes_per_bucket=4)


def _write_input(folder: Path) -> int:
    docs = [json.loads(line) for p in sorted(shared_data("docs").glob("*.jsonl.gz")) for line in gzip.open(p)]
    rows = [{"id": d["id"], "text": d["text"]} for d in docs]
    for i, d in enumerate(docs[:12]):
        words = d["text"].split(" ")
        words[len(words) // 2] = "changed"
        rows.append({"id": f"{d['id']}#near{i}", "text": " ".join(words)})
        if i % 3 == 0:
            rows.append({"id": f"{d['id']}#more{i}", "text": d["text"] + " One more sentence at the end."})
    folder.mkdir(parents=True)
    for part in range(2):
        with gzip.open(folder / f"part{part}.jsonl.gz", "wt") as f:
            for row in rows[part::2]:
                f.write(json.dumps(row) + "\n")
    return len(rows)


def _stages(executor, root: Path, inputs: Path, cluster_step, **kw):
    logs, data = root / "logs", root / "data"
    s1 = executor([JsonlReader(str(inputs)), MinhashDedupSignature(str(data / "sigs"), config=CONFIG)],
                  tasks=2, logging_dir=str(logs / "s1"), **kw)
    s2 = executor([MinhashDedupBuckets(str(data / "sigs"), str(data / "buckets"), config=CONFIG)],
                  tasks=CONFIG.num_buckets, logging_dir=str(logs / "s2"), depends=s1, **kw)
    s3 = executor([cluster_step(str(data / "buckets"), str(data / "remove_ids"), config=CONFIG)],
                  tasks=1, logging_dir=str(logs / "s3"), depends=s2, **kw)
    s4 = executor([JsonlReader(str(inputs)),
                   MinhashDedupFilter(str(data / "remove_ids"), exclusion_writer=JsonlWriter(str(root / "removed"))),
                   JsonlWriter(str(root / "out"))], tasks=2, logging_dir=str(logs / "s4"), depends=s3, **kw)
    s4.run()


def _ids(folder: Path) -> list[str]:
    return sorted(json.loads(line)["id"] for p in folder.glob("*.jsonl.gz") for line in gzip.open(p))


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): (gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else
                                               p.read_bytes()) for p in sorted(folder.rglob("*")) if p.is_file()}


def _stats(root: Path) -> dict[str, list]:
    return {stage: [{k: v for k, v in s.items() if k != "time_stats"}
                    for s in json.loads((root / "logs" / stage / "stats.json").read_text())]
            for stage in ("s1", "s2", "s3", "s4")}


@pytest.mark.slow
def test_minhash_pipeline_with_spark_stage3(spark, tmp_path):
    inputs = tmp_path / "in"
    n = _write_input(inputs)
    local = lambda pipeline, **kw: LocalPipelineExecutor(pipeline, workers=1, **kw)  # noqa: E731
    _stages(local, tmp_path / "datatrove", inputs, MinhashDedupCluster)
    _stages(local, tmp_path / "local", inputs, SparkMinhashDedupCluster)
    _stages(SparkPipelineExecutor, tmp_path / "spark", inputs, SparkMinhashDedupCluster, spark=spark)

    # datatrove's own stage 3 and ours remove the same documents, through byte-identical .remove files
    removed = _ids(tmp_path / "datatrove" / "removed")
    assert 8 <= len(removed) < n  # 16 near-duplicate copies were added; LSH may miss a few short ones
    assert _ids(tmp_path / "spark" / "removed") == removed
    assert _ids(tmp_path / "spark" / "out") == _ids(tmp_path / "datatrove" / "out")
    assert len(removed) + len(_ids(tmp_path / "spark" / "out")) == n
    assert _files(tmp_path / "spark" / "data" / "remove_ids") == _files(tmp_path / "datatrove" / "data" / "remove_ids")

    # the same pipeline under LocalPipelineExecutor and SparkPipelineExecutor: same files, same merged stats
    for folder in ("data", "out", "removed"):
        assert _files(tmp_path / "spark" / folder) == _files(tmp_path / "local" / folder)
    assert _stats(tmp_path / "spark") == _stats(tmp_path / "local")
    # the stage 3 rank ran on the driver with datatrove's bookkeeping
    assert (tmp_path / "spark" / "logs" / "s3" / "completions" / "00000").exists()
