"""datatrove's FineWeb-style pipeline under LocalPipelineExecutor vs corpus's SparkPipelineExecutor, same 2 cores.

The input is the 300 distinct real article pages of ../shared/data/html/articles packed as WARC response records
(one URL per page, FILES files). Both executors run the identical pipeline (WarcReader → Trafilatura → URL filter
→ lid.176 en 0.65 → Gopher repetition → Gopher quality → FineWeb quality → JsonlWriter), each in a fresh process,
with TASKS ranks: Local with 2 worker processes, Spark with local[2]. The Spark row is given with and without its
session start-up; outputs are checked equal.

    PYTHONPATH=$PWD .venv/bin/python bench/datatrove_executor.py --files 8 --tasks 8
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ARTICLES = REPO.parent / "shared" / "data" / "html" / "articles"

RUN = """
import json, sys, time
t0 = time.perf_counter()
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.extractors import Trafilatura
from datatrove.pipeline.readers import WarcReader
from datatrove.pipeline.writers import JsonlWriter
from corpus.datatrove import SparkPipelineExecutor
from corpus.datatrove.recipes import fineweb_filters
kind, crawl, out, tasks = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
pipeline = [WarcReader(crawl, glob_pattern="*.warc.gz"), Trafilatura(favour_precision=True, timeout=10),
            *fineweb_filters(), JsonlWriter(out + "/docs")]
session = 0.0
if kind == "local":
    ex = LocalPipelineExecutor(pipeline, tasks=tasks, workers=2, logging_dir=out + "/logs", start_method="fork")
else:
    from corpus.spark.session import get_session
    s = time.perf_counter()
    spark = get_session("local[2]", "bench-datatrove", {"spark.default.parallelism": "2"})
    session = time.perf_counter() - s
    ex = SparkPipelineExecutor(pipeline, tasks=tasks, logging_dir=out + "/logs", spark=spark)
t = time.perf_counter()
ex.run()
run = time.perf_counter() - t
print(json.dumps({"run": run, "session": session, "total": time.perf_counter() - t0}))
"""


def pack_warc(out: Path, files: int) -> int:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    pages = sorted(ARTICLES.glob("*.html.gz"))
    out.mkdir(parents=True)
    streams = [open(out / f"articles-{i:03d}.warc.gz", "wb") for i in range(files)]
    writers = [WARCWriter(s, gzip=True) for s in streams]
    for i, page in enumerate(pages):
        host = page.name.split("--", 1)[-1].removesuffix(".html.gz")
        html = gzip.decompress(page.read_bytes())
        headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
        record = writers[i % files].create_warc_record(f"https://{host}/article-{i}", "response",
                                                      payload=io.BytesIO(html), http_headers=headers)
        writers[i % files].write_record(record)
    for s in streams:
        s.close()
    return len(pages)


def run(kind: str, crawl: Path, out: Path, tasks: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYSPARK_PYTHON": sys.executable}
    res = subprocess.run([sys.executable, "-c", RUN, kind, str(crawl), str(out), str(tasks)], cwd=REPO, env=env,
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"{kind} run failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def docs(out: Path) -> list[str]:
    return sorted(line for p in (out / "docs").glob("*.jsonl.gz") for line in gzip.open(p, "rt"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--tasks", type=int, default=8)
    args = ap.parse_args()
    import torch

    print(f"host: {platform.node()}, {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
          f"torch cpu capability {torch.backends.cpu.get_cpu_capability()}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-dt-exec-"))
    try:
        pages = pack_warc(tmp / "crawl", args.files)
        local = run("local", tmp / "crawl", tmp / "local", args.tasks)
        spark = run("spark", tmp / "crawl", tmp / "spark", args.tasks)
        same = docs(tmp / "local") == docs(tmp / "spark")
        kept = len(docs(tmp / "local"))
        print(f"{pages} distinct pages, {args.files} WARC files, {args.tasks} ranks, 2 cores; kept {kept}; "
              f"outputs equal: {same}")
        print(f"{'executor':44s} {'run s':>7s} {'pages/s':>8s} {'process s':>10s}")
        print(f"{'LocalPipelineExecutor (workers=2, fork)':44s} {local['run']:7.1f} {pages / local['run']:8.1f} "
              f"{local['total']:10.1f}")
        print(f"{'SparkPipelineExecutor (local[2])':44s} {spark['run']:7.1f} {pages / spark['run']:8.1f} "
              f"{spark['total']:10.1f}  (session start {spark['session']:.1f} s)")
        print(f"ratio Spark/Local run time: {spark['run'] / local['run']:.2f}x; "
              f"with Spark's session start: {(spark['run'] + spark['session']) / local['run']:.2f}x")
        if not same:
            raise SystemExit("outputs differ")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
