"""`corpus build` on Spark: one task per input file, each committing its own outputs (see corpus.io.rundir).

Why not DataFrame writers: Spark commits a whole job at once, so a crash late in a 90 TB crawl would
redo everything. Per-file commits make reruns skip finished files; deterministic part names make a
redone file overwrite, never duplicate, its earlier partial output.
"""

from __future__ import annotations

import json
from collections import Counter
from contextlib import ExitStack

import yaml

from corpus import __version__
from corpus.config import ConfigError, PipelineConf
from corpus.io.listing import expand_inputs, listed_twice
from corpus.io.readers import FILE_ENDED_EARLY
from corpus.io.rundir import RunDir, shard_key
from corpus.schema import DOC_SCHEMA, REMOVED_SCHEMA, with_stage_columns
from corpus.steps.base import Step, config_hash
from corpus.steps.events import EventLog, lineage

PROGRESS = "_progress"


def process_and_commit(uri: str, out: str, conf_json: str, qualify_ids: bool = False) -> dict:
    """Executor side: run the pipeline on one file, streaming its parts (one row group in memory at a time),
    then write its marker (the commit)."""
    from corpus.build.pipeline import worker_pipeline

    run = RunDir(out)
    key = shard_key(uri)
    pipeline = worker_pipeline(conf_json)
    with ExitStack() as parts:
        docs = parts.enter_context(run.parquet_part(with_stage_columns(DOC_SCHEMA, pipeline.extra_fields), "docs",
                                                    f"part-{key}.parquet"))
        removed = None
        if worker_conf_writes_removed(conf_json):
            removed = parts.enter_context(run.parquet_part(with_stage_columns(REMOVED_SCHEMA, pipeline.extra_fields),
                                                           "removed", f"part-{key}.parquet"))
        stats = pipeline.process_file_streaming(uri, docs.add, removed and removed.add, qualify_ids)
    # A file that could not be read to its end is recorded but not "complete": a rerun retries it.
    run.write_json({**stats, "complete": file_complete(stats)}, PROGRESS, f"{key}.json")
    return {"file": uri, "kept": stats["kept"]}


# Read-stage reasons that mean the file itself was not read to its end (not a property of one record): the file
# may be readable later (network outage, a download still being written), so it is retried on the next run.
FILE_INCOMPLETE_REASONS = ("read_error", *FILE_ENDED_EARLY)


def file_complete(file_stats: dict) -> bool:
    removed = file_stats.get("stages", {}).get("read", {}).get("removed", {})
    return not any(reason.startswith(FILE_INCOMPLETE_REASONS) for reason in removed)


def worker_conf_writes_removed(conf_json: str) -> bool:
    return bool(json.loads(conf_json)["output"]["write_removed"])


def merge_file_stats(file_stats: list[dict]) -> dict:
    """Sum per-file stats into the run's totals; deterministic key order."""
    records: Counter[str] = Counter()
    bytes_: Counter[str] = Counter()
    languages: Counter[str] = Counter()
    seconds: Counter[str] = Counter()
    stages: dict[str, dict] = {}
    errors: list[str] = []
    for fs in file_stats:
        records.update(fs["records"])
        bytes_.update(fs["bytes"])
        languages.update(fs["languages"])
        seconds.update(fs["seconds"])
        errors += fs["errors"]
        for name, st in fs["stages"].items():
            agg = stages.setdefault(name, {"in": 0, "out": 0, "removed": Counter()})
            agg["in"] += st["in"]
            agg["out"] += st["out"]
            agg["removed"].update(st["removed"])
    return {
        "files": len(file_stats),
        "records": dict(sorted(records.items())),
        "documents_in": stages.get("read", {}).get("in", 0),
        "documents_kept": sum(fs["kept"] for fs in file_stats),
        "stages": {k: {"in": v["in"], "out": v["out"], "removed": dict(sorted(v["removed"].items()))}
                   for k, v in stages.items()},
        "bytes": dict(sorted(bytes_.items())),
        "languages": dict(sorted(languages.items(), key=lambda kv: (-kv[1], kv[0]))),
        "task_seconds": {k: round(v, 3) for k, v in sorted(seconds.items())},
        "errors": errors[:200],
    }


