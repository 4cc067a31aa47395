"""`mlwright webhook ...` and `mlwright gc` through the real entry point."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlwright.registry import register_model, set_alias
from mlwright.registry.webhooks import verify_signature
from mlwright.workspace import open_workspace

from .conftest import Receiver
from .flows import Constant

Cli = Callable[..., Any]


@pytest.fixture
def cli(run_cli: Cli, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """`mlwright -w ws ARGS...` in a fresh workspace."""
    monkeypatch.delenv("MLWRIGHT_WEBHOOK_SECRET", raising=False)
    assert run_cli("init", "ws").code == 0
    return lambda *args: run_cli("-w", "ws", *args)


def test_webhook_commands(cli: Cli, receiver: Receiver, tmp_path: Path) -> None:
    added = cli("webhook", "add", receiver.url, "--secret", "s3cret-value-1",
                "--event", "model.alias.moved", "--json").json()
    assert added["events"] == ["model.alias.moved"] and added["secret"] == "s3******-1"
    listed = cli("webhook", "list", "--json").json()
    assert [h["id"] for h in listed] == [added["id"]]
    assert "s3cret-value-1" not in cli("webhook", "list").out
    ws = open_workspace(tmp_path / "ws")
    register_model("delays", Constant(1.0), workspace=ws)
    set_alias("delays", "champion", 1, workspace=ws)
    ws.close()
    report = cli("webhook", "deliver", "--json").json()
    assert (report["queued"], report["delivered"], report["pending"]) == (1, 1, 0)
    [request] = receiver.requests
    assert verify_signature("s3cret-value-1", request.body,
                            request.headers["X-Mlwright-Signature"])
    text = cli("webhook", "deliver")
    assert text.code == 0
    assert "Queued 0, delivered 0, retrying 0, failed 0; 0 pending." in text.out
    [delivery] = cli("webhook", "deliveries", "--json").json()
    assert (delivery["status"], delivery["action"], delivery["object"]) == \
        ("delivered", "model.alias.moved", "delays")
    assert "delivered" in cli("webhook", "deliveries").out
    removed = cli("webhook", "remove", str(added["id"]))
    assert removed.code == 0 and f"Removed webhook {added['id']}" in removed.out
    assert cli("webhook", "list", "--json").json() == []


@pytest.mark.parametrize(("args", "message"), [
    (["webhook", "add", "ftp://example.com/h", "--secret", "s"],
     "error: Webhook URL 'ftp://example.com/h' is not an http:// or https:// URL with a host"),
    (["webhook", "add", "https://example.com/h", "--secret", "s", "--event", "model.deleted"],
     "error: Unknown webhook event 'model.deleted'; use one of model.created"),
    (["webhook", "remove", "7"], "error: No webhook with id 7; see `mlwright webhook list`."),
])
def test_webhook_mistakes_are_one_line_errors(cli: Cli, args: list[str], message: str) -> None:
    result = cli(*args)
    assert result.code == 2
    assert " ".join(result.err.split()).startswith(message)
    assert "Traceback" not in result.err


def test_gc_command(cli: Cli, tmp_path: Path) -> None:
    ws = open_workspace(tmp_path / "ws")
    kept = register_model("delays", Constant(1.0), workspace=ws)
    orphan = ws.artifacts.put_bytes(b"orphan bytes")
    ws.close()
    young = cli("gc", "--json").json()  # default grace: an hour
    assert (young["removable"], young["young"], young["removed"]) == (0, 1, 0)
    dry = cli("gc", "--dry-run", "--grace", "0")
    assert dry.code == 0 and orphan[:16] in dry.out
    assert "would remove 1 (12 B)" in dry.out
    assert cli("gc", "--dry-run", "--grace", "0", "--json").json()["garbage"][0]["digest"] == orphan
    done = cli("gc", "--grace", "0")
    assert done.code == 0
    assert f"{len(kept.files) + 1} objects: removed 1 (12 B); kept {len(kept.files)} " \
           f"({len(kept.files)} referenced, 0 younger than 0 s)." in " ".join(done.out.split())
    assert cli("gc", "--grace", "0", "--json").json()["removed"] == 0
    assert cli("gc", "--grace", "-5").code == 2
