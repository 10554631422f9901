"""The data-mixture arithmetic of `corpus tokenize`, without Spark."""

from __future__ import annotations

import random

import pytest

from corpus.tokenize.mixture import copies, realized_shares, sampling_factors


def test_factors_put_each_source_on_its_weight():
    tokens = {"web": 9_000, "code": 1_000}
    factors = sampling_factors({"web": 0.5, "code": 0.5}, tokens)
    # web has 90 % of the tokens but half the weight: sampled down; code sampled up 5x.
    assert factors == pytest.approx({"web": 0.5 * 10_000 / 9_000, "code": 5.0})
    expected = {name: factors[name] * tokens[name] for name in tokens}
    assert expected["web"] == pytest.approx(expected["code"])


def test_one_source_is_taken_once_and_an_empty_source_does_not_divide_by_zero():
    assert sampling_factors({"main": 3.0}, {"main": 123}) == {"main": 1.0}
    factors = sampling_factors({"a": 1.0, "empty": 1.0}, {"a": 100})
    assert factors["a"] == pytest.approx(0.5) and factors["empty"] == pytest.approx(50.0)


def test_copies_realize_the_factor_on_average():
    rng = random.Random(0)
    for factor in (0.0, 0.3, 1.0, 2.75):
        n = 20_000
        total = sum(copies(factor, rng.random()) for _ in range(n))
        assert abs(total / n - factor) < 0.02
        assert {copies(factor, u) for u in (0.0, 0.999999)} <= {int(factor), int(factor) + 1}


def test_realized_shares_sum_shards_by_source():
    realized, shares = realized_shares([{"web": 30, "code": 10}, {"web": 50}, {}])
    assert realized == {"web": 80, "code": 10}
    assert shares == {"web": round(80 / 90, 6), "code": round(10 / 90, 6)}
    assert realized_shares([]) == ({}, {})
