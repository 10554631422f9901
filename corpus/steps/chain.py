"""`corpus run`: build → dedup → pii → tokenize → publish → report, skipping steps that are complete and current.

Build always runs (it resumes per input file on its own). A later step is skipped only when its marker
(RUN/_steps/<step>.json, see corpus.steps.base) records the fingerprint it would have now: the same config and
the same upstream parts. New input files, a changed config or a rerun upstream step therefore rerun it. The
report is cheap (no Spark) and always rewritten.
"""

from __future__ import annotations

from corpus.config import PipelineConf, SourceConf
from corpus.io.rundir import RunDir
from corpus.report.page import write_report
from corpus.steps.base import Step, join_uri
from corpus.steps.build import BuildStep
from corpus.steps.dedup import DedupStep
from corpus.steps.events import EventLog
from corpus.steps.pii import PiiStep
from corpus.steps.publish import PublishStep
from corpus.steps.tokenize import TokenizeStep


def run_all(spark, inputs: list[str], out: str, conf: PipelineConf, limit: int | None = None,
            sample: float | None = None, log=print, events: EventLog | None = None, force: bool = False) -> dict:
    """`log` gets one line per step; `events` (default: RUN/logs/events.jsonl only) gets structured step events
    and Spark stage progress."""
    summary: dict = {}
    events = events or EventLog(out)

    def step(s: Step) -> dict:
        if s.is_complete():
            log(f"step {s.name}: already complete, skipped")
            events.event("step_skipped", step=s.name, reason="marker fingerprint is current")
            return s.stats()
        log(f"step {s.name}")
        return s.execute(spark)

    log("step build")
    build = BuildStep(out, inputs, conf, limit=limit, sample=sample, events=events, force=force).execute(spark)
    summary["build"] = {"in": build["documents_in"], "out": build["documents_kept"]}

    dedup = step(DedupStep(out, join_uri(out, "docs"), conf.dedup, events))
    summary["dedup"] = {"in": dedup["documents_in"], "out": dedup["documents_kept"]}

    pii = step(PiiStep(out, join_uri(out, "dedup", "docs"), conf.pii, events=events))
    summary["pii"] = {"in": pii["documents"] + pii["documents_dropped_too_dense"], "out": pii["documents"],
                      "replaced_spans": pii["replaced_spans"]}

    sources = conf.tokenize.sources or [SourceConf(name="main", path=join_uri(out, "pii", "docs"))]
    tokens = step(TokenizeStep(out, sources, conf.tokenize, events))
    summary["tokenize"] = {"in": pii["documents"], "tokens": {k: v["tokens"] for k, v in tokens["splits"].items()}}

    published = step(PublishStep(out, conf.tokenize, events=events))
    summary["publish"] = {"in": pii["documents"], "out": published["documents"]}
    RunDir(out).write_json(summary, "stats", "run.json")
    log("step report")
    write_report(out)  # RUN/report.html + RUN/report.json; cheap (no Spark), so always redone
    return summary
