"""Benchmark the PII stage: ours (our recognizers, gated) vs naive Presidio (its defaults on every whole document).

Same documents, one run: the real pages of ../shared/data/docs and the AEB article texts (language from the
pipeline's fastText model, phone regions from language + TLD as in `corpus pii`), the articles of a synthetic
crawl (PII planted in a fifth of its English pages) and our labelled generated set (short documents dense with
PII: the gate's worst case). Each method runs `--repeats` times; the best time counts (the host is shared).
Also checks that gated findings equal our recognizers on whole documents.

    .venv/bin/python bench/pii.py --synth-pages 1500 --generated 300 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))


def load_docs(synth_pages: int, generated: int) -> dict[str, list[tuple[str, str | None, str | None]]]:
    from pii_quality import real_texts, with_language

    from corpus.synth.crawl import write_synthetic_crawl
    from corpus.synth.pii_eval import generate_records

    real = [(d["text"], d["language"], d["url"]) for d in with_language(real_texts())]
    with tempfile.TemporaryDirectory() as tmp:
        write_synthetic_crawl(Path(tmp), pages=synth_pages, seed=21, files=1)
        truth = [json.loads(line) for line in (Path(tmp) / "truth.jsonl").read_text().splitlines()]
    synth = [(t["article"], t.get("language"), t.get("url")) for t in truth if t.get("article")]
    gen = [(r["full_text"], r["language"], r["url"]) for r in generate_records(generated, seed=5)]
    return {"real pages (docs + AEB)": real, "synthetic crawl articles": synth, "generated, PII-dense": gen}


def best_time(fn, docs, repeats: int):
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = [fn(d) for d in docs]
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--synth-pages", type=int, default=1500)
    ap.add_argument("--generated", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    from corpus.config import PiiConf
    from corpus.pii.recognizers import regions_for
    from corpus.pii.scrubber import PiiScrubber

    sets = load_docs(args.synth_pages, args.generated)
    sets["all (mixed)"] = [d for docs in sets.values() for d in docs]
    presidio = PiiScrubber(PiiConf(recognizers="presidio"))
    ours = PiiScrubber(PiiConf())
    for scrubber in (presidio, ours):  # warm up: tldextract, spaCy, phonenumbers metadata
        scrubber.find_all("warm up 8.8.8.8 a@b.co +1 415 555 0199 4111 1111 1111 1111")
        scrubber.find("warm up 8.8.8.8 a@b.co +1 415 555 0199 4111 1111 1111 1111")

    def naive(d):
        return presidio.find_all(d[0])

    def whole(d):
        return ours.find_all(d[0], regions_for(d[1], d[2]))

    def gated(d):
        return ours.find(d[0], regions_for(d[1], d[2]))

    print(f"{'set':26s} {'docs':>5s} {'KB':>6s} {'Presidio docs/s':>15s} {'ours whole':>10s} {'ours gated':>10s} "
          f"{'speed-up':>8s} {'same':>5s}")
    same_all = True
    for name, docs in sets.items():
        kb = sum(len(d[0]) for d in docs) / 1e3
        naive_s, _ = best_time(naive, docs, args.repeats)
        whole_s, reference = best_time(whole, docs, 1)
        gated_s, found = best_time(gated, docs, args.repeats)
        same = found == reference
        same_all &= same
        print(f"{name:26s} {len(docs):5d} {kb:6.0f} {len(docs) / naive_s:15.0f} {len(docs) / whole_s:10.0f} "
              f"{len(docs) / gated_s:10.0f} {naive_s / gated_s:7.1f}x {str(same):>5s}")
    if not same_all:
        raise SystemExit("gated findings differ from our recognizers on whole documents")


if __name__ == "__main__":
    main()
