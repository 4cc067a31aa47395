"""Optimizing versions to ONNX: conversion, parity on the validation rows, registration.

Real models on scikit-learn's bundled data sets (no download); each new version is loaded
back through ``load_model`` (so ONNX Runtime) and compared with the version it came from.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from mlwright import register_dataset
from mlwright.errors import DataError, RegistryError
from mlwright.registry import (
    get_model_version,
    lineage,
    list_model_versions,
    load_model,
    optimize_model,
    register_model,
    used_by,
)
from mlwright.workspace import Workspace

TRAIN = 400  # rows fitted on; the rest are the validation rows


# -- data and models (fitted once per process: they are deterministic) ---------------------

def cancer() -> pd.DataFrame:
    x, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return x.assign(target=y)


def diabetes() -> pd.DataFrame:
    x, y = load_diabetes(return_X_y=True, as_frame=True)
    return x.assign(target=y)


def features(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["target"])


@cache
def scaled_logistic() -> Pipeline:
    train = cancer()[:TRAIN]
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(
        features(train), train["target"])


@cache
def forest() -> RandomForestRegressor:
    train = diabetes()[:TRAIN]
    return RandomForestRegressor(n_estimators=20, max_depth=6, random_state=0).fit(
        features(train), train["target"])


@cache
def lightgbm_classifier() -> lgb.LGBMClassifier:
    train = cancer()[:TRAIN]
    return lgb.LGBMClassifier(n_estimators=40, num_leaves=15, verbose=-1, random_state=0).fit(
        features(train), train["target"])


@cache
def xgboost_classifier() -> xgb.XGBClassifier:
    """Early-stopped, so that only the trees up to the best round may be converted."""
    data = cancer()
    fit, stop = data[:300], data[300:TRAIN]
    model = xgb.XGBClassifier(n_estimators=200, max_depth=3, learning_rate=0.3,
                              early_stopping_rounds=3, random_state=0)
    return model.fit(features(fit), fit["target"], eval_set=[(features(stop), stop["target"])],
                     verbose=False)


class Constant:
    """A python-flavor model: predicts 0.5 whatever the row."""

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.full(len(frame), 0.5)

    def save(self, folder: Path) -> None:
        (folder / "constant.txt").write_text("0.5")

    @classmethod
    def load(cls, folder: Path) -> Constant:
        return cls()


def same_predictions(ws: Workspace, parent: str, child: str, rows: pd.DataFrame,
                     tolerance: float) -> None:
    before = np.asarray(load_model(parent, workspace=ws).predict(rows), dtype=np.float64)
    after = np.asarray(load_model(child, workspace=ws).predict(rows), dtype=np.float64)
    assert after.shape == before.shape
    scale = np.maximum(np.abs(before), 1.0)
    assert float(np.max(np.abs(after - before) / scale)) <= tolerance


# -- the three frameworks ------------------------------------------------------------------

def test_sklearn_pipeline_becomes_an_onnx_version_of_the_same_model(workspace: Workspace) -> None:
    data = cancer()
    register_model("cancer", scaled_logistic(), training_data=data[:TRAIN], label="target",
                   metrics={"auc": 0.99}, params={"C": 1.0}, workspace=workspace)
    holdout = data[TRAIN:]
    result = optimize_model("cancer@1", holdout, label="target", alias="fast", workspace=workspace)

    assert (result.parent, result.ref, result.rows) == ("cancer@1", "cancer@2", len(holdout))
    assert result.converter.startswith("skl2onnx ")
    assert result.parity.passed and result.parity.probabilities
    assert 0 < result.parity.max_abs_diff <= 1e-4  # float32 arithmetic: close, not identical
    assert result.parity.label_agreement == 1.0
    assert result.original_predict_s > 0 and result.onnx_predict_s > 0

    info = get_model_version("cancer@fast", workspace=workspace)
    assert (info.ref, info.flavor, info.aliases) == ("cancer@2", "onnx", ["fast"])
    assert info.lineage["parent"] == "cancer@1"
    assert info.lineage["optimized"]["data"] == "a DataFrame"
    assert info.params["C"] == 1.0 and info.params["optimized_from"] == "cancer@1"
    assert info.params["onnx_parity_max_abs"] == result.parity.max_abs_diff
    assert info.params["onnx_parity_rows"] == len(holdout)
    assert info.metrics == {"auc": 0.99}
    assert info.signature is not None and info.signature.input_names == list(features(data).columns)
    assert used_by("model", "cancer@1", workspace=workspace) == ["cancer@2"]
    assert ("model:cancer@2", "model:cancer@1") in lineage("cancer@2", workspace=workspace).edges
    same_predictions(workspace, "cancer@1", "cancer@2", features(holdout), 1e-4)


def test_random_forest_regressor_from_a_parquet_file(workspace: Workspace, tmp_path: Path) -> None:
    data = diabetes()
    register_model("sugar", forest(), training_data=data[:TRAIN], label="target",
                   workspace=workspace)
    path = tmp_path / "holdout.parquet"
    data[TRAIN:].to_parquet(path)
    result = optimize_model("sugar", str(path), label="target", workspace=workspace)

    # Values near 150 in float32: the absolute difference is larger than the scaled one the
    # tolerance applies to.
    assert result.parity.max_rel_diff <= 1e-4
    assert result.parity.max_abs_diff > result.parity.max_rel_diff > 0
    assert not result.parity.probabilities and result.parity.label_agreement is None
    assert get_model_version("sugar@2", workspace=workspace).params["onnx_parity_data"] == str(path)
    same_predictions(workspace, "sugar@1", "sugar@2", features(data[TRAIN:]), 1e-4)


def test_lightgbm_classifier_takes_its_columns_in_training_order(workspace: Workspace) -> None:
    data = cancer()
    model = lightgbm_classifier()
    # The signature lists the columns in another order than the booster was fitted on (and
    # LightGBM stores "mean radius" as "mean_radius"): the graph must get the training order.
    reordered = data[[*reversed(features(data).columns), "target"]]
    register_model("boosted", model, training_data=reordered[:TRAIN], label="target",
                   workspace=workspace)
    register_dataset("cancer_holdout", reordered[TRAIN:], workspace=workspace)
    result = optimize_model("boosted@1", "cancer_holdout", label="target", workspace=workspace)

    assert result.converter.startswith("onnxmltools ")
    assert result.parity.max_abs_diff <= 1e-4 and result.parity.label_agreement == 1.0
    info = get_model_version("boosted@2", workspace=workspace)
    assert info.signature is not None
    assert info.signature.input_names == list(features(data).columns)  # the booster's order
    assert info.lineage["optimized"]["data"] == "cancer_holdout@1"
    same_predictions(workspace, "boosted@1", "boosted@2", reordered[TRAIN:], 1e-4)


def test_xgboost_classifier_keeps_only_the_trees_up_to_the_best_round(workspace: Workspace) -> None:
    model = xgboost_classifier()
    assert model.best_iteration + 1 < model.get_booster().num_boosted_rounds()
    data = cancer()
    register_model("xgb", model, training_data=data[:TRAIN], label="target", workspace=workspace)
    result = optimize_model("xgb@1", data[TRAIN:], label="target", workspace=workspace)

    assert result.parity.max_abs_diff <= 1e-4 and result.parity.label_agreement == 1.0
    assert get_model_version("xgb@2", workspace=workspace).flavor == "onnx"
    same_predictions(workspace, "xgb@1", "xgb@2", features(data[TRAIN:]), 1e-4)


# -- refusals: each registers nothing ------------------------------------------------------

def test_a_tolerance_the_float32_graph_cannot_meet_registers_nothing(workspace: Workspace) -> None:
    data = cancer()
    register_model("cancer", scaled_logistic(), training_data=data[:TRAIN], label="target",
                   workspace=workspace)
    with pytest.raises(RegistryError) as caught:
        optimize_model("cancer@1", data[TRAIN:], label="target", tolerance=0, alias="fast",
                       workspace=workspace)
    message = str(caught.value)
    assert "The ONNX conversion of cancer@1 differs from it by up to" in message
    assert "beyond the tolerance 0; nothing was registered" in message and "\n" not in message
    assert [v.version for v in list_model_versions("cancer", workspace=workspace)] == [1]
    assert get_model_version("cancer@1", workspace=workspace).aliases == []


def test_a_flavor_other_than_the_three_is_refused(workspace: Workspace) -> None:
    data = cancer()
    register_model("constant", Constant(), training_data=data[:TRAIN], label="target",
                   workspace=workspace)
    with pytest.raises(RegistryError, match=r"Model constant@1 is of the 'python' flavor; only "
                                            r"sklearn, lightgbm, xgboost versions can be converted"):
        optimize_model("constant@1", data[TRAIN:], label="target", workspace=workspace)
    assert len(list_model_versions("constant", workspace=workspace)) == 1


def test_validation_data_must_have_the_signature_columns(workspace: Workspace) -> None:
    data = cancer()
    register_model("cancer", scaled_logistic(), training_data=data[:TRAIN], label="target",
                   workspace=workspace)
    holdout = data[TRAIN:].drop(columns=["mean area"])
    with pytest.raises(RegistryError, match=r"The validation data a DataFrame has no column "
                                            r"'mean area' of the signature of cancer@1"):
        optimize_model("cancer@1", holdout, label="target", workspace=workspace)
    with pytest.raises(RegistryError, match=r"Label column 'churned' is not in the validation data"):
        optimize_model("cancer@1", data[TRAIN:], label="churned", workspace=workspace)
    with pytest.raises(RegistryError, match=r"has no rows"):
        optimize_model("cancer@1", data[:0], label="target", workspace=workspace)
    with pytest.raises(RegistryError, match=r"tolerance must be a finite number >= 0; got -1"):
        optimize_model("cancer@1", data[TRAIN:], label="target", tolerance=-1, workspace=workspace)
    with pytest.raises(DataError, match=r"No file or folder at .*missing\.parquet"):
        optimize_model("cancer@1", "missing.parquet", workspace=workspace)
    assert len(list_model_versions("cancer", workspace=workspace)) == 1


def test_a_version_that_failed_its_gates_cannot_lend_them_to_a_guarded_alias(
        workspace: Workspace) -> None:
    data = cancer()
    failed = {"passed": False, "results": [{"gate_id": "auc", "blocking": True, "passed": False,
                                            "message": "auc too low"}]}
    register_model("cancer", scaled_logistic(), training_data=data[:TRAIN], label="target",
                   gates=failed, workspace=workspace)
    with pytest.raises(RegistryError, match=r"cannot become 'champion'"):
        optimize_model("cancer@1", data[TRAIN:], label="target", alias="champion",
                       workspace=workspace)
    result = optimize_model("cancer@1", data[TRAIN:], label="target", workspace=workspace)
    assert result.version.gates_passed is False  # inherited: same predictions, same verdict


# -- the command line ------------------------------------------------------------------------

Cli = Callable[..., Any]


def test_cli_optimize(run_cli: Cli, tmp_path: Path) -> None:
    assert run_cli("init", "ws").code == 0
    data = cancer()
    register_model("cancer", scaled_logistic(), training_data=data[:TRAIN], label="target",
                   workspace=str(tmp_path / "ws"))
    data[TRAIN:].to_parquet(tmp_path / "holdout.parquet")

    done = run_cli("-w", "ws", "model", "optimize", "cancer@1", "--data", "holdout.parquet",
                   "--label", "target", "--alias", "fast", "--json")
    assert done.code == 0, done.err
    answer = done.json()
    assert (answer["parent"], answer["ref"], answer["flavor"], answer["aliases"]) == \
        ("cancer@1", "cancer@2", "onnx", ["fast"])
    assert answer["parity"]["passed"] and answer["parity"]["rows"] == len(data) - TRAIN
    assert answer["parity"]["max_abs_diff"] <= 1e-4

    people = run_cli("-w", "ws", "model", "optimize", "cancer@1", "--data", "holdout.parquet",
                     "--label", "target")
    assert people.code == 0, people.err
    text = " ".join(people.out.split())
    assert f"Parity on {len(data) - TRAIN} rows: max |Δ|" in text
    assert "Registered cancer@3 (onnx, skl2onnx" in text and "from cancer@1" in text

    refused = run_cli("-w", "ws", "model", "optimize", "cancer@1", "--data", "holdout.parquet",
                      "--label", "target", "--tolerance", "0")
    assert refused.code == 2
    assert "beyond the tolerance 0; nothing was registered" in " ".join(refused.err.split())
    missing = run_cli("-w", "ws", "model", "optimize", "cancer@1", "--data", "holdout@1")
    assert missing.code == 2 and "No dataset named 'holdout'" in missing.err
    assert [v.version for v in list_model_versions("cancer", workspace=str(tmp_path / "ws"))] \
        == [3, 2, 1]
