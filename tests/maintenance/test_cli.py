"""`mlwright webhook ...` and `mlwright gc` through the real entry point."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mlwright.registry import register_model, set_alias
from mlwright.registry.webhooks import verify_signature
from mlwright.workspace import open_workspace

from .conftest import Receiver
from .flows import Constant


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


Cli = Callable[..., Result]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> Cli:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLWRIGHT_WORKSPACE", raising=False)
    monkeypatch.delenv("MLWRIGHT_WEBHOOK_SECRET", raising=False)

    def run(*args: str) -> Result:
        monkeypatch.setattr(sys, "argv", ["mlwright", "-w", "ws", *args])
        code = 0
        try:
            from mlwright.cli.main import main

            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    monkeypatch.setattr(sys, "argv", ["mlwright", "init", "ws"])
    from mlwright.cli.main import main

    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code in (0, None)
    capsys.readouterr()
    return run


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
