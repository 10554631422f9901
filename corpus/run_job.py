"""`corpus run`: build → dedup → pii → tokenize (the report joins when it lands), skipping finished steps.

A step is finished when its last-written file exists: RUN/stats/dedup.json / pii.json (written after
the docs), RUN/tokens/manifest.json for tokenize. `corpus build` resumes per input file on its own.
"""

from __future__ import annotations

import json
from pathlib import Path

from corpus.build_job import run_build
from corpus.config import PipelineConf, SourceConf
from corpus.dedup_job import run_dedup
from corpus.pii_job import run_pii
from corpus.tokenize_job import run_tokenize


def run_all(spark, inputs: list[str], out: str, conf: PipelineConf, limit: int | None = None, log=print) -> dict:
    root = Path(out)
    summary: dict = {}

    log("step build")
    build = run_build(spark, inputs, out, conf, limit=limit)
    summary["build"] = {"in": build["documents_in"], "out": build["documents_kept"]}

    dedup_stats = root / "stats" / "dedup.json"
    if dedup_stats.exists():
        log("step dedup: already complete, skipped")
        dedup = json.loads(dedup_stats.read_text())
    else:
        log("step dedup")
        dedup = run_dedup(spark, str(root / "docs"), str(root / "dedup"), conf.dedup)
    summary["dedup"] = {"in": dedup["documents_in"], "out": dedup["documents_kept"]}
    docs = str(root / "dedup" / "docs")

    pii_stats = root / "stats" / "pii.json"
    if pii_stats.exists():
        log("step pii: already complete, skipped")
        pii = json.loads(pii_stats.read_text())
    else:
        log("step pii")
        pii = run_pii(spark, docs, str(root / "pii"), conf.pii)
    summary["pii"] = {"in": pii["documents"], "out": pii["documents"], "replaced_spans": pii["replaced_spans"]}
    docs = str(root / "pii" / "docs")

    manifest_path = root / "tokens" / "manifest.json"
    if manifest_path.exists():
        log("step tokenize: already complete, skipped")
        manifest = json.loads(manifest_path.read_text())
    else:
        log("step tokenize")
        sources = conf.tokenize.sources or [SourceConf(name="main", path=docs)]
        run_tokenize(spark, sources, str(root / "tokens"), conf.tokenize)
        manifest = json.loads(manifest_path.read_text())
    summary["tokenize"] = {"in": dedup["documents_kept"],
                           "tokens": {k: v["tokens"] for k, v in manifest["splits"].items()}}
    (root / "stats").mkdir(parents=True, exist_ok=True)
    (root / "stats" / "run.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary
