"""Each gate on hand-built cases with known answers, and the verdict, messages and report."""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mlwright.errors import GateError
from mlwright.evaluation import (
    Directional,
    Fairness,
    GateReport,
    Invariance,
    MetricThreshold,
    MinimumFunctionality,
    NoRegression,
    SliceMetric,
    evaluate_gates,
)

from .models import Models, read_score

# Four rows whose labels at 0.5 are [0, 1, 1, 1] against the truth [0, 0, 1, 1]: accuracy 0.75.
FOUR = pd.DataFrame({"score": [0.2, 0.6, 0.7, 0.9], "y": [0, 0, 1, 1]})


def run(gates: list[Any], data: Any = FOUR, **kwargs: Any) -> GateReport:
    kwargs.setdefault("predict", read_score)
    kwargs.setdefault("label", "y")
    return evaluate_gates(gates, data=data, **kwargs)


def test_a_threshold_gate_says_by_how_much_it_failed() -> None:
    report = run([MetricThreshold("accuracy", min=0.8)])
    result = report.results[0]
    assert not result.passed and not report.passed
    assert result.message == "accuracy 0.75 is 0.05 below 0.8"
    assert result.value == 0.75 and result.threshold == 0.8
    assert result.margin == pytest.approx(-0.05)
    with pytest.raises(GateError) as caught:
        report.raise_if_failed("Model delays@3")
    assert str(caught.value) == ("Model delays@3 failed gate metric_threshold(accuracy>=0.8): "
                                 "accuracy 0.75 is 0.05 below 0.8.")


def test_a_threshold_gate_that_passes_says_by_how_much_and_does_not_raise() -> None:
    report = run([MetricThreshold("accuracy", min=0.7), MetricThreshold("logloss", max=1.0),
                  MetricThreshold("auc", min=0.5, max=1.0)])
    assert report.passed and not report.failed_blocking
    first, second, third = report.results
    assert first.message == "accuracy 0.75 is at least 0.7 (by 0.05)"
    assert first.margin == pytest.approx(0.05)
    assert second.message == "logloss 0.4004 is at most 1 (by 0.5996)"
    assert third.message == "auc 1 is within [0.5, 1]" and third.margin == 0
    report.raise_if_failed("Model delays@3")
    assert report.metrics == {"accuracy": 0.75, "logloss": pytest.approx(0.4004, abs=1e-4),
                              "auc": 1.0}


def test_an_upper_bound_fails_as_above() -> None:
    result = run([MetricThreshold("brier", max=0.05)]).results[0]
    # brier = mean((0.2)^2, 0.6^2, 0.3^2, 0.1^2) = (0.04 + 0.36 + 0.09 + 0.01) / 4 = 0.125
    assert result.message == "brier 0.125 is 0.075 above 0.05"
    assert result.margin == pytest.approx(-0.075)


def test_a_non_blocking_failure_is_reported_but_does_not_fail_the_version() -> None:
    report = run([MetricThreshold("accuracy", min=0.8, blocking=False),
                  MetricThreshold("auc", min=0.9)])
    assert report.passed and [r.gate_id for r in report.warnings] == [
        "metric_threshold(accuracy>=0.8)"]
    report.raise_if_failed("Model m@1")
    assert report.summary() == ("passed: 1 of 2 gates passed on 4 rows; non-blocking failures: "
                                "metric_threshold(accuracy>=0.8)")


def test_several_blocking_failures_are_all_named() -> None:
    report = run([MetricThreshold("accuracy", min=0.8), MetricThreshold("precision", min=0.9),
                  MetricThreshold("recall", min=0.5)])
    assert [r.gate_id for r in report.failed_blocking] == [
        "metric_threshold(accuracy>=0.8)", "metric_threshold(precision>=0.9)"]
    assert report.summary() == ("FAILED: 1 of 3 gates passed on 4 rows; blocking failures: "
                                "metric_threshold(accuracy>=0.8), metric_threshold(precision>=0.9)")
    with pytest.raises(GateError, match=re.escape(
            "Model m@2 failed 2 blocking gates: metric_threshold(accuracy>=0.8): accuracy 0.75 is "
            "0.05 below 0.8; metric_threshold(precision>=0.9): precision 0.6667 is 0.2333 below 0.9.")):
        report.raise_if_failed("Model m@2")


