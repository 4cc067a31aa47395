"""Judging a candidate against its gates, with the model's current champion as the baseline.

>>> report = evaluate_candidate("delays", booster_predict, gates, data=holdout,
...                             label="delayed", workspace=ws)           # doctest: +SKIP
>>> register_model("delays", booster, gates=report, ...)                # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mlwright.errors import NotFoundError
from mlwright.evaluation import Gate, GateReport, evaluate_gates
from mlwright.registry.versions import load_model
from mlwright.workspace import Workspace, as_workspace

WorkspaceLike = Workspace | str | os.PathLike[str] | None


def evaluate_candidate(name: str, predict: Callable[[Any], np.ndarray], gates: Sequence[Gate], *,
                       data: Any, label: str, features: list[str] | None = None,
                       champion_alias: str = "champion",
                       workspace: WorkspaceLike = None) -> GateReport:
    """Evaluate ``gates`` on ``data`` for a candidate of model ``name``; a ``NoRegression``
    gate compares it with the version ``champion_alias`` points at (none yet: it passes and
    says so)."""
    ws = as_workspace(workspace)
    try:
        champion = load_model(f"{name}@{champion_alias}", workspace=ws)
        champion_predict: Callable[[Any], np.ndarray] | None = champion.predict
    except NotFoundError:  # no such model or no champion yet
        champion_predict = None
    return evaluate_gates(list(gates), predict=predict, data=data, label=label,
                          features=features, champion_predict=champion_predict)
