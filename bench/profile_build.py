"""Profile one build task in one process: ms per page per core for each stage, worker memory, cProfile's top.

What one Spark task does for one input file (`corpus.build.pipeline.BuildPipeline.process_file`), taken apart so
every stage is timed on its own, on the same pages: WARC read (record parsing and gunzip), charset decode,
extraction, URL filter, language ID, the quality filters, normalize, and the Arrow/Parquet write of the kept rows.
The sum is checked against `process_file` timed whole on the same file. Memory: resident set (VmRSS) of this
process before and after building the pipeline (the fixed part of one Python worker), and its peak (VmHWM).

    .venv/bin/python bench/profile_build.py --pages 1000                  # AEB pages via --from-html
    .venv/bin/python bench/profile_build.py --warc ../shared/data/warc/crawls/archiveit-example.warc.gz
    .venv/bin/python bench/profile_build.py --pages 1000 --memory-only   # resident memory of one worker
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AEB_HTML = REPO.parent / "shared" / "data" / "html" / "aeb" / "html"


def vm(key: str) -> float:
    """A /proc/self/status memory line in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def raw_records(uri: str) -> list[tuple[bytes, str | None]]:
    """(HTTP body bytes, Content-Type) of each HTML response, read with warcio (the reader's own library)."""
    from warcio.archiveiterator import ArchiveIterator

    out = []
    with open(uri, "rb") as f:
        for rec in ArchiveIterator(f):
            if rec.rec_type != "response" or rec.http_headers is None:
                continue
            ctype = rec.http_headers.get_header("Content-Type")
            out.append((rec.content_stream().read(), ctype))
    return out


def memory_only(uri: str) -> None:
    """Resident memory of one worker: before and after building the pipeline, after one file, and the peak."""
    import sys

    from corpus.build.pipeline import BuildPipeline
    from corpus.config import load_config

    rss0 = vm("VmRSS")
    t = time.perf_counter()
    pipe = BuildPipeline(load_config())
    load_s, rss1 = time.perf_counter() - t, vm("VmRSS")
    t = time.perf_counter()
    result = pipe.process_file(uri)
    file_s = time.perf_counter() - t
    print(f"RSS {rss0:.0f} MiB before the pipeline, {rss1:.0f} after building it ({load_s:.1f} s), {vm('VmRSS'):.0f} "
          f"after the first file ({result.stats['kept']} kept, {file_s:.1f} s); peak {vm('VmHWM'):.0f} MiB; "
          f"torch imported: {'torch' in sys.modules}, transformers imported: {'transformers' in sys.modules}")


def profile_file(uri: str, repeats: int) -> None:
    from corpus.build.normalize import normalize_text
    from corpus.build.pipeline import BuildPipeline
    from corpus.build.stage import Doc
    from corpus.config import load_config
    from corpus.io.charset import decode_html
    from corpus.io.readers import Page, iter_pages
    from corpus.io.rundir import RunDir
    from corpus.schema import DOC_SCHEMA, REMOVED_SCHEMA

    rss0 = vm("VmRSS")
    t = time.perf_counter()
    pipe = BuildPipeline(load_config())
    load_s = time.perf_counter() - t
    rss1 = vm("VmRSS")
    print(f"pipeline load {load_s:.2f} s; RSS {rss0:.0f} MiB before, {rss1:.0f} MiB after (+{rss1 - rss0:.0f})")

    for rep in range(repeats):
        sec: Counter[str] = Counter()
        n_pages = 0
        t = time.perf_counter()
        raw = raw_records(uri)
        sec["read (warcio parse + gunzip)"] += time.perf_counter() - t
        t = time.perf_counter()
        for payload, ctype in raw:
            decode_html(payload, ctype)
        sec["charset (decode_html)"] += time.perf_counter() - t
        t = time.perf_counter()
        pages = [p for p in iter_pages(uri, pipe.conf.read) if isinstance(p, Page)]
        reader_s = time.perf_counter() - t
        # The stages run through the same loop as the build: a bare Doc per page, each stage timed by its name.
        kept = []
        for page in pages:
            if page.html is None:
                continue
            n_pages += 1
            doc = Doc(page)
            for stage in pipe.stages:
                t = time.perf_counter()
                verdict = stage.apply(doc) if stage.applies(doc) else None
                sec[stage.name] += time.perf_counter() - t
                if verdict is not None:
                    break
            else:
                t = time.perf_counter()
                normalize_text(doc.text, pipe.conf.normalize)
                sec["normalize"] += time.perf_counter() - t
                kept.append(page.id)
        t = time.perf_counter()
        result = pipe.process_file(uri)
        whole = time.perf_counter() - t
        tmp = Path(tempfile.mkdtemp(prefix="profile-build-"))
        t = time.perf_counter()
        run = RunDir(str(tmp))
        run.makedirs("docs")
        run.makedirs("removed")
        run.write_parquet_atomic(result.docs, DOC_SCHEMA, "docs", "part-0.parquet")
        run.write_parquet_atomic(result.removed, REMOVED_SCHEMA, "removed", "part-0.parquet")
        sec["Arrow + Parquet write"] += time.perf_counter() - t
        shutil.rmtree(tmp, ignore_errors=True)
        total = sum(sec.values())
        print(f"\nrun {rep + 1}: {n_pages} HTML pages, {len(kept)} kept; iter_pages alone "
              f"{reader_s * 1e3 / n_pages:.2f} ms/page (read + charset + record checks)")
        print(f"{'stage':34s} {'ms/page':>8s} {'share':>6s}")
        for name, s in sorted(sec.items(), key=lambda kv: -kv[1]):
            print(f"{name:34s} {s * 1e3 / n_pages:8.2f} {s / total:6.1%}")
        print(f"{'sum of stages':34s} {total * 1e3 / n_pages:8.2f}")
        print(f"{'process_file whole (+ write)':34s} {(whole + sec['Arrow + Parquet write']) * 1e3 / n_pages:8.2f}  "
              f"(its own stage seconds: {result.stats['seconds']})")
    print(f"\nRSS after the runs {vm('VmRSS'):.0f} MiB, peak {vm('VmHWM'):.0f} MiB")

    prof = cProfile.Profile()
    prof.enable()
    pipe.process_file(uri)
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(18)
    print("\ncProfile of process_file, by own time:\n" + "\n".join(buf.getvalue().splitlines()[6:32]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=1000, help="AEB --from-html pages in one WARC file")
    ap.add_argument("--warc", help="profile this WARC file instead")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--memory-only", action="store_true", help="only the worker's resident memory")
    args = ap.parse_args()
    run = memory_only if args.memory_only else lambda uri: profile_file(uri, args.repeats)
    if args.warc:
        run(args.warc)
        return
    from corpus.synth.crawl import write_synthetic_crawl

    tmp = Path(tempfile.mkdtemp(prefix="profile-build-crawl-"))
    try:
        write_synthetic_crawl(tmp, pages=args.pages, seed=11, files=1, from_html=AEB_HTML)
        (warc,) = sorted(tmp.glob("*.warc.gz"))
        print(f"{args.pages} --from-html AEB pages, {warc.stat().st_size / 1e6:.1f} MB gzipped")
        run(str(warc))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
