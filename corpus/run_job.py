"""`corpus run`: build → dedup → pii → tokenize → report, skipping finished steps (the report is always rewritten).

A step is finished when its last-written file exists: RUN/stats/dedup.json / pii.json (written after
the docs), RUN/tokens/manifest.json for tokenize. `corpus build` resumes per input file on its own.
"""

from __future__ import annotations

import json
from pathlib import Path

from corpus.build_job import run_build
from corpus.config import PipelineConf, SourceConf
from corpus.dedup_job import run_dedup
from corpus.monitor import EventLog, StageProgress
from corpus.pii_job import run_pii
from corpus.report import write_report
from corpus.tokenize_job import run_tokenize


def run_all(spark, inputs: list[str], out: str, conf: PipelineConf, limit: int | None = None,
            sample: float | None = None, log=print, events: EventLog | None = None) -> dict:
    """`log` gets one line per step; `events` (default: RUN/logs/events.jsonl only) gets structured step events
    and Spark stage progress."""
    root = Path(out)
    summary: dict = {}
    events = events or EventLog(out)

    log("step build")
    with StageProgress(spark, "build", events):
        build = run_build(spark, inputs, out, conf, limit=limit, sample=sample)
    summary["build"] = {"in": build["documents_in"], "out": build["documents_kept"]}

    def step(name: str, done: Path, work) -> dict:
        """Run `work` unless its last-written file `done` exists; return that file's JSON."""
        if done.exists():
            log(f"step {name}: already complete, skipped")
            events.event("step_skipped", step=name, reason=f"{done.name} exists")
        else:
            log(f"step {name}")
            with StageProgress(spark, name, events):
                work()
        return json.loads(done.read_text())

    dedup = step("dedup", root / "stats" / "dedup.json",
                 lambda: run_dedup(spark, str(root / "docs"), str(root / "dedup"), conf.dedup))
    summary["dedup"] = {"in": dedup["documents_in"], "out": dedup["documents_kept"]}

    docs = str(root / "dedup" / "docs")
    pii = step("pii", root / "stats" / "pii.json", lambda: run_pii(spark, docs, str(root / "pii"), conf.pii))
    summary["pii"] = {"in": pii["documents"] + pii["documents_dropped_too_dense"], "out": pii["documents"],
                      "replaced_spans": pii["replaced_spans"]}

    sources = conf.tokenize.sources or [SourceConf(name="main", path=str(root / "pii" / "docs"))]
    manifest = step("tokenize", root / "tokens" / "manifest.json",
                    lambda: run_tokenize(spark, sources, str(root / "tokens"), conf.tokenize))
    summary["tokenize"] = {"in": pii["documents"], "tokens": {k: v["tokens"] for k, v in manifest["splits"].items()}}
    (root / "stats").mkdir(parents=True, exist_ok=True)
    (root / "stats" / "run.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    log("step report")
    write_report(out)  # RUN/report.html + RUN/report.json; cheap (no Spark), so always redone
    return summary
