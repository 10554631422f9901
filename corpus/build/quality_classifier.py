"""The `quality_classifier` build stage: DCLM's learned quality filter, a fastText model from `corpus classifier
train` (corpus.classify), applied to each document's final text.

It adds the `quality_score` column (P(high quality), float64; on kept and removed rows alike) and keeps:
- `keep: threshold`: score >= threshold;
- `top_fraction`: the same with the threshold set to the run's (1 - top_fraction) quantile of the scores of a
  deterministic sample of its inputs (`sample_threshold`, computed once on the driver before any task, and recorded
  in RUN/stats/build.json) — DCLM kept its top 10% this way;
- `keep: pareto`: GPT-3's soft keep as NeMo Curator samples it, np.random.pareto(alpha) > 1 - score, so that some
  lower-scored text stays; each document's draw is seeded from its id and the seed, so reruns and any task order
  keep the same documents.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa

from corpus.build.stage import Doc, Drop, Stage
from corpus.config import ConfigError, PipelineConf

COLUMN = "quality_score"


class QualityClassifierStage(Stage):
    name = "quality_classifier"
    section = "quality.quality_classifier"
    columns = ((COLUMN, pa.float64()),)

    def __init__(self, conf: PipelineConf):
        from corpus.classify.fasttext_model import load_classifier

        super().__init__(conf)
        c = self.section_conf(conf)
        if c.top_fraction is not None:
            raise ConfigError("quality.quality_classifier.top_fraction is resolved into a threshold once per run "
                              "(corpus build does it; without Spark, build the pipeline from "
                              "corpus.build.quality_classifier.resolve_top_fraction's config)")
        self.keep, self.threshold, self.alpha, self.seed = c.keep, c.threshold, c.pareto_alpha, c.seed
        self.classifier = load_classifier(c.model)

    def apply(self, doc: Doc) -> Drop | None:
        score = self.classifier.score_one(doc.text or "")
        doc.columns[COLUMN] = score
        if self.keep == "pareto":
            if pareto_draw(doc.page.id, self.seed, self.alpha) > 1.0 - score:
                return None
            return Drop("quality_classifier_pareto", {"score": score})
        if score >= self.threshold:
            return None
        return Drop("quality_classifier_below_threshold", {"score": score})


def pareto_draw(doc_id, seed: int, alpha: float) -> float:
    """np.random.pareto(alpha) for one document, from a generator seeded by its id and the seed."""
    digest = hashlib.blake2b(f"{seed}:{doc_id}".encode(), digest_size=8).digest()
    return float(np.random.default_rng(int.from_bytes(digest, "big")).pareto(alpha))


def sample_order(files: list[str], seed: int) -> list[str]:
    """The input files in the order the top_fraction sample reads them: by a hash of the name and seed, so the
    sample does not depend on how the inputs were listed."""
    from corpus.io.listing import sample_key

    return sorted(files, key=lambda uri: (sample_key(uri, seed), uri))


class _Enough(Exception):
    """The sample has its documents from this file: stop reading it."""


def resolve_top_fraction(conf: PipelineConf, files: list[str]) -> tuple[PipelineConf, dict | None]:
    """(the config the tasks run, the record for the stats). With `top_fraction`, runs the pipeline's stages up
    to and including the classifier (keeping everything it scores) over a deterministic sample of `files` and
    returns the config with `threshold` set to the (1 - top_fraction) quantile of the sampled scores; otherwise
    the config unchanged and None."""
    from corpus.build.pipeline import BuildPipeline

    c = conf.quality.quality_classifier
    if c is None or c.top_fraction is None:
        return conf, None
    scoring = c.model_copy(update={"top_fraction": None, "keep": "threshold", "threshold": 0.0})
    sample_conf = conf.model_copy(update={
        "quality": conf.quality.model_copy(update={"quality_classifier": scoring}),
        "output": conf.output.model_copy(update={"write_removed": False})})
    pipeline = BuildPipeline(sample_conf)
    picked = sample_order(files, c.seed)[:c.sample_files]
    per_file = -(-c.sample_documents // len(picked))  # spread over the files; each stops early once it has its share
    scores: list[float] = []
    used: list[str] = []

    def take(row: dict) -> None:
        scores.append(row[COLUMN])
        if len(scores) >= target:
            raise _Enough

    for uri in picked:
        target = min(len(scores) + per_file, c.sample_documents)
        used.append(uri)
        try:
            pipeline.process_file_streaming(uri, take, None)
        except _Enough:
            pass
        if len(scores) >= c.sample_documents:
            break
    if not scores:
        raise ConfigError(f"quality.quality_classifier.top_fraction: no document of the {len(used)} sampled input "
                          "file(s) reached the classifier, so there is no score to take a quantile of")
    sample = np.array(scores, dtype=np.float64)
    threshold = float(np.quantile(sample, 1.0 - c.top_fraction))
    resolved = c.model_copy(update={"top_fraction": None, "threshold": threshold})
    record = {"top_fraction": c.top_fraction, "threshold": threshold, "sample_documents": len(sample),
              "sample_files": len(used), "sample_kept_share": float((sample >= threshold).mean())}
    return conf.model_copy(update={"quality": conf.quality.model_copy(update={"quality_classifier": resolved})}), \
        record
