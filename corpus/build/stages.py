"""The build stages, in order: the one place that declares which stages exist and in which order they run.

The pipeline builds its stages from this list (those enabled by the config), RUN/stats/build.json lists their
counts in this order, and the report reads it for the funnel. `read` is the reader (corpus.io.readers), not a
Stage: its skips are counted first. Each entry is the stage's name and its class, imported only when a pipeline
is built (the report needs the names alone, without fastText or datatrove).

To add a filter: a module with a `corpus.build.stage.Stage` subclass, its line here, its config section in
corpus/config.py and conf/pipeline.yaml (null = off), and its output columns in `Stage.columns`.
"""

from __future__ import annotations

import importlib

from corpus.config import PipelineConf

READ = "read"
STAGE_CLASSES: tuple[tuple[str, str], ...] = (
    ("extract", "corpus.build.extract:ExtractStage"),
    ("url_filter", "corpus.build.url_filter:UrlFilterStage"),
    ("language", "corpus.build.language_id:LanguageStage"),
    ("gopher_repetition", "corpus.build.quality_filters:GopherRepetitionStage"),
    ("gopher_quality", "corpus.build.quality_filters:GopherQualityStage"),
    ("c4", "corpus.build.quality_filters:C4Stage"),
    ("fineweb", "corpus.build.quality_filters:FineWebStage"),
    # After the rule filters: it reads the language (lists and models are per language), scores the text they kept
    # (C4 has removed its lines, so removed sentences count against the published text), and its classifier, the
    # costliest check per page, runs only on pages every cheap rule kept. Before the quality classifier: harm is
    # removed whatever the quality, and the quality score (and a top_fraction quantile) is of the cleaned text.
    ("content_filter", "corpus.build.content_filter:ContentFilterStage"),
    ("quality_classifier", "corpus.build.quality_classifier:QualityClassifierStage"),
)
STAGES: tuple[str, ...] = (READ, *(name for name, _ in STAGE_CLASSES))
# The stages every run's stats list, enabled or not (so that runs of any config compare stage by stage); the
# stages after them are listed only when enabled.
CORE_STAGES = STAGES[:8]


def stage_class(name: str):
    """The Stage subclass declared for `name`."""
    path = dict(STAGE_CLASSES)[name]
    module, _, attr = path.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    if cls.name != name:
        raise TypeError(f"{path}.name is {cls.name!r}, declared here as {name!r}")
    return cls


def build_stages(conf: PipelineConf) -> list:
    """The enabled stages, in the declared order, built from the config."""
    classes = [stage_class(name) for name, _ in STAGE_CLASSES]
    return [cls(conf) for cls in classes if cls.enabled(conf)]


def stats_stage_names(conf: PipelineConf) -> tuple[str, ...]:
    """The stages RUN/stats/build.json lists for this config: the core ones always, later ones when enabled."""
    return CORE_STAGES + tuple(name for name, _ in STAGE_CLASSES if name not in CORE_STAGES
                               and stage_class(name).enabled(conf))
