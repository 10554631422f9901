"""Hostile input: time and peak memory to reject 1 GB garbage files, ours vs warcio's ArchiveIterator (what the
reader used before), and a seeded fuzz over mutated real WARCs counting silent outcomes (must be 0).

Each garbage case runs in a fresh child process that reports its time and peak RSS (ru_maxrss) and its RSS
after imports, so the figures are the read's own. warcio is given a 32 MB file of the same kind (the 1 GB
one takes hours: its line buffer grows quadratically), under a timeout.

    .venv/bin/python bench/hostile_input.py --fuzz 2000 --seed 14
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
GB = 1 << 30

CHILD = r"""
import json, resource, sys, time
which, path = sys.argv[1], sys.argv[2]
from collections import Counter
if which == "ours":
    from corpus.config import ReadConf
    from corpus.io.readers import iter_pages
    run = lambda: Counter(getattr(x, "reason", "page") for x in iter_pages(path, ReadConf()))
else:
    from warcio.archiveiterator import ArchiveIterator
    def run():
        c = Counter()
        with open(path, "rb") as f:
            try:
                for r in ArchiveIterator(f, arc2warc=True):
                    c[r.rec_type] += 1
            except Exception as e:
                c["error:" + type(e).__name__] += 1
        return c
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
out = run()
sec = time.perf_counter() - t
print(json.dumps({"seconds": sec, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rss_after_imports_mb": base / 1024, "outcome": dict(out)}))
"""


def make_cases(folder: Path, size: int) -> dict[str, Path]:
    """Garbage files of `size` bytes: zeros (sparse), random bytes, a WARC whose first header line never ends,
    and gzip of zeros (what a failed download or a disk error leaves)."""
    cases = {}
    folder = folder / str(size)
    folder.mkdir()
    zeros = folder / f"zeros-{size}.warc.gz"
    with open(zeros, "wb") as f:
        f.truncate(size)
    cases["zeros"] = zeros
    rand = folder / f"random-{size}.warc.gz"
    with open(rand, "wb") as f:
        for _ in range(size // (1 << 24)):
            f.write(os.urandom(1 << 24))
    cases["random"] = rand
    line = folder / f"endless-line-{size}.warc"
    with open(line, "wb") as f:
        f.write(b"WARC/1.0\r\nWARC-Target-URI: http://x/")
        block = b"a" * (1 << 24)
        for _ in range(size // len(block)):
            f.write(block)
    cases["endless_header_line"] = line
    gz = folder / f"gzip-of-zeros-{size}.warc.gz"
    with gzip.open(gz, "wb", compresslevel=1) as f:
        block = bytes(1 << 24)
        for _ in range(size // len(block)):
            f.write(block)
    cases["gzip_of_zeros"] = gz
    return cases


def child(which: str, path: Path, timeout: float) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        res = subprocess.run([sys.executable, "-c", CHILD, which, str(path)], capture_output=True, text=True,
                             timeout=timeout, env=env, cwd=REPO)
    except subprocess.TimeoutExpired:
        return {"seconds": timeout, "timed_out": True}
    if res.returncode:
        return {"error": res.stderr[-500:]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def garbage(folder: Path, peer_size: int, peer_timeout: float) -> None:
    ours = make_cases(folder, GB)
    print(f"{'case':22s} {'ours 1 GB s':>12s} {'peak MB':>8s} {'(imports)':>9s}  outcome   | "
          f"{'warcio ' + str(peer_size >> 20) + ' MB s':>14s} {'peak MB':>8s}  time ratio (warcio on less data)")
    peers = make_cases(folder, peer_size)
    for name, path in ours.items():
        r = child("ours", path, 600)
        p = child("warcio", peers[name], peer_timeout)
        ratio = p["seconds"] / max(r["seconds"], 1e-9)
        peer = f"{p['seconds']:14.3f}{'+' if p.get('timed_out') else ' '}{p.get('peak_rss_mb', float('nan')):8.0f}"
        print(f"{name:22s} {r['seconds']:12.4f} {r['peak_rss_mb']:8.0f} {r['rss_after_imports_mb']:9.0f}  "
              f"{r['outcome']} | {peer}  {'≥' if p.get('timed_out') else ''}{ratio:,.0f}×")
        path.unlink()
        peers[name].unlink()


def fuzz_run(count: int, seed: int) -> None:
    from corpus.build.pipeline import BuildPipeline
    from corpus.config import load_config
    from corpus.synth.damage import fuzz

    seeds = [DATA / "warc/cc/CC-MAIN-2022-05-mini.warc.gz", DATA / "warc/edge/example-iana.org-chunked.warc",
             DATA / "warc/edge/clueweb12-0000tw-00-sample.warc.gz", DATA / "warc/edge/example.warc.gz",
             DATA / "warc/edge/example.arc.gz", DATA / "wet/CC-MAIN-2016-50-fragment3.wet.gz",
             DATA / "warc/crawls/sample-0001.warc.gz"]
    pipeline = BuildPipeline(load_config())
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        report = fuzz(pipeline, [str(s) for s in seeds], tmp, count, seed)
    print(f"fuzz: {report.as_dict()} in {time.perf_counter() - t:.0f} s (seed {seed}, {len(seeds)} real seed files)")
    for s in report.silent or []:
        print("  silent:", s)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fuzz", type=int, default=2000, help="mutated files to try (0: skip)")
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--peer-mb", type=int, default=32, help="size of warcio's garbage files")
    ap.add_argument("--peer-timeout", type=float, default=120)
    ap.add_argument("--no-garbage", action="store_true")
    args = ap.parse_args()
    if not args.no_garbage:
        with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
            garbage(Path(tmp), args.peer_mb << 20, args.peer_timeout)
    if args.fuzz:
        fuzz_run(args.fuzz, args.seed)


if __name__ == "__main__":
    main()
