"""Compare two run folders file by file: every output byte-identical, timings and host-specific lineage aside.

    python scripts/compare_runs.py RUN_A RUN_B        # exit 0 when they match, 1 with the differences listed

Used to prove that a refactor changes no output (run the demo before and after, at the same path), and by the
tests that compare a rerun with a clean run. Data files (Parquet parts, token shards, tokenizer, manifest,
config, input listing) must match byte for byte; JSON stats and the report's JSON must match once the keys that
hold wall-clock time are removed; lineage must match apart from argv and git_commit (in the report's copy too:
the code's commit differs before/after a change by design); event logs, markers and the HTML report (which embeds
timing plots) are not compared.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

SKIP_DIRS = {"logs", "_steps", "_checkpoints", "crawl"}
SKIP_FILES = {"report.html"}
TIMING_KEYS = {"wall_seconds", "task_seconds", "timing", "seconds"}


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in TIMING_KEYS}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def _drop(obj, key: str):
    if isinstance(obj, dict):
        return {k: _drop(v, key) for k, v in obj.items() if k != key}
    if isinstance(obj, list):
        return [_drop(v, key) for v in obj]
    return obj


def _files(root: Path) -> dict[str, Path]:
    out = {}
    for f in sorted(root.rglob("*")):
        rel = f.relative_to(root)
        if f.is_file() and not set(rel.parts[:-1]) & SKIP_DIRS and rel.parts[0] not in SKIP_DIRS \
                and f.name not in SKIP_FILES and not f.name.startswith(".tmp-"):
            out[rel.as_posix()] = f
    return out


def compare(a: Path, b: Path) -> list[str]:
    """The differences between two run folders (empty when they match)."""
    fa, fb = _files(a), _files(b)
    problems = [f"only in {a}: {k}" for k in sorted(fa.keys() - fb.keys())]
    problems += [f"only in {b}: {k}" for k in sorted(fb.keys() - fa.keys())]
    for key in sorted(fa.keys() & fb.keys()):
        x, y = fa[key], fb[key]
        timed = key.startswith(("stats/", "_progress/")) or key in {"report.json", "lineage.json"}
        if key.endswith(".json") and timed:
            jx, jy = _strip(json.loads(x.read_text())), _strip(json.loads(y.read_text()))
            if key == "lineage.json":
                jx.pop("argv", None), jy.pop("argv", None)
            if key in ("lineage.json", "report.json"):  # the code's commit: differs before/after a change by design
                jx, jy = _drop(jx, "git_commit"), _drop(jy, "git_commit")
            if jx != jy:
                problems.append(f"differs (timings aside): {key}")
        elif hashlib.sha256(x.read_bytes()).digest() != hashlib.sha256(y.read_bytes()).digest():
            problems.append(f"differs: {key}")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    problems = compare(Path(argv[0]), Path(argv[1]))
    for p in problems:
        print(p)
    n = len(_files(Path(argv[0])))
    print(f"{n} files compared: " + ("identical" if not problems else f"{len(problems)} differences"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
