"""API tokens: created once, shown once, kept only as a hash, checked in constant time.

>>> created = create_token("ci-scorer", scopes=["predict"])        # doctest: +SKIP
>>> created.token                                                   # doctest: +SKIP
'mlw_3f9a1c2e7b40_Vb2...'
>>> verify_token(created.token).name                                # doctest: +SKIP
'ci-scorer'

A token is ``mlw_<id>_<secret>``: the id finds the row, the secret (32 random bytes) is
compared with the stored sha256 by ``hmac.compare_digest``. A random secret of that size
needs no slow password hash: there is nothing to guess. Every failure — malformed, unknown,
wrong secret, revoked, expired — raises the same :class:`AuthenticationError`, so a caller
learns nothing about which. :class:`TokenVerifier` keeps the table in memory for the serving
hot path and re-reads it every few seconds, so a revocation takes effect within that time.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select

from mlwright.errors import AuthenticationError, SecurityError
from mlwright.store import ApiToken, check_name, is_unique_violation, record_event
from mlwright.store.types import utcnow
from mlwright.workspace import Workspace, as_workspace

WorkspaceArg = Workspace | str | os.PathLike[str] | None
PREFIX = "mlw_"
SCOPES = ("predict", "feedback", "read", "admin")
INVALID = "Invalid or missing API token."
_DUMMY = hashlib.sha256(b"mlwright: no such token").hexdigest()


@dataclass(frozen=True)
class TokenInfo:
    """What is known about a token (never its secret)."""

    id: str
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None
                                            or self.expires_at > datetime.now(UTC))

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "scopes": list(self.scopes),
                "created_at": self.created_at.isoformat(), "created_by": self.created_by,
                "expires_at": self.expires_at.isoformat() if self.expires_at else None,
                "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
                "active": self.active}


@dataclass(frozen=True)
class CreatedToken:
    """A new token: ``token`` is the only time the secret is available."""

    info: TokenInfo
    token: str


def _info(row: ApiToken) -> TokenInfo:
    return TokenInfo(row.id, row.name, tuple(row.scopes), row.created_at, row.created_by,
                     row.expires_at, row.revoked_at)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _check_scopes(scopes: Sequence[str]) -> tuple[str, ...]:
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise SecurityError(f"Scope(s) {', '.join(unknown) or '(none)'} not known; give one or "
                            f"more of {', '.join(SCOPES)}.")
    return tuple(dict.fromkeys(scopes))


def create_token(name: str, *, workspace: WorkspaceArg = None,
                 scopes: Sequence[str] = ("predict",),
                 expires_in: timedelta | None = None) -> CreatedToken:
    """Create a token named ``name`` (unique) with ``scopes``; it expires after
    ``expires_in`` if given. The returned ``token`` is shown once and never stored."""
    check_name("token", name)
    chosen = _check_scopes(scopes)
    if expires_in is not None and expires_in <= timedelta(0):
        raise SecurityError(f"Token '{name}' would expire in {expires_in}; give a positive "
                            "duration such as 30d, or none.")
    ws = as_workspace(workspace)
    token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    expires_at = datetime.now(UTC) + expires_in if expires_in is not None else None
    try:
        with ws.db.session() as session:
            row = ApiToken(id=token_id, name=name, secret_sha256=_digest(secret),
                           scopes=list(chosen), created_by=ws.actor, expires_at=expires_at)
            session.add(row)
            session.flush()
            record_event(session, actor=ws.actor, action="token.created", object_type="token",
                         object_ref=name, details={"id": token_id, "scopes": list(chosen),
                                                   "expires_at": expires_at.isoformat()
                                                   if expires_at else None})
            info = _info(row)
    except Exception as exc:
        if is_unique_violation(exc):
            raise SecurityError(f"A token named '{name}' exists already; revoke it or choose "
                                "another name.") from None
        raise
    return CreatedToken(info, f"{PREFIX}{token_id}_{secret}")


def list_tokens(*, workspace: WorkspaceArg = None) -> list[TokenInfo]:
    """Every token, newest first, revoked and expired ones included."""
    ws = as_workspace(workspace)
    with ws.db.session() as session:
        rows = session.execute(select(ApiToken).order_by(ApiToken.created_at.desc(),
                                                         ApiToken.name)).scalars()
        return [_info(r) for r in rows]


def revoke_token(name_or_id: str, *, workspace: WorkspaceArg = None) -> TokenInfo:
    """Revoke a token by name or id; revoking a revoked token changes nothing."""
    ws = as_workspace(workspace)
    with ws.db.session() as session:
        row = session.execute(select(ApiToken).where(
            or_(ApiToken.name == name_or_id, ApiToken.id == name_or_id))).scalar_one_or_none()
        if row is None:
            raise SecurityError(f"No token named '{name_or_id}'; see `mlwright token list`.")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            record_event(session, actor=ws.actor, action="token.revoked", object_type="token",
                         object_ref=row.name, details={"id": row.id})
        return _info(row)


def _split(presented: str | None) -> tuple[str, str] | None:
    if not presented or not presented.startswith(PREFIX):
        return None
    token_id, sep, secret = presented[len(PREFIX):].partition("_")
    if not sep or len(token_id) != 12 or not secret:
        return None
    return token_id, secret


def _check(row: ApiToken | None, secret: str, now: datetime) -> TokenInfo:
    # Compare even when the id is unknown, so that timing tells nothing either.
    expected = row.secret_sha256 if row is not None else _DUMMY
    matches = hmac.compare_digest(expected, _digest(secret))
    if row is None or not matches or row.revoked_at is not None or \
            (row.expires_at is not None and row.expires_at <= now):
        raise AuthenticationError(INVALID)
    return _info(row)


def verify_token(presented: str | None, *, workspace: WorkspaceArg = None,
                 scope: str | None = None) -> TokenInfo:
    """The token's info if ``presented`` is a valid, unrevoked, unexpired token (with
    ``scope``, if given); :class:`AuthenticationError` otherwise."""
    parts = _split(presented)
    if parts is None:
        raise AuthenticationError(INVALID)
    ws = as_workspace(workspace)
    with ws.db.session() as session:
        row = session.get(ApiToken, parts[0])
        info = _check(row, parts[1], datetime.now(UTC))
    if scope is not None and scope not in info.scopes and "admin" not in info.scopes:
        raise AuthenticationError(INVALID)
    return info


class TokenVerifier:
    """Verifies tokens from an in-memory copy of the table, re-read every ``refresh``
    seconds (the serving hot path: no database round trip per request)."""

    def __init__(self, workspace: WorkspaceArg = None, *, refresh: float = 5.0) -> None:
        self.workspace = as_workspace(workspace)
        self.refresh = refresh
        self._rows: dict[str, ApiToken] = {}
        # Tokens that passed since the last re-read, by their sha256: a hit skips building
        # the token's info again (a tenth of a small request's time); the digest is still
        # computed and compared, and expiry is checked on every call.
        self._verified: dict[str, TokenInfo] = {}
        self._loaded = float("-inf")
        self._lock = threading.Lock()

    def _load(self) -> None:
        with self.workspace.db.session() as session:
            rows = list(session.execute(select(ApiToken)).scalars())
            session.expunge_all()
        self._rows = {r.id: r for r in rows}
        self._verified = {}
        self._loaded = time.monotonic()

    def verify(self, presented: str | None, scope: str | None = None) -> TokenInfo:
        if time.monotonic() - self._loaded > self.refresh:
            with self._lock:
                if time.monotonic() - self._loaded > self.refresh:
                    self._load()
        parts = _split(presented)
        if parts is None:
            raise AuthenticationError(INVALID)
        digest = _digest(parts[1])
        info = self._verified.get(digest)
        if info is None or info.id != parts[0] or (
                info.expires_at is not None and info.expires_at <= datetime.now(UTC)):
            info = _check(self._rows.get(parts[0]), parts[1], datetime.now(UTC))
            self._verified[digest] = info
        if scope is not None and scope not in info.scopes and "admin" not in info.scopes:
            raise AuthenticationError(INVALID)
        return info
