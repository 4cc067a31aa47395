"""Train a model that predicts delayed departures from the NYC flights of 2013.

    mlwright pipeline run examples/flights/pipeline.py:flight_delays -p min_delay=15

Seven steps: take the newest version of the `flights` dataset, check it against its
contract, build features, split by time (train on January to October, test on November and
December), train a LightGBM classifier, evaluate it, then judge it against its gates
(threshold, no regression against the champion, every airport, later departures riskier),
register it with its lineage and the gates' report, and make it the champion if it passed.
Every step is cached by its code, inputs and parameters: a second run does nothing, a new
`num_leaves` re-trains, re-evaluates and registers a new version only, and a newly
registered version of the data runs everything after the snapshot again.
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

from mlwright import DatasetVersionInfo, get_dataset_version, load_dataset, validate_dataset
from mlwright.evaluation import Directional, MetricThreshold, NoRegression, SliceMetric
from mlwright.pipelines import current_step, log_metric, pipeline, step
from mlwright.registry import evaluate_candidate, register_model, set_alias

CATEGORICAL = ["carrier", "origin", "dest"]
NUMERIC = ["month", "day_of_week", "sched_hour", "distance", "day"]


@step(cache=False)  # "the newest version" changes when data is registered: look every time
def snapshot(dataset: str) -> DatasetVersionInfo:
    """The dataset version this run uses (a new version re-runs everything downstream)."""
    return get_dataset_version(dataset, workspace=current_step().workspace)


@step
def validated(version: DatasetVersionInfo) -> DatasetVersionInfo:
    """Stop here if the data breaks an error rule of its contract."""
    report = validate_dataset(version.ref, workspace=current_step().workspace)
    log_metric("contract_warnings", len(report.warnings))
    if not report.passed:
        failed = ", ".join(r.rule_id for r in report.errors)
        raise ValueError(f"{version.ref} breaks its contract: {failed}")
    return version


@step
def features(version: DatasetVersionInfo, min_delay: int) -> pa.Table:
    """One row per flown flight: schedule features and the label `delayed`."""
    flights = load_dataset(version.ref, workspace=current_step().workspace)
    flown = flights.filter(pc.is_valid(flights["dep_delay"]))
    when = pc.cast(flown["time_hour"], pa.timestamp("us", tz="UTC"))
    table = pa.table({
        "month": flown["month"], "day": flown["day"],
        "day_of_week": pc.day_of_week(when),
        "sched_hour": pc.divide(flown["sched_dep_time"], 100),
        "distance": flown["distance"],
        **{name: flown[name] for name in CATEGORICAL},
        "delayed": pc.greater_equal(flown["dep_delay"], min_delay),
    })
    log_metric("rows", table.num_rows)
    log_metric("positive_rate", pc.mean(pc.cast(table["delayed"], pa.float64())).as_py())
    return table


@step
def split(table: pa.Table, test_from_month: int) -> pa.Table:
    """Mark the test rows: everything from `test_from_month` on (no peeking at the future)."""
    return table.append_column("is_test", pc.greater_equal(table["month"], test_from_month))


def _categorical(frame: Any) -> Any:
    frame = frame.copy()
    for name in CATEGORICAL:
        frame[name] = frame[name].astype("category")
    return frame[NUMERIC + CATEGORICAL]


def _frame(table: pa.Table, test: bool) -> tuple[Any, np.ndarray]:
    rows = table.filter(pc.equal(table["is_test"], test)).to_pandas()
    return _categorical(rows), rows["delayed"].to_numpy(dtype=np.int8)


@step
def train(table: pa.Table, num_leaves: int, learning_rate: float, rounds: int) -> lgb.Booster:
    """A LightGBM classifier; its training log loss is recorded per round."""
    x, y = _frame(table, test=False)
    history: dict[str, Any] = {}
    model = lgb.train({"objective": "binary", "num_leaves": num_leaves,
                       "learning_rate": learning_rate, "verbose": -1, "seed": 7,
                       "num_threads": 2},
                      lgb.Dataset(x, y), num_boost_round=rounds,
                      valid_sets=[lgb.Dataset(x, y)], valid_names=["train"],
                      callbacks=[lgb.record_evaluation(history)])
    for round_index, loss in enumerate(history["train"]["binary_logloss"]):
        log_metric("train_logloss", loss, step=round_index)
    return model


@step
def evaluate(model: lgb.Booster, table: pa.Table) -> dict[str, float]:
    """Held-out metrics on November and December."""
    x, y = _frame(table, test=True)
    scores = model.predict(x)
    metrics = {"test_auc": float(roc_auc_score(y, scores)),
               "test_logloss": float(log_loss(y, scores)),
               "test_accuracy": float(accuracy_score(y, scores >= 0.5)),
               "test_rows": float(len(y))}
    for name, value in metrics.items():
        log_metric(name, value)
    return metrics


def _later(frame: Any) -> Any:
    """The same flights, scheduled three hours later in the day (capped at 23:00)."""
    moved = frame.copy()
    moved["sched_hour"] = (moved["sched_hour"] + 3).clip(upper=23)
    return moved


GATES = [
    MetricThreshold("auc", min=0.6),                       # better than a coin, clearly
    NoRegression("auc", tolerance=0.005, n_bootstrap=200),  # never worse than the champion
    SliceMetric("auc", by="origin", min=0.55, min_rows=1000),  # every airport, not the average
    Directional("later departures look riskier", _later, direction="increase",
                min_fraction=0.6),
]


@step
def register(model: lgb.Booster, table: pa.Table, version: DatasetVersionInfo,
             metrics: dict[str, float]) -> dict[str, Any]:
    """Judge the model on the held-out months, register it with its lineage and the gates'
    report, and make it the champion if every blocking gate passed."""
    ws = current_step().workspace
    holdout = table.filter(pc.equal(table["is_test"], True)).drop_columns(["is_test"])
    report = evaluate_candidate(
        "flight_delays", lambda frame: model.predict(_categorical(frame)), GATES,
        data=holdout, label="delayed", features=NUMERIC + CATEGORICAL, workspace=ws)
    log_metric("gates_passed", float(report.passed))
    registered = register_model(
        "flight_delays", model, training_data=holdout, datasets=[version], label="delayed",
        features=NUMERIC + CATEGORICAL, metrics=metrics, gates=report,
        description="Will a departure from NYC be 15+ minutes late? (schedule features only)",
        workspace=ws)
    if report.passed:
        set_alias("flight_delays", "champion", registered.version, workspace=ws)
    return {"model": registered.ref, "gates": report.summary(), "champion": report.passed}


@pipeline(schedule="0 3 * * *")
def flight_delays(dataset: str = "flights", min_delay: int = 15, test_from_month: int = 11,
                  num_leaves: int = 31, learning_rate: float = 0.1, rounds: int = 60) -> Any:
    """Data → contract → features → split → LightGBM → held-out metrics → gates → registry."""
    version = validated(snapshot(dataset))
    table = split(features(version, min_delay=min_delay), test_from_month=test_from_month)
    model = train(table, num_leaves=num_leaves, learning_rate=learning_rate, rounds=rounds)
    return register(model, table, version, evaluate(model, table))
