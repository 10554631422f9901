"""Issue 25: the whole chain on Chinese input (real Chinese Wikipedia articles, planted near-copies, real user
reviews): build by FineWeb-2's Chinese recipe → dedup with the Chinese tokenizer's shingles → pii → tokenize →
publish → report."""

from __future__ import annotations

import gzip
import json
import random

import pyarrow.parquet as pq
import pytest
from conftest import shared_data

from corpus.build.pipeline import BuildPipeline
from corpus.config import load_config
from corpus.steps.chain import run_all

OVERRIDES = ["language.languages=[zh]", "tokenize.vocab_size=6000", "tokenize.val_fraction=0.05",
             "tokenize.partitions=2"]


def _input(path) -> tuple[int, set[str]]:
    rng, rows = random.Random(0), []
    with gzip.open(shared_data("multilingual", "zhwiki.jsonl.gz"), "rt") as f:
        for line in f:
            d = json.loads(line)
            if len(d["text"]) >= 300:
                rows.append({"id": d["id"], "text": d["text"], "url": d.get("url")})
            if len(rows) == 160:
                break
    copies = set()
    for d in rows[:12]:  # near-copies: three characters changed
        chars = list(d["text"])
        for _ in range(3):
            chars[rng.randrange(len(chars))] = "的"
        rows.append({"id": d["id"] + "-copy", "text": "".join(chars), "url": (d["url"] or "") + "?copy"})
        copies.add(d["id"] + "-copy")
    with gzip.open(shared_data("multilingual", "zh-reviews.jsonl.gz"), "rt") as f:
        rows += [{"id": json.loads(line)["id"], "text": json.loads(line)["text"], "url": None}
                 for _, line in zip(range(40), f, strict=False)]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return len(rows), copies


@pytest.mark.slow
def test_chinese_input_through_the_whole_chain(spark, tmp_path):
    source = tmp_path / "zh.jsonl"
    n, copies = _input(source)
    # The English rules keep no Chinese article (they count words with an English tokenizer).
    english = BuildPipeline(load_config(overrides=[*OVERRIDES, "quality.preset=english"])).process_file(str(source))
    assert english.stats["kept"] == 0
    conf = load_config(overrides=OVERRIDES)
    run_all(spark, [str(source)], str(tmp_path / "run"), conf, log=lambda m: None)
    run = tmp_path / "run"
    build = json.loads((run / "stats" / "build.json").read_text())
    docs = pq.read_table(run / "docs").to_pylist()
    assert build["documents_in"] == n and len(docs) >= 0.5 * 160  # most articles kept by FineWeb-2's recipe
    assert {d["language"] for d in docs} == {"zh"}
    # near-copies whose original was kept are removed as near duplicates of it, with the Chinese shingles
    kept_ids = {d["id"].split("/")[-1] for d in docs}
    removed = pq.read_table(run / "dedup" / "removed").to_pylist()
    expected = {c for c in copies if c.removesuffix("-copy") in kept_ids and c in kept_ids}
    got = {r["id"].split("/")[-1] for r in removed if r["reason"] == "near_duplicate"}
    assert expected and expected <= got and got <= copies
    manifest = json.loads((run / "tokens" / "manifest.json").read_text())
    assert sum(s["tokens"] for s in manifest["shards"]) > 50_000
    final = pq.read_table(run / "final" / "docs")
    assert final.num_rows == len(pq.read_table(run / "pii" / "docs")) and final.num_rows > 0
    report = json.loads((run / "report.json").read_text())
    assert report["languages"]["counts"].get("zh", 0) >= len(docs)
