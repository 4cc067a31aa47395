"""Models and data for the serving tests: real LightGBM and python-flavor models."""

from __future__ import annotations

import socket
import time
from functools import cache
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

FEATURES = ["a", "b", "c", "n"]


@cache
def risk_frame(rows: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(size=rows), "b": rng.normal(size=rows),
                          "c": rng.uniform(0, 10, size=rows),
                          "n": rng.integers(0, 5, size=rows).astype("int64")})
    frame["y"] = ((frame.a + 0.5 * frame.b + 0.1 * frame.c + rng.normal(0, 0.5, rows)) > 0.5) \
        .astype("int64")
    return frame


def fit_risk_model(num_leaves: int = 7, seed: int = 0) -> lgb.LGBMClassifier:
    frame = risk_frame()
    model = lgb.LGBMClassifier(n_estimators=20, num_leaves=num_leaves, random_state=seed,
                               verbose=-1)
    return model.fit(frame[FEATURES], frame["y"])


def free_port() -> int:
    """A TCP port nothing listens on now (for a server a test starts)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def records(rows: int = 3, start: int = 0) -> list[dict[str, float | int]]:
    frame = risk_frame().iloc[start:start + rows]
    return [{"a": float(r.a), "b": float(r.b), "c": float(r.c), "n": int(r.n)}
            for r in frame.itertuples()]


class Exploding:
    """A python-flavor model that raises inside predict when a row has a == 13, and sleeps
    ``delay`` seconds per call when a row has a == 7 (for drain tests)."""

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        if (frame["a"] == 13).any():
            raise RuntimeError("boom: the model failed on a == 13")
        if (frame["a"] == 7).any():
            time.sleep(1.5)
        return frame["a"].to_numpy(dtype=float) * 2

    def save(self, folder: Path) -> None:
        (folder / "exploding.txt").write_text("x", encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> Exploding:
        return cls()
