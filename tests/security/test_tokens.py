"""API tokens on SQLite and PostgreSQL: shown once, stored as a hash, verified in constant
time, revoked and expired tokens refused with one message that reveals nothing."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from mlwright.errors import AuthenticationError, SecurityError
from mlwright.security import (
    TokenVerifier,
    create_token,
    list_tokens,
    revoke_token,
    verify_token,
)
from mlwright.store import ApiToken, list_events
from mlwright.workspace import WORKSPACE_ENV, Workspace, init_workspace


@pytest.fixture
def ws(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    monkeypatch.delenv(WORKSPACE_ENV, raising=False)
    workspace = init_workspace(tmp_path / "ws", metadata_url=database_url)
    yield workspace
    workspace.close()


def _actions(ws: Workspace, ref: str) -> list[str]:
    with ws.db.session() as session:
        return [e.action for e in reversed(list_events(session, object_ref=ref))]


def test_a_token_is_shown_once_stored_as_a_hash_and_verifies(ws: Workspace) -> None:
    created = create_token("scorer", workspace=ws, scopes=["predict", "feedback"])
    assert created.token.startswith("mlw_") and len(created.token) > 50
    info = verify_token(created.token, workspace=ws)
    assert (info.name, info.scopes, info.created_by) == ("scorer", ("predict", "feedback"),
                                                          ws.actor)
    assert verify_token(created.token, workspace=ws, scope="feedback").id == info.id
    secret = created.token.rsplit("_", 1)[1]
    with ws.db.session() as session:  # the secret is nowhere in the database
        rows = session.execute(text("SELECT * FROM api_tokens")).all()
    assert rows and all(secret not in str(value) for row in rows for value in row)
    assert [t.name for t in list_tokens(workspace=ws)] == ["scorer"]
    assert _actions(ws, "scorer") == ["token.created"]


@pytest.mark.parametrize("presented", [
    None, "", "Bearer x", "mlw_", "mlw_short_secret", "mlw_000000000000_wrong",
    "xyz_000000000000_secret",
])
def test_malformed_or_unknown_tokens_are_refused_alike(ws: Workspace, presented: Any) -> None:
    create_token("scorer", workspace=ws)
    with pytest.raises(AuthenticationError) as exc:
        verify_token(presented, workspace=ws)
    assert str(exc.value) == "Invalid or missing API token."


def test_a_wrong_secret_for_a_real_id_is_refused_alike(ws: Workspace) -> None:
    token = create_token("scorer", workspace=ws).token
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(AuthenticationError, match=r"^Invalid or missing API token\.$"):
        verify_token(forged, workspace=ws)


def test_scopes_are_enforced_and_admin_has_them_all(ws: Workspace) -> None:
    reader = create_token("reader", workspace=ws, scopes=["read"]).token
    admin = create_token("root", workspace=ws, scopes=["admin"]).token
    with pytest.raises(AuthenticationError):
        verify_token(reader, workspace=ws, scope="predict")
    assert verify_token(admin, workspace=ws, scope="predict").name == "root"


def test_revoked_and_expired_tokens_are_refused(ws: Workspace) -> None:
    revoked = create_token("old", workspace=ws).token
    info = revoke_token("old", workspace=ws)
    assert info.revoked_at is not None and not info.active
    assert revoke_token(info.id, workspace=ws).revoked_at == info.revoked_at  # idempotent
    with pytest.raises(AuthenticationError):
        verify_token(revoked, workspace=ws)
    expiring = create_token("brief", workspace=ws, expires_in=timedelta(hours=1)).token
    assert verify_token(expiring, workspace=ws).expires_at is not None
    with ws.db.session() as session:
        row = session.execute(select(ApiToken).where(ApiToken.name == "brief")).scalar_one()
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    with pytest.raises(AuthenticationError):
        verify_token(expiring, workspace=ws)
    states = {t.name: t.active for t in list_tokens(workspace=ws)}
    assert states == {"old": False, "brief": False}
    assert _actions(ws, "old") == ["token.created", "token.revoked"]


def test_the_verifier_caches_and_sees_revocations_after_its_refresh(ws: Workspace) -> None:
    token = create_token("scorer", workspace=ws).token
    cached = TokenVerifier(ws, refresh=3600)
    fresh = TokenVerifier(ws, refresh=0)
    assert cached.verify(token).name == fresh.verify(token, scope="predict").name == "scorer"
    revoke_token("scorer", workspace=ws)
    assert cached.verify(token).name == "scorer"  # within its refresh interval
    with pytest.raises(AuthenticationError):
        fresh.verify(token)
    with pytest.raises(AuthenticationError):
        fresh.verify("mlw_nonsense")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"scopes": ["root"]}, "Scope(s) root not known"),
    ({"scopes": []}, "Scope(s) (none) not known"),
    ({"expires_in": timedelta(0)}, "give a positive duration"),
])
def test_bad_token_requests_are_refused(ws: Workspace, kwargs: dict[str, Any],
                                        message: str) -> None:
    with pytest.raises(SecurityError, match=re.escape(message)):
        create_token("x", workspace=ws, **kwargs)
    assert list_tokens(workspace=ws) == []


def test_names_are_unique_and_revoking_an_unknown_token_is_an_error(ws: Workspace) -> None:
    create_token("scorer", workspace=ws)
    with pytest.raises(SecurityError, match="exists already"):
        create_token("scorer", workspace=ws)
    with pytest.raises(SecurityError, match="No token named 'ghost'"):
        revoke_token("ghost", workspace=ws)


def test_token_commands(run_cli: Callable[..., Any]) -> None:
    assert run_cli("init", "ws").code == 0
    created = run_cli("-w", "ws", "token", "create", "ci", "--scope", "predict",
                      "--expires-in", "30d")
    assert created.code == 0 and created.out.strip().startswith("mlw_")
    assert "cannot be shown again" in " ".join(created.err.split())
    as_json = run_cli("-w", "ws", "token", "create", "bot", "--json").json()
    assert as_json["token"].startswith("mlw_") and as_json["scopes"] == ["predict"]
    listed = run_cli("-w", "ws", "token", "list", "--json").json()
    assert {t["name"] for t in listed} == {"ci", "bot"}
    assert all("token" not in t and "secret_sha256" not in t for t in listed)
    assert "active" in run_cli("-w", "ws", "token", "list").out
    assert run_cli("-w", "ws", "token", "revoke", "ci").code == 0
    revoked = {t["name"]: t["revoked_at"] is not None
               for t in run_cli("-w", "ws", "token", "list", "--json").json()}
    assert revoked == {"ci": True, "bot": False}
    for args, message in [(["token", "create", "x", "--scope", "root"], "not known"),
                          (["token", "create", "y", "--expires-in", "soon"], "--expires-in"),
                          (["token", "create", "bot"], "exists already"),
                          (["token", "revoke", "ghost"], "No token named")]:
        result = run_cli("-w", "ws", *args)
        assert result.code == 2 and message in result.err, result.err
        assert result.err.strip().count("\n") == 0
