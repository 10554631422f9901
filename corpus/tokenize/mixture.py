"""Data-mixture arithmetic of `corpus tokenize`: sampling factors from source weights, realized shares.

Pure functions (no Spark): the tokenize step applies the factors per document (floor(f) copies, plus one more
when the document's hash falls under the fractional part), so each source's token share lands on its weight.
"""

from __future__ import annotations

import math


def sampling_factors(weights: dict[str, float], tokens: dict[str, int]) -> dict[str, float]:
    """Copies per document, on average, for each source: f = weight share × all tokens / source tokens.

    A source with no tokens gets a factor as if it had one token (it contributes nothing either way)."""
    weight_sum = sum(weights.values())
    total = sum(tokens.get(name, 0) for name in weights)
    return {name: (w / weight_sum) * total / max(tokens.get(name, 0), 1) for name, w in weights.items()}


def copies(factor: float, unit: float) -> int:
    """Copies of one document: floor(f), plus one when its uniform hash `unit` in [0, 1) is under f's fraction
    (the same rule the Spark expression applies per row)."""
    whole = math.floor(factor)
    return int(whole + (1 if unit < factor - whole else 0))


def realized_shares(source_tokens: list[dict[str, int]]) -> tuple[dict[str, int], dict[str, float]]:
    """Sum the per-shard token counts by source; return (tokens per source, share of all tokens, 6 decimals)."""
    realized: dict[str, int] = {}
    for counts in source_tokens:
        for name, n in counts.items():
            realized[name] = realized.get(name, 0) + n
    total = sum(realized.values()) or 1
    return realized, {name: round(n / total, 6) for name, n in realized.items()}
