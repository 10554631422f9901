"""Progress of a Spark step, from Spark's status tracker.

`StageProgress` polls Spark's status tracker from a daemon thread: active stages with completed / active /
failed task counts. On a terminal it draws a rich progress bar per stage; otherwise (spark-submit logs, CI) it
emits a `progress` event at most every `quiet_interval` seconds, so logs show movement without flooding.
"""

from __future__ import annotations

import sys
import threading
import time


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
    """`log` is the run's corpus.steps.events.EventLog (passed in: the Spark glue does not import the step layer)."""

    def __init__(self, spark, step: str, log, interactive: bool | None = None, interval: float = 0.5,
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
