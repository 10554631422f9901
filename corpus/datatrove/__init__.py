"""Run datatrove pipelines on Spark: ``SparkPipelineExecutor`` and a distributed MinHash stage 3.

Attributes load their module on first access, so ``import corpus.datatrove`` costs nothing and corpus's own jobs
never import datatrove's executors."""

from __future__ import annotations

import importlib

_LAZY = {
    "SparkPipelineExecutor": "corpus.datatrove.executor",
    "RankFailedError": "corpus.datatrove.executor",
    "SparkMinhashDedupCluster": "corpus.datatrove.minhash_cluster",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
