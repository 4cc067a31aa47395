"""Fairness differences against brute-force twins written from the definitions."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlwright.errors import GateError
from mlwright.evaluation import demographic_parity_difference, equalized_odds_difference, group_rates


def _gap(values: list[float]) -> float:
    return max(values) - min(values) if len(values) > 1 else 0.0


def twin_dp(pred: list[int], groups: list[Any], min_rows: int) -> float:
    rates = []
    for g in dict.fromkeys(groups):
        picked = [p for p, h in zip(pred, groups, strict=True) if h == g]
        if len(picked) >= min_rows:
            rates.append(sum(picked) / len(picked))
    return _gap(rates)


def twin_eo(truth: list[int], pred: list[int], groups: list[Any], min_rows: int) -> float:
    tprs, fprs = [], []
    for g in dict.fromkeys(groups):
        rows = [(t, p) for t, p, h in zip(truth, pred, groups, strict=True) if h == g]
        if len(rows) < min_rows:
            continue
        positives = [p for t, p in rows if t == 1]
        negatives = [p for t, p in rows if t == 0]
        if positives:
            tprs.append(sum(positives) / len(positives))
        if negatives:
            fprs.append(sum(negatives) / len(negatives))
    return max(_gap(tprs), _gap(fprs))


rows = st.lists(st.tuples(st.integers(0, 1), st.integers(0, 1), st.sampled_from(["a", "b", "c", None])),
                min_size=1, max_size=60)


@settings(max_examples=150, deadline=None)
@given(rows=rows, min_rows=st.integers(1, 6))
def test_fairness_differences_match_their_twins(rows: list[tuple[int, int, Any]], min_rows: int) -> None:
    truth = [r[0] for r in rows]
    pred = [r[1] for r in rows]
    groups = [r[2] for r in rows]
    assert demographic_parity_difference(pred, groups, min_rows=min_rows) == \
        pytest.approx(twin_dp(pred, groups, min_rows), abs=1e-12)
    assert equalized_odds_difference(truth, pred, groups, min_rows=min_rows) == \
        pytest.approx(twin_eo(truth, pred, groups, min_rows), abs=1e-12)


@settings(max_examples=50, deadline=None)
@given(rows=rows)
def test_group_rates_count_every_row_once(rows: list[tuple[int, int, Any]]) -> None:
    rates = group_rates([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
    assert sum(r.rows for r in rates) == len(rows)
    assert sum(r.positives for r in rates) == sum(r[0] for r in rows)
    assert {r.group for r in rates} == {r[2] for r in rows}


def test_known_values() -> None:
    assert demographic_parity_difference([1, 0, 1, 1], ["a", "a", "b", "b"]) == 0.5
    # One group only, or every group the same: no difference.
    assert demographic_parity_difference([1, 0], ["a", "a"]) == 0.0
    assert equalized_odds_difference([1, 0, 1, 0], [1, 0, 1, 0], ["a", "a", "b", "b"]) == 0.0
    # TPR a 1, b 0 -> 1; FPR a 0, b 0.
    assert equalized_odds_difference([1, 0, 1, 0], [1, 0, 0, 0], ["a", "a", "b", "b"]) == 1.0
    # A group without positives has no TPR: only the FPR gap counts.
    assert equalized_odds_difference([1, 0, 0, 0], [1, 1, 0, 0], ["a", "a", "b", "b"]) == 1.0


def test_lengths_must_agree() -> None:
    with pytest.raises(GateError, match="must be 1-D and of the same length"):
        equalized_odds_difference([1, 0], [1, 0, 1], ["a", "b", "c"])
