"""The build-stage protocol: what one stage of the per-file pipeline is, and the bookkeeping every stage shares.

A stage is a small class with a `name` (the `stage` of its removed rows and its key in RUN/stats/build.json), the
`section` of the pipeline config it reads (a dotted path, e.g. `quality.c4`), the output `columns` it adds, and
`apply(doc)`, which either keeps the document (returning None, after possibly rewriting `doc.text` or adding
metric values and columns) or drops it with `Drop(reason, metrics)`. Everything else — timing, per-stage
in/out counts, the removed row, the byte funnel — is done once, by `Stage.run` and `StageStats`, for all stages.

The set and order of stages is declared in one place, `corpus.build.stages`, which the pipeline, the stats and
the report read. Adding a filter is one module with a `Stage` subclass, one line there and its config section.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import pyarrow as pa

from corpus.config import PipelineConf
from corpus.io.readers import Page

MAX_ERROR_DETAILS = 20


@dataclass(slots=True, eq=False)
class Doc:
    """One page on its way through the stages."""

    page: Page
    text: str | None = None  # the current text: None before extraction, rewritten by stages such as C4
    extracted: str | None = None  # the extracted text, as the filters first saw it (removed rows' text_head)
    text_bytes: int = 0  # UTF-8 bytes of `extracted`: what a drop removes from the byte funnel
    language: str | None = None
    language_score: float | None = None
    # The values filters compared to thresholds, keyed "stage.value" (QUALITY_METRIC_COLUMNS names some of them).
    metrics: dict[str, float | None] = field(default_factory=dict)
    # Output columns added by stages that declare them (Stage.columns), on kept and removed rows alike.
    columns: dict[str, Any] = field(default_factory=dict)

    @property
    def chars(self) -> int | None:
        return None if self.extracted is None else len(self.extracted)


class Drop(NamedTuple):
    """A stage's verdict against a document: the reason, and the values that decided it (keyed without the stage
    name; stored as "stage.value")."""

    reason: str
    metrics: Mapping[str, float | None] | None = None


class StageStats:
    """Counts of one input file, per stage: in, removed by reason, seconds, bytes, languages, error details."""

    def __init__(self, uri: str, stage_names: tuple[str, ...]):
        self.uri = uri
        self.stage_names = stage_names
        self.records: Counter[str] = Counter()
        self.removed: dict[str, Counter[str]] = defaultdict(Counter)
        self.entered: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()
        self.bytes: Counter[str] = Counter()
        self.languages: Counter[str] = Counter()
        self.errors: list[str] = []
        self.ended_early: str | None = None

    def error(self, text: str) -> None:
        if len(self.errors) < MAX_ERROR_DETAILS:
            self.errors.append(text)

    def as_dict(self, kept: int) -> dict:
        stages = {}
        for stage in self.stage_names:
            n_in = self.entered[stage]
            dropped = dict(sorted(self.removed[stage].items()))
            stages[stage] = {"in": n_in, "removed": dropped, "out": n_in - sum(dropped.values())}
        return {
            "file": self.uri,
            "records": dict(sorted(self.records.items())),
            "stages": stages,
            "kept": kept,
            "bytes": dict(sorted(self.bytes.items())),
            "languages": dict(sorted(self.languages.items())),
            "seconds": {k: round(v, 4) for k, v in sorted(self.seconds.items())},
            "errors": self.errors,
            # The FILE_ENDED_EARLY reason when the file was not read to its end (its pages before are kept).
            "ended_early": self.ended_early,
        }


class Stage:
    """Base of every build stage. Subclasses set `name` and `section`, may set `columns`, and implement `apply`.

    `section` is the dotted path of the stage's config in PipelineConf; the stage is part of the pipeline when
    that value is not None (and, for sections with an `enabled` field, when it is true). `timing` names the key
    of RUN/stats/build.json's `seconds` the stage's time adds to (its name unless set)."""

    name: ClassVar[str]
    section: ClassVar[str]
    columns: ClassVar[tuple[tuple[str, pa.DataType], ...]] = ()
    timing: ClassVar[str | None] = None

    def __init__(self, conf: PipelineConf):
        self.conf = conf

    @classmethod
    def section_conf(cls, conf: PipelineConf):
        value: Any = conf
        for part in cls.section.split("."):
            value = getattr(value, part)
        return value

    @classmethod
    def enabled(cls, conf: PipelineConf) -> bool:
        value = cls.section_conf(conf)
        return value is not None and getattr(value, "enabled", True)

    def applies(self, doc: Doc) -> bool:
        """Whether the document enters this stage at all (not counted in its `in` when False)."""
        return True

    def apply(self, doc: Doc) -> Drop | None:
        raise NotImplementedError

    def record(self, doc: Doc, metrics: Mapping[str, float | None]) -> None:
        """Keep the values this stage compared to thresholds on the document, as "stage.value"."""
        doc.metrics.update((f"{self.name}.{k}", v) for k, v in metrics.items())

    def run(self, doc: Doc, stats: StageStats, drop: Callable[[str, str], None]) -> bool:
        """Apply the stage with its bookkeeping; False when the document was dropped (after `drop(stage, reason)`
        recorded it). Exceptions propagate: the pipeline turns them into a `pipeline_error` drop at this stage."""
        if not self.applies(doc):
            return True
        stats.entered[self.name] += 1
        t0 = time.perf_counter()
        try:
            verdict = self.apply(doc)
        finally:
            stats.seconds[self.timing or self.name] += time.perf_counter() - t0
        if verdict is None:
            return True
        if verdict.metrics:
            self.record(doc, verdict.metrics)
        drop(self.name, verdict.reason)
        return False