def test_the_decision_threshold_moves_the_labels() -> None:
    report = run([MetricThreshold("accuracy", min=1.0)], threshold=0.65)
    assert report.passed and report.threshold == 0.65


def test_an_undefined_metric_fails_the_gate_and_says_so() -> None:
    data = pd.DataFrame({"score": [0.2, 0.9], "y": [1, 1]})
    result = run([MetricThreshold("auc", min=0.6)], data=data).results[0]
    assert not result.passed and result.message == "auc is undefined on these rows"
    assert result.margin is None


def slices() -> pd.DataFrame:
    # a: 40 rows all right; b: 40 rows half right; c: 5 rows all wrong (too few to judge).
    score = [0.9] * 20 + [0.1] * 20 + [0.9] * 40 + [0.9] * 5
    truth = [1] * 20 + [0] * 20 + [1] * 20 + [0] * 20 + [0] * 5
    region = ["a"] * 40 + ["b"] * 40 + ["c"] * 5
    return pd.DataFrame({"score": score, "y": truth, "region": region})


def test_a_slice_gate_names_the_failing_slices_and_skips_small_ones() -> None:
    result = run([SliceMetric("accuracy", by="region", min=0.7)], data=slices(),
                 features=["score"]).results[0]
    assert not result.passed
    assert result.message == ("1 of 2 judged slices of region fail: region=b: accuracy 0.5 is 0.2 "
                              "below 0.7 (40 rows) (1 of 3 slices not judged: fewer than 30 rows "
                              "or accuracy undefined)")
    assert result.value == 0.5 and result.margin == pytest.approx(-0.2)
    by_slice = {s["slice"]: s for s in result.details["slices"]}
    assert by_slice["c"] == {"slice": "c", "rows": 5, "value": 0.0, "judged": False}
    assert by_slice["a"]["judged"] and by_slice["a"]["passed"] and by_slice["a"]["value"] == 1.0


def test_a_slice_under_min_rows_cannot_fail_the_gate() -> None:
    result = run([SliceMetric("accuracy", by="region", min=0.4)], data=slices(),
                 features=["score"]).results[0]
    assert result.passed  # slice c has accuracy 0 but only 5 rows
    assert result.message.startswith("accuracy holds on all 2 judged slices of region; worst "
                                     "region=b 0.5")
    lowered = run([SliceMetric("accuracy", by="region", min=0.4, min_rows=5)], data=slices(),
                  features=["score"]).results[0]
    assert not lowered.passed and "region=c: accuracy 0 is 0.4 below 0.4 (5 rows)" in lowered.message


def test_a_slice_gate_with_nothing_to_judge_passes_and_says_so() -> None:
    result = run([SliceMetric("accuracy", by="region", min=0.9, min_rows=100)], data=slices(),
                 features=["score"]).results[0]
    assert result.passed and result.message.startswith(
        "no slice of region has 100 rows with accuracy defined; nothing judged")


