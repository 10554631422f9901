"""The one base of every Spark step: run folder and run root, timing, progress, stats file, completion marker.

In the spirit of cc-pyspark's job base: a step subclass names itself and its output folder and implements
`work`; `Step.execute` does the rest, the same way for every step, on local paths and object stores alike:

1. delete the step's completion marker (`RUN/_steps/<name>.json`) *before* any output is touched, so a crash
   part-way can never leave partial outputs beside a marker that says "complete";
2. run `work` under a `StageProgress` (progress bars or `progress` events, `step_start` / `step_end` events);
3. add `wall_seconds` and write `RUN/stats/<name>.json`;
4. write the marker last, holding the step's fingerprint: a hash of its config and of what it read.

`corpus run` reruns a step whose marker is missing or whose fingerprint differs from the one it would have now,
so new upstream documents or a changed config never leave stale results that look complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import time
from typing import Any, ClassVar

from corpus.config import ConfigError
from corpus.io.rundir import RunDir
from corpus.steps.events import EventLog

MARKERS = "_steps"


def join_uri(base: str, *parts: str) -> str:
    """`base/part/...` for a local path or a URI (keeps `s3://bucket` intact, unlike pathlib)."""
    return "/".join([base.rstrip("/"), *[p.strip("/") for p in parts if p]])


def run_root_of(step_out: str) -> str:
    """RUN for a step folder RUN/<folder> (local path or URI): where the step's stats, marker and logs go."""
    out = step_out.rstrip("/")
    if "://" in out:
        scheme, rest = out.split("://", 1)
        return f"{scheme}://{posixpath.dirname(rest)}" if "/" in rest else out
    return posixpath.dirname(out) or "."


def config_hash(obj: Any) -> str:
    """Stable hash of a config (a pydantic model or plain JSON data)."""
    data = obj.model_dump(mode="json") if hasattr(obj, "model_dump") else obj
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def folder_fingerprint(uri: str) -> str:
    """Hash of the names and sizes of the data files under a folder (one listing, no data read): changes when an
    upstream step adds, removes or rewrites a part."""
    run = RunDir(uri)
    if not run.exists():
        return "missing"
    from pyarrow import fs as pafs

    infos = run.fs.get_file_info(pafs.FileSelector(run.root, recursive=True))
    entries = sorted((posixpath.relpath(i.path, run.root), i.size) for i in infos
                     if i.type == pafs.FileType.File and not posixpath.basename(i.path).startswith((".", "_")))
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()[:16]


class Step:
    """Subclasses set `name` (stats/<name>.json, the marker, the progress label) and `folder` (outputs under
    RUN/<folder>; "" for the run folder itself) and implement `work(spark) -> stats` and `fingerprint()`."""

    name: ClassVar[str]
    folder: ClassVar[str]

    def __init__(self, run: str, events: EventLog | None = None, out: str | None = None):
        """`out`: the step's output folder when it is not RUN/<folder> (the library functions take any folder;
        the CLI insists on RUN/<folder>)."""
        self.run_uri = run.rstrip("/") or "."
        self.run = RunDir(self.run_uri)
        self.out_uri = out.rstrip("/") if out else join_uri(self.run_uri, self.folder) if self.folder else self.run_uri
        self.out = RunDir(self.out_uri)
        self._events = events

    @property
    def events(self) -> EventLog:
        if self._events is None:
            self._events = EventLog(self.run_uri)
        return self._events

    # --- what a subclass provides
    def work(self, spark) -> dict:
        raise NotImplementedError

    def fingerprint(self) -> str:
        """Hash of the step's config and inputs, recorded in its marker."""
        raise NotImplementedError

    def input_paths(self) -> list[str]:
        """The folders the step reads (checked against its output folder before anything is deleted)."""
        return []

    # --- the shared protocol
    def marker(self) -> dict | None:
        return self.run.read_json(MARKERS, f"{self.name}.json") if self.run.exists(MARKERS, f"{self.name}.json") \
            else None

    def is_complete(self) -> bool:
        """The marker exists and records the fingerprint this step would have now."""
        marker = self.marker()
        return marker is not None and marker.get("fingerprint") == self.fingerprint()

    def stats(self) -> dict:
        return self.run.read_json("stats", f"{self.name}.json")

    def check_paths(self) -> None:
        """Refuse an output folder that equals, contains or lies inside an input: the step would delete what it
        reads (e.g. `corpus dedup --input RUN/docs --out RUN`)."""
        if not self.folder:
            return
        out = _normalized(self.out_uri)
        for path in self.input_paths():
            inp = _normalized(path)
            if inp == out or inp.startswith(out + "/") or out.startswith(inp + "/"):
                raise ConfigError(f"{self.name}: the output folder {self.out_uri} overlaps its input {path}; "
                                  f"give --out RUN/{self.folder} (the step's folder inside the run folder)")

    def execute(self, spark) -> dict:
        from corpus.spark.progress import StageProgress

        started = time.time()
        self.check_paths()
        if self.run.exists(MARKERS, f"{self.name}.json"):  # first: outputs are about to change
            self.run.fs.delete_file(self.run.path(MARKERS, f"{self.name}.json"))
        with StageProgress(spark, self.name, self.events):
            stats = self.work(spark)
        stats["wall_seconds"] = round(time.time() - started, 2)
        self.run.makedirs("stats")
        self.run.write_json(stats, "stats", f"{self.name}.json")
        self.run.makedirs(MARKERS)
        self.run.write_json({"step": self.name, "fingerprint": self.fingerprint()}, MARKERS, f"{self.name}.json")
        return stats


def _normalized(path: str) -> str:
    """Comparable form of a local path or URI: absolute, no trailing slash, s3a:// as s3://."""
    if "://" in path:
        scheme, rest = path.split("://", 1)
        return f"{'s3' if scheme == 's3a' else scheme}://{posixpath.normpath(rest)}"
    return os.path.abspath(path.removeprefix("file://")).rstrip("/")
