"""Progress and structured logs for long steps, on the driver.

`EventLog` writes one JSON object per event (`{"ts", "event", ...}`) to RUN/logs/events.jsonl — the whole file is
rewritten atomically through the run folder's filesystem, so it works on s3:// too — and, with
`--log-format json`, to stderr, where log shippers (CloudWatch, Cloud Logging, Loki) pick it up.

`StageProgress` polls Spark's status tracker from a daemon thread: active stages with completed / active /
failed task counts. On a terminal it draws a rich progress bar per stage; otherwise (spark-submit logs, CI) it
emits a `progress` event at most every `quiet_interval` seconds, so logs show movement without flooding.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from datetime import UTC, datetime

from corpus.outputs import RunDir


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


def active_stages(spark) -> list[dict]:
    tracker = spark.sparkContext.statusTracker()
    stages = []
    for sid in sorted(tracker.getActiveStageIds()):
        info = tracker.getStageInfo(sid)
        if info is not None:
            stages.append({"stage": sid, "name": info.name.split(" at ")[0], "tasks": info.numTasks,
                           "done": info.numCompletedTasks, "active": info.numActiveTasks,
                           "failed": info.numFailedTasks})
    return stages


class StageProgress:
    def __init__(self, spark, step: str, log: EventLog, interactive: bool | None = None, interval: float = 0.5,
                 quiet_interval: float = 30.0):
        self.spark, self.step, self.log = spark, step, log
        self.interactive = sys.stderr.isatty() and not log.json_stderr if interactive is None else interactive
        self.interval, self.quiet_interval = interval, quiet_interval
        self.stop_flag = threading.Event()
        self.seen: dict[int, dict] = {}  # stage → last snapshot, for the summary event
        self.thread = threading.Thread(target=self._loop, name=f"progress-{step}", daemon=True)

    def __enter__(self) -> StageProgress:
        self.started = time.monotonic()
        self.log.event("step_start", step=self.step)
        self.thread.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.stop_flag.set()
        self.thread.join()
        seconds = round(time.monotonic() - self.started, 2)
        tasks = sum(s["tasks"] for s in self.seen.values())
        if exc is None:
            self.log.event("step_end", step=self.step, seconds=seconds, stages_observed=len(self.seen),
                           tasks_observed=tasks)
        else:
            self.log.event("step_failed", step=self.step, seconds=seconds, error=f"{type(exc).__name__}: {exc}")

    def _loop(self) -> None:
        bar = None
        if self.interactive:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                           transient=True)
            bar.start()
        rows: dict[int, int] = {}
        last_quiet = 0.0
        try:
            while not self.stop_flag.wait(self.interval):
                try:
                    stages = active_stages(self.spark)
                except Exception:  # noqa: BLE001 - the context may be stopping; progress is best effort
                    continue
                for s in stages:
                    self.seen[s["stage"]] = s
                    if bar is not None:
                        label = f"{self.step} · stage {s['stage']} {s['name']}"
                        if s["stage"] not in rows:
                            rows[s["stage"]] = bar.add_task(label, total=s["tasks"])
                        bar.update(rows[s["stage"]], completed=s["done"], total=s["tasks"])
                now = time.monotonic()
                if bar is None and stages and now - last_quiet >= self.quiet_interval:
                    last_quiet = now
                    self.log.event("progress", persist=False, step=self.step, stages=stages)
        finally:
            if bar is not None:
                bar.stop()


def lineage() -> dict:
    """What produced a run: package and engine versions, interpreter, command line."""
    import platform

    import pyarrow
    import pyspark

    from corpus import __version__

    return {"corpus_version": __version__, "pyspark": pyspark.__version__, "pyarrow": pyarrow.__version__,
            "python": platform.python_version(), "argv": sys.argv}
