"""Pairwise precision/recall of a dedup run against true Jaccard of normalized 5-gram sets."""

from __future__ import annotations

import itertools
from collections import defaultdict

from corpus.build.word_tokenizer import word_tokenize
from corpus.dedup.minhash import jaccard, ngram_set


def _pairs(ids) -> set[tuple[str, str]]:
    return {tuple(sorted(p)) for p in itertools.combinations(ids, 2)}


def pairwise_scores(docs: list[dict], kept: list[dict], truth_threshold: float = 0.8, n: int = 5) -> dict:
    """docs: the dedup input (id, text); kept: its output (id, cluster_id).

    Truth pairs: true Jaccard >= truth_threshold. Predicted pairs: documents in the same cluster, where a
    removed document belongs to the cluster of the kept document most similar to it.
    """
    grams = {d["id"]: ngram_set(d["text"], n, word_tokenize) for d in docs}
    ids = sorted(grams)
    truth = {(a, b) for a, b in itertools.combinations(ids, 2) if jaccard(grams[a], grams[b]) >= truth_threshold}
    kept_ids = {d["id"] for d in kept}
    clusters: dict[str, set[str]] = defaultdict(set)
    for d in kept:
        clusters[d["cluster_id"]].add(d["id"])
    for doc_id in ids:
        if doc_id not in kept_ids:
            best = max(kept_ids, key=lambda k: jaccard(grams[doc_id], grams[k]))
            clusters[best].add(doc_id)
    predicted = set().union(*(_pairs(m) for m in clusters.values())) if clusters else set()
    tp = len(predicted & truth)
    precision = tp / len(predicted) if predicted else 1.0
    recall = tp / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"truth_pairs": len(truth), "predicted_pairs": len(predicted), "precision": precision,
            "recall": recall, "f1": f1}
