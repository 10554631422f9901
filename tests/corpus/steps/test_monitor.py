"""Progress from Spark's status tracker, structured event logs and run lineage, on the shared local session."""

from __future__ import annotations

import json
import time

import pytest
from conftest import shared_data

from corpus import cli
from corpus.spark.progress import StageProgress
from corpus.steps.events import EventLog


def _slow_job(spark, tasks: int = 4, seconds: float = 0.6) -> int:
    def work(x):
        time.sleep(seconds)
        return x

    return spark.sparkContext.parallelize(range(tasks), tasks).map(work).count()


def test_progress_reports_stage_task_counts_and_step_events(spark, tmp_path, capsys):
    log = EventLog(str(tmp_path / "run"), json_stderr=True)
    with StageProgress(spark, "demo", log, interactive=False, interval=0.1, quiet_interval=0.0):
        assert _slow_job(spark) == 4
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    events = [e["event"] for e in lines]
    assert events[0] == "step_start" and events[-1] == "step_end" and "progress" in events
    stages = [s for e in lines if e["event"] == "progress" for s in e["stages"]]
    assert all(s["tasks"] == 4 and 0 <= s["done"] <= 4 for s in stages)
    end = lines[-1]
    assert end["step"] == "demo" and end["seconds"] > 0 and end["stages_observed"] >= 1
    # Progress lines go to the console only; step events are kept in the run folder.
    kept = [json.loads(line) for line in (tmp_path / "run" / "logs" / "events.jsonl").read_text().splitlines()]
    assert [e["event"] for e in kept] == ["step_start", "step_end"]


def test_a_failing_step_is_logged_as_failed(spark, tmp_path):
    log = EventLog(str(tmp_path / "run"))
    with pytest.raises(ZeroDivisionError):
        with StageProgress(spark, "boom", log, interactive=False):
            raise ZeroDivisionError("division by zero in a step")
    last = json.loads((tmp_path / "run" / "logs" / "events.jsonl").read_text().splitlines()[-1])
    assert last["event"] == "step_failed" and "ZeroDivisionError" in last["error"]


def test_event_log_appends_across_reruns(tmp_path):
    EventLog(str(tmp_path)).event("command", command="build")
    EventLog(str(tmp_path)).event("command", command="build")
    lines = (tmp_path / "logs" / "events.jsonl").read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(line)["ts"] for line in lines)


def test_cli_build_with_json_logs_keeps_lineage(spark, tmp_path, capsys):
    warc = shared_data("warc", "crawls", "sample-0000.warc.gz")
    out = tmp_path / "run"
    try:
        cli.main(["--log-format", "json", "build", "--input", str(warc), "--out", str(out)])
    finally:
        cli.settings["log_format"] = "text"
    err_events = [json.loads(line)["event"] for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    assert err_events[:2] == ["command", "step_start"] and "step_end" in err_events
    events = [json.loads(line) for line in (out / "logs" / "events.jsonl").read_text().splitlines()]
    command = events[0]
    assert command["command"] == "build" and command["corpus_version"] and command["pyspark"]
    lineage = json.loads((out / "lineage.json").read_text())
    assert lineage["inputs"] == 1 and lineage["corpus_version"] == command["corpus_version"]
    assert (out / "config.yaml").exists() and (out / "inputs.txt").read_text().strip() == str(warc.resolve())


def test_bad_log_format_is_a_clear_error(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--log-format", "xml", "synth", "--out", "/nonexistent"])
    assert e.value.code == 2 and "--log-format" in capsys.readouterr().err
    cli.settings["log_format"] = "text"