class BuildStep(Step):
    """Driver side of `corpus build`: list the inputs, write lineage, run one task per pending file, merge stats."""

    name, folder = "build", ""

    def __init__(self, run: str, inputs: list[str], conf: PipelineConf, limit: int | None = None,
                 sample: float | None = None, events: EventLog | None = None, force: bool = False):
        super().__init__(run, events)
        self.inputs, self.conf, self.limit, self.sample, self.force = inputs, conf, limit, sample, force
        self._files: list[str] | None = None

    @property
    def files(self) -> list[str]:
        if self._files is None:
            self._files = expand_inputs(self.inputs, limit=self.limit, sample=self.sample)
        return self._files

    def fingerprint(self) -> str:
        return config_hash({"config": _build_part(self.conf.model_dump(mode="json")), "files": self.files})

    def work(self, spark) -> dict:
        from corpus.build.content_filter import check_content_filter
        from corpus.build.language_id import check_languages, check_model
        from corpus.build.quality_classifier import resolve_top_fraction

        files, conf, run, out = self.files, self.conf, self.run, self.run_uri
        local = spark.sparkContext.master.startswith("local")
        check_model(conf.language.model_path, local=local)
        check_languages(conf)
        check_content_filter(conf.quality.content_filter, local=local)
        qc = conf.quality.quality_classifier
        if qc is not None and qc.top_fraction is None:  # a bad model fails here, before any task (else: in the sample)
            from corpus.classify.fasttext_model import load_classifier

            load_classifier(qc.model)
        for sub in ("docs", "removed", PROGRESS, "stats"):
            run.makedirs(sub)
        self._check_config(run, conf)
        # Lineage: what ran, on what, with which settings.
        run.write_bytes_atomic(yaml.safe_dump(conf.model_dump(), sort_keys=True).encode(), "config.yaml")
        run.write_bytes_atomic(("\n".join(files) + "\n").encode(), "inputs.txt")
        run.write_json({**lineage(), "inputs": len(files), "limit": self.limit, "sample": self.sample},
                       "lineage.json")

        for sub in ("docs", "removed", PROGRESS):  # leftovers of a task killed between write and rename
            for name in run.list(sub):
                if name.startswith(".tmp-"):
                    run.fs.delete_file(run.path(sub, name))
        self._drop_unlisted(run, files)
        done = {name for name in run.list(PROGRESS) if run.read_json(PROGRESS, name).get("complete", True)}
        pending = [f for f in files if f"{shard_key(f)}.json" not in done]
        # top_fraction → one threshold for the whole run, from a deterministic sample, before any task; the tasks
        # get it in their config (config.yaml keeps the setting as given, so resuming compares like with like).
        task_conf, classifier_record = resolve_top_fraction(conf, files)
        if pending:
            conf_json = task_conf.model_dump_json()
            sc = spark.sparkContext
            sc.setJobDescription(f"corpus build: {len(pending)} files")
            rdd = sc.parallelize(pending, numSlices=len(pending))  # one task per input file
            twice = listed_twice(files)  # the same file under two URIs: qualify its record ids
            rdd.map(lambda uri: process_and_commit(uri, out, conf_json, uri in twice)).collect()

        file_stats = [run.read_json(PROGRESS, f"{shard_key(f)}.json") for f in files]
        stats = merge_file_stats(file_stats)
        stats.update({"version": __version__, "files_skipped_as_done": len(files) - len(pending),
                      "files_incomplete": sorted(f["file"] for f in file_stats if not f.get("complete", True))})
        if classifier_record is not None:
            stats["quality_classifier"] = classifier_record
        return stats

    def _check_config(self, run: RunDir, conf: PipelineConf) -> None:
        """Resuming under another config would mix documents filtered two ways: refuse, unless forced (then the
        run's build outputs are cleared and every file is redone)."""
        if not run.exists("config.yaml") or not run.list(PROGRESS):
            return
        with run.fs.open_input_stream(run.path("config.yaml")) as f:
            before = _build_part(yaml.safe_load(f.read().decode("utf-8")))
        now = _build_part(yaml.safe_load(yaml.safe_dump(conf.model_dump(), sort_keys=True)))
        if before == now:
            return
        changed = sorted(_changed_keys(before, now))
        if not self.force:
            raise ConfigError(
                f"{self.run_uri} was built with another config (changed: {', '.join(changed[:8])}"
                f"{' ...' if len(changed) > 8 else ''}); resuming would mix documents filtered two ways. "
                "Use a new --out, or --force to rebuild every file under the new config.")
        for sub in ("docs", "removed", PROGRESS):
            if run.exists(sub):
                run.fs.delete_dir_contents(run.path(sub))
        self.events.event("build_forced", changed=changed)

    def _drop_unlisted(self, run: RunDir, files: list[str]) -> None:
        """Parts of input files no longer listed would leak into later steps: remove them (and their markers)."""
        keys = {shard_key(f) for f in files}
        stale = [name for name in run.list(PROGRESS) if name.removesuffix(".json") not in keys]
        for name in stale:
            key = name.removesuffix(".json")
            run.fs.delete_file(run.path(PROGRESS, name))  # the marker first: a crash then leaves it redone
            for sub in ("docs", "removed"):
                if run.exists(sub, f"part-{key}.parquet"):
                    run.fs.delete_file(run.path(sub, f"part-{key}.parquet"))
        if stale:
            self.events.event("build_unlisted_removed", files=len(stale))


# Sections of the pipeline config that later steps own: changing them reruns those steps (their fingerprints), not
# the build, and is no reason to refuse resuming a build.
LATER_STEPS = ("dedup", "pii", "tokenize")


def _build_part(conf: dict) -> dict:
    return {k: v for k, v in conf.items() if k not in LATER_STEPS}


def _changed_keys(a, b, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b)):
            out += _changed_keys(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


def run_build(spark, inputs: list[str], out: str, conf: PipelineConf, limit: int | None = None,
              sample: float | None = None, events: EventLog | None = None, force: bool = False) -> dict:
    """`corpus build` into the run folder `out`. Returns the merged stats, also written to RUN/stats/build.json."""
    return BuildStep(out, inputs, conf, limit=limit, sample=sample, events=events, force=force).execute(spark)
