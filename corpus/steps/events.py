"""Structured logs and lineage of a run, on the driver.

`EventLog` writes one JSON object per event (`{"ts", "event", ...}`) to RUN/logs/events.jsonl — the whole file is
rewritten atomically through the run folder's filesystem, so it works on s3:// too — and, with
`--log-format json`, to stderr, where log shippers (CloudWatch, Cloud Logging, Loki) pick it up.
"""

from __future__ import annotations

import json
import sys
import threading
from datetime import UTC, datetime

from corpus.io.rundir import RunDir


class EventLog:
    def __init__(self, run_uri: str | None, json_stderr: bool = False, console=None):
        self.run = RunDir(run_uri) if run_uri else None
        self.json_stderr, self.console = json_stderr, console
        self.lines: list[str] = []
        self.lock = threading.Lock()
        if self.run is not None and self.run.exists("logs", "events.jsonl"):  # a rerun appends to the history
            with self.run.fs.open_input_stream(self.run.path("logs", "events.jsonl")) as f:
                self.lines = f.read().decode("utf-8").splitlines()

    def event(self, name: str, persist: bool = True, **fields) -> dict:
        record = {"ts": datetime.now(UTC).isoformat(timespec="milliseconds"), "event": name, **fields}
        line = json.dumps(record, sort_keys=False, default=str)
        with self.lock:
            if self.json_stderr:
                print(line, file=sys.stderr, flush=True)
            elif self.console is not None:
                self.console.print(f"[cyan]{name}[/] " + " ".join(f"{k}={v}" for k, v in fields.items()))
            if persist and self.run is not None:
                self.lines.append(line)
                self.run.makedirs("logs")
                self.run.write_bytes_atomic(("\n".join(self.lines) + "\n").encode(), "logs", "events.jsonl")
        return record


def lineage() -> dict:
    """What produced a run: package and engine versions, interpreter, command line."""
    import platform

    import pyarrow
    import pyspark

    from corpus import __version__

    return {"corpus_version": __version__, "pyspark": pyspark.__version__, "pyarrow": pyarrow.__version__,
            "python": platform.python_version(), "argv": sys.argv, "git_commit": git_commit()}


def git_commit() -> str | None:
    """HEAD of the git checkout holding the corpus package (an editable install), or None (a wheel, no git).

    The package's own files must be tracked there: a wheel installed into a venv that sits inside some other
    repository would otherwise report that repository's commit."""
    import os
    import subprocess

    import corpus

    folder = os.path.dirname(os.path.abspath(corpus.__file__))
    try:
        tracked = subprocess.run(["git", "-C", folder, "ls-files", "--error-unmatch", "__init__.py"],
                                 capture_output=True, timeout=5, check=False)
        if tracked.returncode != 0:
            return None
        done = subprocess.run(["git", "-C", folder, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and len(commit) == 40 else None
