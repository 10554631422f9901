"""Dedup quality on a labelled synthetic crawl: pairwise precision, recall and F1 of `corpus dedup` against
pairs whose true Jaccard on normalized 5-gram sets is >= 0.8, with verification thresholds 0.7 / 0.8 / 0.9
and without verification.

    .venv/bin/python bench/dedup_quality.py --pages 1500
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import pyarrow.parquet as pq


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=1500)
    args = ap.parse_args()
    from corpus.config import DedupConf, load_config
    from corpus.spark.session import get_session
    from corpus.steps.build import run_build
    from corpus.steps.dedup import run_dedup
    from corpus.synth.crawl import write_synthetic_crawl
    from corpus.synth.dedup_eval import pairwise_scores

    tmp = Path(tempfile.mkdtemp(prefix="bench-dq-"))
    write_synthetic_crawl(tmp / "crawl", pages=args.pages, seed=13, files=4)
    spark = get_session("local[2]", "dedup-quality")
    run_build(spark, [str(tmp / "crawl")], str(tmp / "run"), load_config())
    docs = pq.read_table(tmp / "run" / "docs").to_pylist()
    print(f"input: {args.pages} synthetic pages → {len(docs)} documents after the build filters")
    print(f"{'verify':>6s} {'truth >=':>8s} {'truth':>6s} {'pred':>6s} {'precision':>9s} {'recall':>7s} {'F1':>6s}")
    # threshold t: candidates verified at Jaccard >= t, scored against truth pairs with Jaccard >= t.
    for verify, truth in ((0.7, 0.7), (0.8, 0.8), (0.9, 0.9), (None, 0.7), (None, 0.8), (None, 0.9)):
        out = tmp / f"d{verify}"
        if not (out / "dedup" / "docs").exists():
            run_dedup(spark, str(tmp / "run" / "docs"), str(out / "dedup"), DedupConf(verify_threshold=verify))
        s = pairwise_scores(docs, pq.read_table(out / "dedup" / "docs").to_pylist(), truth_threshold=truth)
        print(f"{str(verify):>6s} {truth:8.1f} {s['truth_pairs']:6d} {s['predicted_pairs']:6d} "
              f"{s['precision']:9.4f} {s['recall']:7.4f} {s['f1']:6.4f}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
