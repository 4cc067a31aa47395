"""Train a model that predicts delayed departures from the NYC flights of 2013.

    mlwright pipeline run examples/flights/pipeline.py:flight_delays -p min_delay=15

Six steps: take the newest version of the `flights` dataset, check it against its contract,
build features, split by time (train on January to October, test on November and December),
train a LightGBM classifier, evaluate it. Every step is cached by its code, inputs and
parameters: a second run does nothing, a new `num_leaves` re-trains and re-evaluates only,
and a newly registered version of the data runs everything after the snapshot again.
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

from mlwright import DatasetVersionInfo, get_dataset_version, load_dataset, validate_dataset
from mlwright.pipelines import current_step, log_metric, pipeline, step

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


def _frame(table: pa.Table, test: bool) -> tuple[Any, np.ndarray]:
    rows = table.filter(pc.equal(table["is_test"], test)).to_pandas()
    for name in CATEGORICAL:
        rows[name] = rows[name].astype("category")
    return rows[NUMERIC + CATEGORICAL], rows["delayed"].to_numpy(dtype=np.int8)


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


@pipeline(schedule="0 3 * * *")
def flight_delays(dataset: str = "flights", min_delay: int = 15, test_from_month: int = 11,
                  num_leaves: int = 31, learning_rate: float = 0.1, rounds: int = 60) -> Any:
    """Data → contract → features → split → LightGBM → held-out metrics."""
    table = split(features(validated(snapshot(dataset)), min_delay=min_delay),
                  test_from_month=test_from_month)
    model = train(table, num_leaves=num_leaves, learning_rate=learning_rate, rounds=rounds)
    return evaluate(model, table)