def test_invariance_on_hand_built_perturbations() -> None:
    def nudge(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(score=frame["score"] + [0.0, 0.05, -0.3, 0.0])

    failed = run([Invariance("nudge", perturb=nudge, max_change=0.1)]).results[0]
    assert not failed.passed and failed.value == pytest.approx(0.3)
    assert failed.message == ("predictions changed by up to 0.3 under the perturbation, 0.2 more "
                              "than the allowed 0.1 (1 of 4 rows beyond it)")
    assert failed.details["worst_rows"] == [2]
    passed = run([Invariance("nudge", perturb=nudge, max_change=0.3)]).results[0]
    assert passed.passed and passed.margin == pytest.approx(0.0, abs=1e-12)


def test_directional_on_hand_built_perturbations() -> None:
    def raise_most(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(score=frame["score"] + [0.01, 0.01, 0.01, 0.0])

    strict = run([Directional("up", perturb=raise_most, direction="increase")]).results[0]
    assert not strict.passed and strict.value == 0.75
    assert strict.message == ("predictions increased on 3 of 4 rows (75%), short of the required "
                              "100% by 25 points")
    assert strict.details["worst_rows"] == [3]
    lenient = run([Directional("up", perturb=raise_most, min_fraction=0.75)]).results[0]
    assert lenient.passed and lenient.message == "predictions increased on 3 of 4 rows (75%); required 75%"
    down = run([Directional("down", perturb=raise_most, direction="decrease")]).results[0]
    assert not down.passed and down.value == 0.0


def test_minimum_functionality_for_a_classifier() -> None:
    cases = pd.DataFrame({"score": [0.9, 0.1, 0.4]})
    result = run([MinimumFunctionality("basics", cases=cases, expected=[1, 0, 1])]).results[0]
    assert not result.passed
    assert result.message == "1 of 3 cases wrong: case 2 expected 1, got 0 (score 0.4)"
    assert result.value == pytest.approx(2 / 3) and result.margin == pytest.approx(-1 / 3)
    assert result.details["failures"] == [{"case": 2, "expected": 1, "predicted": 0.0, "score": 0.4}]
    right = run([MinimumFunctionality("basics", cases=cases, expected=[True, False, False])])
    assert right.passed and right.results[0].message == "all 3 cases right"


def test_minimum_functionality_for_a_regression_uses_the_tolerance() -> None:
    data = pd.DataFrame({"score": [1.0, 2.0, 3.5], "y": [1.0, 2.5, 3.0]})
    cases = pd.DataFrame({"score": [10.0, 20.0]})
    tight = run([MinimumFunctionality("scale", cases=cases, expected=[10.2, 20.0])], data=data)
    assert tight.task == "regression" and not tight.passed
    assert tight.results[0].message == "1 of 2 cases wrong within 0: case 0 expected 10.2, got 10"
    loose = run([MinimumFunctionality("scale", cases=cases, expected=[10.2, 20.0], tolerance=0.5)],
                data=data)
    assert loose.passed


def test_minimum_functionality_expected_answers_follow_the_label_classes() -> None:
    data = pd.DataFrame({"score": [0.2, 0.8], "y": ["no", "yes"]})
    cases = pd.DataFrame({"score": [0.9, 0.1]})
    report = run([MinimumFunctionality("words", cases=cases, expected=["yes", "no"])], data=data,
                 positive="yes")
    assert report.passed and report.task == "binary"
    with pytest.raises(GateError, match=r"expected answer 'maybe' is neither class of the label "
                                        r"'y' \('no' or 'yes'\)"):
        run([MinimumFunctionality("words", cases=cases, expected=["yes", "maybe"])], data=data,
            positive="yes")


def test_fairness_on_hand_built_groups() -> None:
    # Group a: 4 rows, 3 predicted positive (0.75); group b: 4 rows, 1 predicted positive (0.25).
    data = pd.DataFrame({
        "score": [0.9, 0.9, 0.9, 0.1, 0.9, 0.1, 0.1, 0.1],
        "y": [1, 1, 0, 0, 1, 1, 0, 0],
        "sex": ["a", "a", "a", "a", "b", "b", "b", "b"],
    })
    report = run([Fairness("demographic_parity_difference", attribute="sex", max=0.4),
                  Fairness("equalized_odds_difference", attribute="sex", max=0.6)],
                 data=data, features=["score"])
    dp, eo = report.results
    assert dp.value == 0.5 and not dp.passed and dp.margin == pytest.approx(-0.1)
    assert dp.message == ("demographic parity difference across sex is 0.5, 0.1 above 0.4 "
                          "(positive rate 0.75 for 'a' vs 0.25 for 'b')")
    # TPR: a 2/2, b 1/2 -> gap 0.5; FPR: a 1/2, b 0/2 -> gap 0.5.
    assert eo.value == 0.5 and eo.passed
    assert eo.message == "equalized odds difference across sex is 0.5, at most 0.6"
    groups = {g["group"]: g for g in dp.details["groups"]}
    assert groups["a"]["selection_rate"] == 0.75 and groups["b"]["true_positive_rate"] == 0.5


def test_real_classifier_gates(cancer: Models) -> None:
    gates = [MetricThreshold("auc", min=0.95), MetricThreshold("accuracy", min=0.9),
             SliceMetric("recall", by="size", min=0.5),
             Fairness("demographic_parity_difference", attribute="size", max=0.1, blocking=False)]
    report = evaluate_gates(gates, predict=cancer.good, data=cancer.holdout, label="target",
                            features=cancer.features)
    assert report.task == "binary" and report.num_rows == len(cancer.holdout)
    assert report.passed, report.summary()
    assert report.metrics["auc"] > 0.98
    # Tumour size drives the diagnosis, so the positive rate differs a lot between sizes.
    assert not report.result("fairness(demographic_parity_difference[size]<=0.1)").passed
    weak = evaluate_gates(gates[:2], predict=cancer.weak, data=cancer.holdout, label="target",
                          features=cancer.features)
    assert not weak.passed
    assert re.fullmatch(r"auc 0\.\d+ is 0\.\d+ below 0\.95", weak.results[0].message)


def test_real_regression_gates(diabetes: Models) -> None:
    gates = [MetricThreshold("r2", min=0.3), MetricThreshold("rmse", max=70),
             MetricThreshold("mae", max=50)]
    report = evaluate_gates(gates, predict=diabetes.good, data=diabetes.holdout, label="target")
    assert report.task == "regression" and report.passed, report.summary()
    weak = evaluate_gates(gates, predict=diabetes.weak, data=diabetes.holdout, label="target")
    assert [r.gate_id for r in weak.failed_blocking] == ["metric_threshold(r2>=0.3)",
                                                         "metric_threshold(rmse<=70)",
                                                         "metric_threshold(mae<=50)"]


def test_a_model_that_ignores_the_perturbed_column_is_invariant(cancer: Models) -> None:
    def rename(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(name="somebody else")

    def double(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(**{cancer.blind_to: frame[cancer.blind_to] * 2})

    names = Invariance("names", perturb=rename)
    area = Invariance("area", perturb=double, max_change=0.01)
    blind = evaluate_gates([names, area], predict=cancer.blind, data=cancer.holdout, label="target",
                           features=[*cancer.features, "name"])
    assert blind.passed and blind.result("invariance(area)").value == 0.0
    seeing = evaluate_gates([names, area], predict=cancer.good, data=cancer.holdout, label="target",
                            features=[*cancer.features, "name"])
    assert seeing.result("invariance(names)").passed
    failed = seeing.result("invariance(area)")
    assert not failed.passed and failed.value > 0.1
    assert failed.details["rows_beyond"] > 0


def test_a_directional_expectation_on_a_real_regression(diabetes: Models) -> None:
    def heavier(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(bmi=frame["bmi"] + 0.02)

    up = Directional("bmi up", perturb=heavier, direction="increase")
    down = Directional("bmi down", perturb=heavier, direction="decrease")
    report = evaluate_gates([up, down], predict=diabetes.good, data=diabetes.holdout, label="target")
    assert report.result("directional(bmi up)").passed
    failed = report.result("directional(bmi down)")
    assert not failed.passed and failed.value == 0.0
    assert failed.message.endswith("short of the required 100% by 100 points")


def test_every_report_is_json(cancer: Models) -> None:
    def same(frame: pd.DataFrame) -> pd.DataFrame:
        return frame

    cases = cancer.holdout[cancer.features].head(3)
    gates = [MetricThreshold("auc", min=0.9), NoRegression("auc", n_bootstrap=50),
             SliceMetric("auc", by="size", min=0.9, min_rows=1),
             Fairness("equalized_odds_difference", attribute="size"),
             Invariance("same", perturb=same), Directional("same", perturb=same),
             MinimumFunctionality("first", cases=cases, expected=[0, 1, 1])]
    report = evaluate_gates(gates, predict=cancer.good, data=cancer.holdout, label="target",
                            features=cancer.features, champion_predict=cancer.weak)
    encoded = json.dumps(report.to_dict(), allow_nan=False)
    decoded = json.loads(encoded)
    assert decoded["passed"] is report.passed and len(decoded["results"]) == 7
    assert decoded["champion_metrics"]["auc"] == pytest.approx(report.champion_metrics["auc"])
    assert [r["gate_id"] for r in decoded["results"]] == [g.gate_id for g in gates]


def test_undefined_values_are_null_in_json() -> None:
    data = pd.DataFrame({"score": [0.2, 0.9, 0.7], "y": [1, 1, 0], "k": ["a", "a", "b"]})
    report = run([SliceMetric("auc", by="k", min=0.5, min_rows=1)], data=data, features=["score"])
    encoded = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert [s["value"] for s in encoded["results"][0]["details"]["slices"]] == [None, None]


def test_an_arrow_table_is_evaluation_data_too() -> None:
    report = run([MetricThreshold("accuracy", min=0.75)], data=pa.Table.from_pandas(FOUR))
    assert report.passed and report.num_rows == 4


def test_the_model_sees_only_its_features_and_predicts_once() -> None:
    seen: list[list[str]] = []

    def spy(frame: pd.DataFrame) -> np.ndarray:
        seen.append(list(frame.columns))
        return read_score(frame)

    data = FOUR.assign(region=["a", "a", "b", "b"])
    run([MetricThreshold("auc", min=0.5), MetricThreshold("accuracy", min=0.5),
         SliceMetric("accuracy", by="region", min=0.1, min_rows=1)],
        data=data, predict=spy, features=["score"])
    assert seen == [["score"]]


def test_predict_proba_output_and_string_labels_with_a_positive_class() -> None:
    data = pd.DataFrame({"score": [0.2, 0.6, 0.7, 0.9], "y": ["ok", "ok", "bad", "bad"]})

    def proba(frame: pd.DataFrame) -> np.ndarray:
        p = read_score(frame)
        return np.column_stack([1 - p, p])

    report = run([MetricThreshold("accuracy", min=0.75)], data=data, predict=proba, positive="bad")
    assert report.passed and report.metrics == {"accuracy": 0.75}


def test_no_gates_pass() -> None:
    report = run([])
    assert report.passed and report.summary() == "passed: 0 of 0 gates passed on 4 rows"


def test_null_is_a_slice_and_a_group_of_its_own() -> None:
    data = pd.DataFrame({"score": [0.9, 0.1, 0.9, 0.9], "y": [1, 0, 0, 0],
                         "region": ["a", "a", None, None]})
    report = run([SliceMetric("accuracy", by="region", min=0.6, min_rows=2),
                  Fairness("demographic_parity_difference", attribute="region", max=0.4)],
                 data=data, features=["score"])
    slice_result, fairness = report.results
    assert slice_result.message == ("1 of 2 judged slices of region fail: region=None: accuracy 0 "
                                    "is 0.6 below 0.6 (2 rows)")
    assert fairness.value == 0.5 and {g["group"] for g in fairness.details["groups"]} == {"a", None}
    assert json.loads(json.dumps(report.to_dict(), allow_nan=False))["results"][0]["details"][
        "slices"][1]["slice"] is None


def test_a_polars_frame_is_evaluation_data_too() -> None:
    pl = pytest.importorskip("polars")
    report = run([MetricThreshold("accuracy", min=0.75)], data=pl.from_pandas(FOUR))
    assert report.passed


def test_a_report_finds_a_result_by_gate_id() -> None:
    report = run([MetricThreshold("accuracy", min=0.7)])
    assert report.result("metric_threshold(accuracy>=0.7)").passed
    with pytest.raises(KeyError, match=r"no gate 'auc' in this report; gates: "
                                        r"metric_threshold\(accuracy>=0.7\)"):
        report.result("auc")
    encoded = report.to_dict()
    assert set(encoded) == {"passed", "task", "num_rows", "threshold", "duration_s", "metrics",
                            "champion_metrics", "failed_blocking", "results"}
    assert encoded["results"][0] == {
        "gate_id": "metric_threshold(accuracy>=0.7)", "kind": "metric_threshold", "blocking": True,
        "passed": True, "value": 0.75, "threshold": 0.7, "margin": pytest.approx(0.05),
        "message": "accuracy 0.75 is at least 0.7 (by 0.05)", "details": {"min": 0.7, "max": None}}
