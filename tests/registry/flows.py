"""A pipeline that trains and registers a model (its steps are found by module name)."""

from __future__ import annotations

from typing import Any

from mlwright import load_dataset
from mlwright.pipelines import current_step, pipeline, step
from mlwright.registry import register_model


@step
def fit_and_register(dataset: str, leaves: int) -> dict[str, Any]:
    import lightgbm as lgb

    ws = current_step().workspace
    frame = load_dataset(dataset, workspace=ws).to_pandas()
    booster = lgb.train({"objective": "binary", "num_leaves": leaves, "verbose": -1},
                        lgb.Dataset(frame[["income", "debt"]], frame["approved"].astype(int)),
                        num_boost_round=10)
    version = register_model("approvals", booster, training_data=dataset, label="approved",
                             features=["income", "debt"], workspace=ws)
    return {"ref": version.ref}


@pipeline
def train_and_register(dataset: str, leaves: int = 7) -> Any:
    return fit_and_register(dataset, leaves)
