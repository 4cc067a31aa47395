"""The paired bootstrap of a metric difference between two models scored on the same rows.

Each resample draws the rows with replacement once and scores both models on that same
draw, so that what the rows have in common (hard cases, easy cases) cancels out of the
difference. Resamples are drawn in chunks and every metric is computed for a whole chunk
at once with NumPy: means of per-row losses (accuracy, log loss, Brier, MAE, RMSE, R²),
confusion counts (precision, recall, F1) and a weighted Mann-Whitney statistic (AUC, ties
counting one half, which is what scikit-learn's trapezoidal ROC AUC equals). Each agrees
with scikit-learn on every resample (see tests/evaluation/test_bootstrap.py); a metric
without a vectorised form falls back to scikit-learn, resample by resample.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from mlwright.evaluation.metrics import FloatArray, Metric

Draw = npt.NDArray[np.intp]  # resamples x rows: the row positions each resample drew
_CELLS_PER_CHUNK = 2_000_000  # rows x resamples drawn at once
_EPS = float(np.finfo(np.float64).eps)  # scikit-learn's clipping of probabilities in log loss


def _mean(loss: FloatArray, draw: Draw) -> FloatArray:
    means: FloatArray = loss[draw].mean(axis=1)
    return means


def _ratio(top: FloatArray, bottom: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out: FloatArray = np.where(bottom > 0, top / bottom, np.nan)
    return out


def _confusion(y: FloatArray, labels: FloatArray, draw: Draw) -> tuple[FloatArray, ...]:
    """True positives, false positives and false negatives of each resample."""
    return ((y * labels)[draw].sum(axis=1), ((1 - y) * labels)[draw].sum(axis=1),
            (y * (1 - labels))[draw].sum(axis=1))


def _auc(y: FloatArray, scores: FloatArray, draw: Draw) -> FloatArray:
    # Rows with equal scores form one group; a positive beats every negative of a lower group
    # and ties with the negatives of its own.
    order = np.argsort(scores, kind="stable")
    ranked = scores[order]
    starts = np.concatenate(([True], ranked[1:] != ranked[:-1]))
    groups = int(starts.sum())
    group = np.empty(len(scores), dtype=np.intp)
    group[order] = np.cumsum(starts) - 1
    resamples = draw.shape[0]
    keys = (np.arange(resamples)[:, None] * (2 * groups) + group[draw] * 2
            + y[draw].astype(np.intp))
    weights = np.bincount(keys.ravel(), minlength=resamples * 2 * groups).reshape(
        resamples, groups, 2).astype(np.float64)
    negatives, positives = weights[..., 0], weights[..., 1]
    below = np.cumsum(negatives, axis=1) - negatives
    wins = (positives * (below + 0.5 * negatives)).sum(axis=1)
    return _ratio(wins, positives.sum(axis=1) * negatives.sum(axis=1))


def _logloss(y: FloatArray, p: FloatArray, draw: Draw) -> FloatArray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return _mean(-(y * np.log(p) + (1 - y) * np.log1p(-p)), draw)


def _r2(y: FloatArray, p: FloatArray, draw: Draw) -> FloatArray:
    if draw.shape[1] < 2:
        return np.full(draw.shape[0], np.nan)
    centred = y - y.mean()  # the variance does not move with a shift; this keeps it exact
    sse = _mean((y - p) ** 2, draw)
    sst = _mean(centred**2, draw) - _mean(centred, draw) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        # scikit-learn's convention for a constant truth: 1 when predicted exactly, else 0.
        out: FloatArray = np.where(sst > 0, 1 - sse / sst, np.where(sse == 0, 1.0, 0.0))
    return out


def _precision(y: FloatArray, labels: FloatArray, draw: Draw) -> FloatArray:
    tp, fp, _ = _confusion(y, labels, draw)
    return _ratio(tp, tp + fp)


def _recall(y: FloatArray, labels: FloatArray, draw: Draw) -> FloatArray:
    tp, _, fn = _confusion(y, labels, draw)
    return _ratio(tp, tp + fn)


def _f1(y: FloatArray, labels: FloatArray, draw: Draw) -> FloatArray:
    tp, fp, fn = _confusion(y, labels, draw)
    return _ratio(2 * tp, 2 * tp + fp + fn)


# name -> the metric on each resample of a draw; labels are already cut for label metrics.
VECTORISED: dict[str, Callable[[FloatArray, FloatArray, Draw], FloatArray]] = {
    "auc": _auc,
    "logloss": _logloss,
    "brier": lambda y, p, draw: _mean((p - y) ** 2, draw),
    "accuracy": lambda y, p, draw: _mean((y == p).astype(np.float64), draw),
    "precision": _precision,
    "recall": _recall,
    "f1": _f1,
    "rmse": lambda y, p, draw: np.sqrt(_mean((p - y) ** 2, draw)),
    "mae": lambda y, p, draw: _mean(np.abs(p - y), draw),
    "r2": _r2,
}


def resampled(metric: Metric, y_true: FloatArray, values: FloatArray, draw: Draw) -> FloatArray:
    """The metric on each resample (row of ``draw``); ``values`` are labels for label metrics."""
    if metric.name in VECTORISED:
        return VECTORISED[metric.name](y_true, values, draw)
    return np.array([metric.fn(y_true[rows], values[rows]) for rows in draw], dtype=np.float64)


def paired_bootstrap(
    metric: Metric,
    y_true: FloatArray,
    candidate: FloatArray,
    reference: FloatArray,
    *,
    n_bootstrap: int,
    seed: int,
    threshold: float = 0.5,
) -> FloatArray:
    """``n_bootstrap`` resampled values of metric(candidate) - metric(reference).

    A resample where the metric is undefined (AUC on one class) gives NaN.
    """
    rng = np.random.default_rng(seed)
    rows = len(y_true)
    if metric.needs == "labels":
        candidate = (candidate >= threshold).astype(np.float64)
        reference = (reference >= threshold).astype(np.float64)
    out = np.empty(n_bootstrap, dtype=np.float64)
    chunk = max(1, _CELLS_PER_CHUNK // max(rows, 1))
    for start in range(0, n_bootstrap, chunk):
        stop = min(start + chunk, n_bootstrap)
        draw: Any = rng.integers(0, rows, size=(stop - start, rows))
        out[start:stop] = (resampled(metric, y_true, candidate, draw)
                           - resampled(metric, y_true, reference, draw))
    return out
