"""Span-level precision/recall of our PII stage on Presidio-research-format data (full_text + spans)."""

from __future__ import annotations

from collections import Counter

from corpus.pii.scrubber import PiiScrubber


def evaluate(scrubber: PiiScrubber, records: list[dict], entities: list[str]) -> dict[str, dict]:
    """A prediction is a true positive when it overlaps a gold span of the same type."""
    tp, fp, fn = Counter(), Counter(), Counter()
    for rec in records:
        text = rec["full_text"]
        gold = [(s["start_position"], s["end_position"], s["entity_type"]) for s in rec["spans"]
                if s["entity_type"] in entities]
        pred = [(f.start, f.end, f.entity_type) for f in scrubber.policy(text, scrubber.find(text))]
        matched_gold = set()
        for ps, pe, pt in pred:
            hit = next((g for g in gold if g[2] == pt and ps < g[1] and g[0] < pe), None)
            if hit is None:
                fp[pt] += 1
            else:
                tp[pt] += 1
                matched_gold.add(hit)
        for g in gold:
            if g not in matched_gold:
                fn[g[2]] += 1
    out = {}
    for entity in entities:
        p_den, r_den = tp[entity] + fp[entity], tp[entity] + fn[entity]
        out[entity] = {"tp": tp[entity], "fp": fp[entity], "fn": fn[entity],
                       "precision": round(tp[entity] / p_den, 4) if p_den else None,
                       "recall": round(tp[entity] / r_den, 4) if r_den else None}
    return out
