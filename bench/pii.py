"""Benchmark the PII stage: gated Presidio vs naive Presidio on every document, same documents, one run.

Documents: the real web pages in ../shared/data/docs plus the article texts of a synthetic crawl with
planted PII (emails, phones, IPs, cards, IBANs, SSNs). Also checks that both find exactly the same spans,
and times a plain email+IPv4 regex scan for scale.

    .venv/bin/python bench/pii.py --synth-pages 1500
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO.parent / "shared" / "data" / "docs"


def load_docs(synth_pages: int) -> list[str]:
    from corpus.synth.crawl import write_synthetic_crawl

    texts = []
    for path in sorted(DOCS.glob("*.jsonl.gz")):
        with gzip.open(path, "rt") as f:
            texts += [json.loads(line)["text"] for line in f if line.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        write_synthetic_crawl(Path(tmp), pages=synth_pages, seed=21, files=1)
        truth = [json.loads(line) for line in (Path(tmp) / "truth.jsonl").read_text().splitlines()]
    texts += [t["article"] for t in truth if t.get("article")]
    return texts


def timed(fn, texts):
    t = time.perf_counter()
    out = [fn(x) for x in texts]
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--synth-pages", type=int, default=1500)
    args = ap.parse_args()

    from corpus.config import PiiConf
    from corpus.pii.scrubber import PiiScrubber

    texts = load_docs(args.synth_pages)
    kb = sum(len(t) for t in texts) / 1e3
    scrubber = PiiScrubber(PiiConf())
    scrubber.find_all("warm up 8.8.8.8 a@b.co")
    naive_s, naive = timed(scrubber.find_all, texts)
    gated_s, gated = timed(scrubber.find, texts)
    simple = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+|\b\d{1,3}(?:\.\d{1,3}){3}\b")
    regex_s, _ = timed(simple.findall, texts)
    same = naive == gated
    found = sum(len(x) for x in naive)
    print(f"input: {len(texts)} documents, {kb:.0f} KB, {found} Presidio findings; identical findings: {same}")
    print(f"{'method':44s} {'docs/s':>9s} {'ms/KB':>7s}")
    for name, s in (("naive Presidio on every document", naive_s), ("gated Presidio (ours)", gated_s),
                    ("plain email+IPv4 regex (no Presidio)", regex_s)):
        print(f"{name:44s} {len(texts) / s:9.0f} {1000 * s / kb:7.3f}")
    print(f"speed-up of the gate: {naive_s / gated_s:.1f}x")
    if not same:
        raise SystemExit("gated findings differ from naive Presidio")


if __name__ == "__main__":
    main()
