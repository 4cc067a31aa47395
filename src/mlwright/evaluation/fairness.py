"""Group fairness metrics for a binary classifier, computed in one pass with NumPy.

For each group of a sensitive attribute (null is a group of its own):

- selection rate: the share of rows predicted positive;
- true positive rate: the share of the group's positives predicted positive (NaN when the
  group has no positive);
- false positive rate: the share of the group's negatives predicted positive (NaN when the
  group has no negative).

The *demographic parity difference* is the largest minus the smallest selection rate; the
*equalized odds difference* is the larger of the TPR gap and the FPR gap, each taken over
the groups where that rate is defined. Groups with fewer than ``min_rows`` rows are
reported but left out of both differences. With fewer than two groups a difference is 0.

>>> demographic_parity_difference([1, 0, 1, 1], ["a", "a", "b", "b"])
0.5
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from mlwright.errors import GateError
from mlwright.evaluation.metrics import FloatArray

FairnessMetric = Literal["demographic_parity_difference", "equalized_odds_difference"]
FAIRNESS_METRICS: tuple[FairnessMetric, ...] = (
    "demographic_parity_difference",
    "equalized_odds_difference",
)


@dataclass(frozen=True)
class GroupRates:
    """What the fairness metrics read for one group."""

    group: Any
    rows: int
    positives: int
    selection_rate: float
    true_positive_rate: float
    false_positive_rate: float
    judged: bool


def _codes(groups: Sequence[Any] | np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], list[Any]]:
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is installed wherever tests run
        raise GateError("Fairness gates need pandas; install it with: pip install pandas") from None
    codes, uniques = pd.factorize(np.asarray(groups, dtype=object), use_na_sentinel=False)
    return np.asarray(codes), [None if _is_null(u) else u for u in uniques]


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def group_rates(
    y_true: Sequence[float] | FloatArray,
    y_pred: Sequence[float] | FloatArray,
    groups: Sequence[Any] | np.ndarray[Any, Any],
    *,
    min_rows: int = 1,
) -> list[GroupRates]:
    """Per group: rows, positives, selection rate, TPR and FPR (predictions are 0/1 labels)."""
    truth = np.asarray(y_true, dtype=np.float64)
    pred = np.asarray(y_pred, dtype=np.float64)
    if not truth.shape == pred.shape == (len(groups),):
        raise GateError(f"labels ({truth.shape}), predictions ({pred.shape}) and groups "
                        f"({len(groups)}) must be 1-D and of the same length")
    codes, names = _codes(groups)
    k = len(names)
    rows = np.bincount(codes, minlength=k).astype(np.float64)
    positives = np.bincount(codes, weights=truth, minlength=k)
    negatives = rows - positives
    selected = np.bincount(codes, weights=pred, minlength=k)
    true_pos = np.bincount(codes, weights=truth * pred, minlength=k)
    false_pos = selected - true_pos
    with np.errstate(divide="ignore", invalid="ignore"):
        tpr = np.where(positives > 0, true_pos / positives, np.nan)
        fpr = np.where(negatives > 0, false_pos / negatives, np.nan)
    return [
        GroupRates(names[i], int(rows[i]), int(positives[i]), float(selected[i] / rows[i]),
                   float(tpr[i]), float(fpr[i]), judged=bool(rows[i] >= min_rows))
        for i in range(k)
    ]


def _gap(values: list[float]) -> float:
    defined = [v for v in values if v == v]
    return max(defined) - min(defined) if len(defined) > 1 else 0.0


def difference_from_rates(metric: FairnessMetric, rates: list[GroupRates]) -> float:
    """The fairness difference over the judged groups."""
    judged = [r for r in rates if r.judged]
    if metric == "demographic_parity_difference":
        return _gap([r.selection_rate for r in judged])
    return max(_gap([r.true_positive_rate for r in judged]),
               _gap([r.false_positive_rate for r in judged]))


def demographic_parity_difference(
    y_pred: Sequence[float] | FloatArray,
    groups: Sequence[Any] | np.ndarray[Any, Any],
    *,
    min_rows: int = 1,
) -> float:
    """Largest minus smallest share of positive predictions across groups."""
    pred = np.asarray(y_pred, dtype=np.float64)
    rates = group_rates(np.zeros_like(pred), pred, groups, min_rows=min_rows)
    return difference_from_rates("demographic_parity_difference", rates)


def equalized_odds_difference(
    y_true: Sequence[float] | FloatArray,
    y_pred: Sequence[float] | FloatArray,
    groups: Sequence[Any] | np.ndarray[Any, Any],
    *,
    min_rows: int = 1,
) -> float:
    """The larger of the true-positive-rate gap and the false-positive-rate gap across groups."""
    rates = group_rates(y_true, y_pred, groups, min_rows=min_rows)
    return difference_from_rates("equalized_odds_difference", rates)
