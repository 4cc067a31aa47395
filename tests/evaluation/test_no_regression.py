"""The comparison with the champion: a paired bootstrap of the metric difference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as sk

from mlwright.evaluation import METRICS, NoRegression, evaluate_gates
from mlwright.evaluation.bootstrap import paired_bootstrap, resampled

from .models import Models


def test_a_clearly_worse_candidate_fails_with_the_difference_and_interval(cancer: Models) -> None:
    gate = NoRegression("auc", tolerance=0.01, n_bootstrap=200)
    report = evaluate_gates([gate], predict=cancer.weak, data=cancer.holdout, label="target",
                            features=cancer.features, champion_predict=cancer.good)
    result = report.results[0]
    assert not result.passed
    d = result.details
    assert d["champion_value"] > 0.98 and d["candidate_value"] < 0.95
    assert result.value == pytest.approx(d["candidate_value"] - d["champion_value"])
    assert d["ci_low"] <= result.value <= d["ci_high"] < -0.01
    assert result.threshold == -0.01 and result.margin == pytest.approx(d["ci_high"] + 0.01)
    assert "shows a regression beyond the tolerance 0.01, by at least" in result.message
    assert report.champion_metrics == {"auc": pytest.approx(d["champion_value"])}
    with pytest.raises(Exception, match=r"Model cancer@2 failed gate no_regression\(auc,"
                                        r"tolerance=0\.01\): auc 0\.\d+ vs champion 0\.\d+: "
                                        r"difference -0\.\d+ \(95% CI -0\.\d+ to -0\.\d+\) shows"):
        report.raise_if_failed("Model cancer@2")


def test_an_identical_candidate_passes_with_a_zero_interval(cancer: Models) -> None:
    report = evaluate_gates([NoRegression("auc", n_bootstrap=100), NoRegression("logloss",
                                                                                n_bootstrap=100)],
                            predict=cancer.good, data=cancer.holdout, label="target",
                            features=cancer.features, champion_predict=cancer.good)
    assert report.passed
    for result in report.results:
        assert result.value == 0 and result.details["ci_low"] == result.details["ci_high"] == 0
        assert result.margin == 0
        assert result.message.endswith("difference 0 (95% CI 0 to 0); no evidence of a regression "
                                       "beyond the tolerance 0")


def test_a_better_candidate_passes(cancer: Models) -> None:
    report = evaluate_gates([NoRegression("accuracy", n_bootstrap=200)], predict=cancer.good,
                            data=cancer.holdout, label="target", features=cancer.features,
                            champion_predict=cancer.weak)
    assert report.passed and report.results[0].value > 0


def test_lower_is_better_metrics_compare_the_right_way(diabetes: Models) -> None:
    gates = [NoRegression("rmse", n_bootstrap=200), NoRegression("r2", n_bootstrap=200)]
    worse = evaluate_gates(gates, predict=diabetes.weak, data=diabetes.holdout, label="target",
                           champion_predict=diabetes.good)
    rmse, r2 = worse.results
    assert not rmse.passed and rmse.value > 0 and rmse.threshold == 0.0
    assert rmse.margin == pytest.approx(-rmse.details["ci_low"])
    assert not r2.passed and r2.value < 0
    better = evaluate_gates(gates, predict=diabetes.good, data=diabetes.holdout, label="target",
                            champion_predict=diabetes.weak)
    assert better.passed


def _accuracy_gate(wrong: int, tolerance: float) -> tuple[bool, float]:
    """A champion right on all 100 rows against a candidate wrong on the first ``wrong`` rows."""
    truth = np.tile([0, 1], 50)
    data = pd.DataFrame({"score": np.where(truth == 1, 0.9, 0.1), "y": truth})
    champion = data["score"].to_numpy()
    candidate = champion.copy()
    candidate[:wrong] = 1 - candidate[:wrong]
    gate = NoRegression("accuracy", tolerance=tolerance, n_bootstrap=400)
    result = evaluate_gates([gate], predict=lambda f: candidate, data=data, label="y",
                            champion_predict=lambda f: champion).results[0]
    assert result.value == pytest.approx(-wrong / 100)
    return result.passed, result.details["ci_high"]


def test_a_regression_needs_evidence_beyond_the_tolerance() -> None:
    # Two wrong rows: a resample misses both with probability 0.98^100 = 0.13, so the 95%
    # interval reaches 0: no evidence of a regression.
    assert _accuracy_gate(2, 0.0) == (True, 0.0)
    # Ten wrong rows: the interval lies below 0 (and above -0.1).
    passed, high = _accuracy_gate(10, 0.0)
    assert not passed and -0.1 < high < 0
    assert _accuracy_gate(10, 0.1)[0]


def test_no_champion_passes_with_a_note() -> None:
    data = pd.DataFrame({"score": [0.2, 0.8], "y": [0, 1]})
    result = evaluate_gates([NoRegression("auc")], predict=lambda f: f["score"], data=data,
                            label="y").results[0]
    assert result.passed and result.message == "no champion to compare with"
    assert result.value is None and result.margin is None


def test_the_bootstrap_is_reproducible_by_seed() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random(200) < 0.4).astype(float)
    a, b = rng.random(200), rng.random(200)
    metric = METRICS["auc"]
    one = paired_bootstrap(metric, y, a, b, n_bootstrap=50, seed=1)
    assert np.array_equal(one, paired_bootstrap(metric, y, a, b, n_bootstrap=50, seed=1))
    assert not np.array_equal(one, paired_bootstrap(metric, y, a, b, n_bootstrap=50, seed=2))


def _slow(name: str, y: np.ndarray, values: np.ndarray) -> float:
    """The metric by scikit-learn, the definition the vectorised bootstrap must match."""
    if name == "auc":
        return sk.roc_auc_score(y, values) if len(set(y)) == 2 else float("nan")
    return METRICS[name].fn(y, values)


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(sorted(METRICS)),
    rows=st.lists(st.tuples(st.integers(0, 1), st.integers(0, 10)), min_size=1, max_size=40),
    seed=st.integers(0, 2**16),
)
def test_each_vectorised_resample_equals_scikit_learn(name: str, rows: list[tuple[int, int]],
                                                      seed: int) -> None:
    metric = METRICS[name]
    y = np.array([r[0] for r in rows], dtype=float)
    values = np.array([r[1] / 10 for r in rows])  # coarse scores: plenty of ties
    if metric.task == "regression":
        y = y * 3 + values * 7
    elif metric.needs == "labels":
        values = (values >= 0.5).astype(float)
    draw = np.random.default_rng(seed).integers(0, len(rows), size=(8, len(rows)))
    if name == "r2":
        # r2 of a constant target is 0 by definition (scikit-learn's force_finite); its own
        # arithmetic can miss the exact zero variance and return -1e31 instead: not compared
        draw = draw[[np.ptp(y[d]) > 0 for d in draw]]
        if not len(draw):
            return
    fast = resampled(metric, y, values, draw)
    slow = np.array([_slow(name, y[d], values[d]) for d in draw])
    np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-12, equal_nan=True)
