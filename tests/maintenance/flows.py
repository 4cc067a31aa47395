"""What the maintenance tests register: a python-flavor model and a two-step pipeline.

They live in a module because the registry loads a model class, and a worker finds a step,
by ``module:qualname``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from mlwright.pipelines import pipeline, step


class Constant:
    """A python-flavor model that predicts one number."""

    def __init__(self, value: float) -> None:
        self.value = value

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.full(len(frame), self.value)

    def save(self, folder: Path) -> None:
        (folder / "value.txt").write_text(repr(self.value), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> Constant:
        return cls(float((folder / "value.txt").read_text(encoding="utf-8")))


@step
def numbers(n: int) -> pa.Table:
    return pa.table({"x": list(range(n))})


@step
def summary(table: pa.Table) -> dict[str, Any]:
    return {"rows": table.num_rows, "sum": sum(table["x"].to_pylist())}


@pipeline
def two_steps(n: int = 4) -> Any:
    return summary(numbers(n))
