"""The package installs whole: a wheel built from the checkout, installed with plain `pip install` into a fresh venv
(no editable install, no requirements file), runs `corpus build` on a small crawl."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path, timeout: int = 1800) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_wheel_in_a_fresh_venv_builds_a_crawl(tmp_path):
    from corpus.build.language_id import bundled_model_path

    dist = tmp_path / "dist"
    res = _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist),
                str(REPO)], REPO)
    assert res.returncode == 0, res.stderr[-3000:]
    (wheel,) = dist.glob("corpus-*.whl")
    venv = tmp_path / "venv"
    assert _run([sys.executable, "-m", "venv", str(venv)], tmp_path).returncode == 0
    res = _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)], tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]

    corpus = str(venv / "bin" / "corpus")  # run from tmp_path: the checkout must not be importable
    res = _run([corpus, "synth", "--out", "crawl", "--pages", "30", "--files", "1"], tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    # Without the model package, a clear error on the driver, before any Spark task.
    res = _run([corpus, "build", "--input", "crawl", "--out", "run0", "--master", "local[1]"], tmp_path)
    assert res.returncode == 2 and "language.model_path" in res.stderr and "Traceback" not in res.stderr
    res = _run([corpus, "build", "--input", "crawl", "--out", "run", "--master", "local[1]",
                "--set", f"language.model_path={bundled_model_path()}"], tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert list((tmp_path / "run" / "docs").glob("part-*.parquet"))
    assert (tmp_path / "run" / "stats" / "build.json").exists()
