"""The README's "Bring your datatrove pipeline to Spark" python line, run as written (its --out in a temp folder)."""

from __future__ import annotations

import gzip
import os
import shlex
import subprocess
import sys

import pytest
from conftest import REPO, shared_data


def _readme_line(prefix: str) -> list[str]:
    section = (REPO / "README.md").read_text().split("## Bring your datatrove pipeline to Spark", 1)[1]
    lines = [line for line in section.splitlines() if line.startswith(prefix)]
    assert lines, f"README's datatrove section has no line starting with {prefix!r}"
    return shlex.split(lines[0])


@pytest.mark.slow
def test_readme_python_line_runs(tmp_path):
    shared_data("docs")
    argv = _readme_line("python examples/datatrove_on_spark.py")
    assert _readme_line("spark-submit ")[1:] == argv[1:argv.index("--master")]  # the same run both ways
    argv[0] = sys.executable
    argv[argv.index("--out") + 1] = str(tmp_path / "out")
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYSPARK_PYTHON": sys.executable}
    res = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    kept = sum(1 for p in (tmp_path / "out" / "docs").glob("*.jsonl.gz") for _ in gzip.open(p))
    assert kept > 0 and f"kept {kept} documents" in res.stdout
    assert sorted(p.name for p in (tmp_path / "out" / "logs" / "completions").iterdir()) == ["00000", "00001"]
