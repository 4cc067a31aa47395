"""A workspace with served models and a token, for the serving tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlwright.registry import register_model, set_alias
from mlwright.security import create_token
from mlwright.workspace import WORKSPACE_ENV, Workspace, init_workspace

from .support import FEATURES, Exploding, fit_risk_model, risk_frame


@dataclass
class Served:
    workspace: Workspace
    token: str        # scopes predict and feedback
    read_token: str   # scope read only

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    """An empty workspace, no MLWRIGHT_* settings from the environment."""
    monkeypatch.delenv(WORKSPACE_ENV, raising=False)
    for name in ("MLWRIGHT_ONLINE_URL", "MLWRIGHT_ONLINE_PREFIX", "MLWRIGHT_METADATA_URL"):
        monkeypatch.delenv(name, raising=False)
    workspace = init_workspace(tmp_path / "ws")
    yield workspace
    workspace.close()


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    """``risk`` (LightGBM, v1 = champion, v2 registered) and ``exploding`` (python flavor)."""
    monkeypatch.delenv(WORKSPACE_ENV, raising=False)
    ws = init_workspace(tmp_path / "ws")
    frame = risk_frame()
    register_model("risk", fit_risk_model(7), training_data=frame, label="y", workspace=ws)
    set_alias("risk", "champion", 1, workspace=ws)
    register_model("risk", fit_risk_model(15, seed=1), training_data=frame, label="y",
                   workspace=ws)
    register_model("exploding", Exploding(), training_data=frame[[*FEATURES, "y"]], label="y",
                   workspace=ws)
    token = create_token("tests", scopes=["predict", "feedback"], workspace=ws).token
    read = create_token("reader", scopes=["read"], workspace=ws).token
    yield Served(ws, token, read)
    ws.close()
