"""The whole chain at volume: `corpus run` on N pages of real HTML (`corpus synth --from-html`), at several sizes.

For each size: seconds per step (RUN/stats/<step>.json `wall_seconds`: build, dedup, pii, tokenize, publish,
report), the Spark start-up (whole command minus the steps), cost per page in core-milliseconds (seconds × cores ÷
pages, start-up excluded and included), and the growth of that cost between consecutive sizes (the issue's
target: cost per page at 100k within 15 % of the figure at 10k).

    .venv/bin/python bench/scale.py --pages 10000,100000
"""

from __future__ import annotations

import argparse
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
STEPS = ("build", "dedup", "pii", "tokenize", "publish", "report")
PAGES_PER_FILE = 1000  # about one real WARC's share of a task at this page size (~35 MB gz)


def run_size(pages: int, cores: int, tmp: Path) -> dict:
    from corpus.synth.crawl import write_synthetic_crawl

    crawl = tmp / f"crawl-{pages}"
    write_synthetic_crawl(crawl, pages=pages, seed=11, files=max(1, pages // PAGES_PER_FILE), from_html=AEB_HTML)
    gz = sum(p.stat().st_size for p in crawl.glob("*.warc.gz"))
    out = tmp / f"run-{pages}"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "corpus.cli", "run", "--input", str(crawl), "--out", str(out),
                          "--master", f"local[{cores}]"], capture_output=True, text=True, cwd=REPO, env=env)
    whole = time.perf_counter() - t
    if res.returncode:
        raise SystemExit(res.stderr[-3000:])
    steps = {}
    for step in STEPS:
        path = out / "stats" / f"{step}.json"
        if path.exists():
            steps[step] = json.loads(path.read_text()).get("wall_seconds")
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(crawl, ignore_errors=True)
    return {"pages": pages, "gz_bytes": gz, "whole": whole, "steps": steps, "cores": cores}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", default="10000,100000", help="comma-separated sizes")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--json", help="append one JSON line per size here")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    results = []
    try:
        for pages in (int(x) for x in args.pages.split(",")):
            r = run_size(pages, args.cores, tmp)
            results.append(r)
            steps_s = sum(v for v in r["steps"].values() if v)
            print(f"\n== {pages} pages, {r['gz_bytes'] / 1e6:.0f} MB gz, local[{r['cores']}]: {r['whole']:.1f} s "
                  f"(steps {steps_s:.1f} s, start-up and session {r['whole'] - steps_s:.1f} s)")
            for step, s in r["steps"].items():
                print(f"  {step:10s} {s:8.1f} s  {s * r['cores'] * 1e3 / pages:8.2f} core-ms/page")
            print(f"  cost per page: {steps_s * r['cores'] * 1e3 / pages:.2f} core-ms without start-up, "
                  f"{r['whole'] * r['cores'] * 1e3 / pages:.2f} with", flush=True)
            if args.json:
                with open(args.json, "a") as f:
                    f.write(json.dumps(r) + "\n")
        for a, b in zip(results, results[1:], strict=False):
            ca = sum(v for v in a["steps"].values() if v) / a["pages"]
            cb = sum(v for v in b["steps"].values() if v) / b["pages"]
            print(f"growth {a['pages']} → {b['pages']} pages: cost per page × {cb / ca:.2f} (target ≤ 1.15)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
