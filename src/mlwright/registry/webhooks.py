"""Registry webhooks: registry events POSTed to URLs, signed with HMAC-SHA256, retried.

>>> hook = add_webhook("https://ci.example.com/hooks/mlwright", secret="s3cret",
...                    events=["model.alias.moved"], workspace=ws)      # doctest: +SKIP
>>> deliver_pending(ws).delivered                                       # doctest: +SKIP
1
>>> body = b'{"action":"model.alias.moved"}'
>>> verify_signature("s3cret", body, sign("s3cret", body))
True

An outbox over the audit log: each webhook keeps a cursor (the newest audit event it has
looked at). :func:`deliver_pending` turns the matching events past it into delivery rows
(at most one per webhook and event), then POSTs the due ones as JSON ``{"id", "action",
"object", "actor", "at", "details"}`` with the headers ``X-Mlwright-Event``,
``X-Mlwright-Delivery`` (the same on every retry of one delivery) and
``X-Mlwright-Signature: sha256=<hex HMAC of the raw body>``, like GitHub's. Connection
errors, timeouts, 408, 429 and 5xx are retried with exponential backoff on later passes;
any other answer that is not 2xx fails the delivery at once. Delivery is at least once:
receivers deduplicate on ``X-Mlwright-Delivery`` or the event ``id``.

A PostgreSQL transaction may commit an event after a later-numbered one; so each pass also
looks again at the last :data:`RESCAN` of events behind the cursor, and the one-row-per-event
rule keeps those from being sent twice.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from mlwright.errors import NotFoundError, RegistryError
from mlwright.store import AuditEvent, Webhook, WebhookDelivery, mask_url, record_event
from mlwright.store.types import utcnow
from mlwright.workspace import Workspace, as_workspace

if TYPE_CHECKING:
    import httpx

WorkspaceLike = Workspace | str | os.PathLike[str] | None
EVENTS = ("model.created", "model.version.registered", "model.alias.moved",
          "model.alias.removed", "model.gate.failed")
ALL = "*"
EVENT_HEADER = "X-Mlwright-Event"
DELIVERY_HEADER = "X-Mlwright-Delivery"
SIGNATURE_HEADER = "X-Mlwright-Signature"
RESCAN = timedelta(minutes=10)
LEASE = timedelta(seconds=60)  # a claimed delivery is not sent again by another pass before
_RETRIED_4XX = (408, 429)
_USER_AGENT = "mlwright-webhooks/1"
_ERRNO = re.compile(r"^\[Errno -?\d+\]\s*")


class WebhookError(RegistryError):
    """A webhook that is declared wrongly (its URL, its events)."""


@dataclass(frozen=True)
class Backoff:
    """Seconds between attempts: ``first``, then times ``factor`` each time, at most ``cap``.

    >>> [Backoff(first=10, factor=2, cap=60).delay(n).seconds for n in (1, 2, 3, 4, 5)]
    [10, 20, 40, 60, 60]
    """

    first: float = 10.0
    factor: float = 2.0
    cap: float = 3600.0

    def delay(self, attempt: int) -> timedelta:
        """The wait after the ``attempt``-th failed attempt (1-based)."""
        return timedelta(seconds=min(self.cap, self.first * self.factor ** max(0, attempt - 1)))


def sign(secret: str, body: bytes) -> str:
    """The signature header value of ``body``: ``sha256=`` and the hex HMAC-SHA256."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` (``X-Mlwright-Signature``) signs the raw ``body`` with ``secret``;
    compared in constant time. For receivers.

    >>> verify_signature("s3cret", b"{}", "sha256=00")
    False
    """
    if not header or not header.startswith("sha256="):
        return False
    return hmac.compare_digest(sign(secret, body).encode(), header.strip().encode())


@dataclass(frozen=True)
class WebhookInfo:
    id: int
    url: str
    events: list[str]
    active: bool
    last_event_id: int
    created_at: datetime
    created_by: str
    secret: str = field(repr=False)

    @property
    def masked_secret(self) -> str:
        return "*" * 8 if len(self.secret) < 12 else f"{self.secret[:2]}{'*' * 6}{self.secret[-2:]}"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "url": self.url, "events": self.events, "active": self.active,
                "secret": self.masked_secret, "last_event_id": self.last_event_id,
                "created_at": self.created_at.isoformat(), "created_by": self.created_by}


@dataclass(frozen=True)
class DeliveryInfo:
    id: int
    webhook_id: int
    event_id: int
    action: str
    object: str
    status: str  # pending | delivered | failed
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {"id": self.id, "webhook_id": self.webhook_id, "event_id": self.event_id,
                "action": self.action, "object": self.object, "status": self.status,
                "attempts": self.attempts, "last_status_code": self.last_status_code,
                "last_error": self.last_error, "next_attempt_at": iso(self.next_attempt_at),
                "delivered_at": iso(self.delivered_at), "created_at": iso(self.created_at)}


@dataclass
class DeliveryReport:
    """What one :func:`deliver_pending` pass did."""

    queued: int = 0  # new deliveries made from audit events
    delivered: int = 0
    retrying: int = 0  # attempted, failed, scheduled again
    failed: int = 0  # failed for good in this pass
    pending: int = 0  # still pending after the pass, due now or later
    next_attempt_at: datetime | None = None
    attempts: list[DeliveryInfo] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"queued": self.queued, "delivered": self.delivered, "retrying": self.retrying,
                "failed": self.failed, "pending": self.pending,
                "next_attempt_at": self.next_attempt_at.isoformat()
                if self.next_attempt_at else None,
                "attempts": [a.to_dict() for a in self.attempts]}


# -- subscriptions ---------------------------------------------------------------------------


def check_url(url: str) -> str:
    """``url`` if it is an http(s) URL with a host; else a :class:`WebhookError`."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except (ValueError, TypeError):
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname \
            or any(c.isspace() for c in url):
        raise WebhookError(f"Webhook URL {url!r} is not an http:// or https:// URL with a host; "
                           "use e.g. https://ci.example.com/hooks/mlwright.")
    return url


def check_events(events: list[str] | tuple[str, ...] | None) -> list[str]:
    """The event filter: known event names, sorted, or ``["*"]`` (all) when empty."""
    chosen = sorted(set(events or [ALL]))
    unknown = [e for e in chosen if e != ALL and e not in EVENTS]
    if unknown:
        raise WebhookError(f"Unknown webhook event '{unknown[0]}'; use one of "
                           f"{', '.join(EVENTS)} or '*' for all.")
    return [ALL] if ALL in chosen else chosen


def _hook_info(row: Webhook) -> WebhookInfo:
    return WebhookInfo(row.id, row.url, list(row.events), row.active, row.last_event_id,
                       row.created_at, row.created_by, row.secret)


def add_webhook(url: str, *, secret: str, events: list[str] | None = None,
                workspace: WorkspaceLike = None) -> WebhookInfo:
    """Subscribe ``url`` to registry ``events`` (all when None) from now on; audited."""
    check_url(url)
    chosen = check_events(events)
    if not secret or not secret.strip() or len(secret) > 256:
        raise WebhookError("A webhook secret must be 1 to 256 characters, not blank; receivers "
                           "check the signature with it.")
    ws = as_workspace(workspace)
    with ws.db.session() as session:
        newest = session.execute(select(func.max(AuditEvent.id))).scalar() or 0
        row = Webhook(url=url, secret=secret, events=chosen, active=True, last_event_id=newest,
                      created_at=utcnow(), created_by=ws.actor)
        session.add(row)
        session.flush()
        record_event(session, actor=ws.actor, action="webhook.added", object_type="webhook",
                     object_ref=str(row.id), details={"url": mask_url(url), "events": chosen})
        return _hook_info(row)


def list_webhooks(*, workspace: WorkspaceLike = None) -> list[WebhookInfo]:
    """Every webhook, oldest first."""
    ws = as_workspace(workspace)
    with ws.db.session() as session:
        return [_hook_info(r) for r in session.execute(select(Webhook).order_by(Webhook.id)).scalars()]


def remove_webhook(webhook_id: int, *, workspace: WorkspaceLike = None) -> WebhookInfo:
    """Delete a webhook and its delivery log; audited."""
    ws = as_workspace(workspace)
    with ws.db.exclusive(f"webhook:{webhook_id}") as session:
        row = session.get(Webhook, webhook_id)
        if row is None:
            raise NotFoundError(f"No webhook with id {webhook_id}; see `mlwright webhook list`.")
        info = _hook_info(row)
        session.execute(delete(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id))
        session.delete(row)
        record_event(session, actor=ws.actor, action="webhook.removed", object_type="webhook",
                     object_ref=str(webhook_id), details={"url": mask_url(info.url)})
        return info


def list_deliveries(*, webhook_id: int | None = None, status: str | None = None,
                    limit: int = 100, workspace: WorkspaceLike = None) -> list[DeliveryInfo]:
    """The delivery log, newest first."""
    ws = as_workspace(workspace)
    query = (select(WebhookDelivery, AuditEvent.object_ref)
             .join(AuditEvent, AuditEvent.id == WebhookDelivery.event_id)
             .order_by(WebhookDelivery.id.desc()).limit(max(1, limit)))
    if webhook_id is not None:
        query = query.where(WebhookDelivery.webhook_id == webhook_id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    with ws.db.session() as session:
        return [_delivery_info(d, ref) for d, ref in session.execute(query)]


def _delivery_info(d: WebhookDelivery, ref: str) -> DeliveryInfo:
    return DeliveryInfo(d.id, d.webhook_id, d.event_id, d.action, ref, d.status, d.attempts,
                        d.last_status_code, d.last_error, d.next_attempt_at, d.delivered_at,
                        d.created_at)


# -- delivering ----------------------------------------------------------------------------


def _queue(session: Session, hook: Webhook, now: datetime) -> int:
    """Turn the hook's matching audit events past its cursor (and late commits behind it)
    into pending deliveries; move the cursor. Returns how many were made."""
    actions = list(EVENTS) if ALL in hook.events else list(hook.events)
    newest = session.execute(select(func.max(AuditEvent.id))).scalar() or 0
    floor = max(now - RESCAN, hook.created_at)
    events = session.execute(
        select(AuditEvent.id, AuditEvent.action)
        .where(AuditEvent.action.in_(actions), AuditEvent.id <= newest,
               or_(AuditEvent.id > hook.last_event_id, AuditEvent.at >= floor))
        .order_by(AuditEvent.id)).all()
    behind = [e.id for e in events if e.id <= hook.last_event_id]  # only these can be known
    known = set(session.execute(
        select(WebhookDelivery.event_id).where(WebhookDelivery.webhook_id == hook.id,
                                               WebhookDelivery.event_id.in_(behind))
    ).scalars()) if behind else set()
    fresh = [WebhookDelivery(webhook_id=hook.id, event_id=e.id, action=e.action, status="pending",
                             attempts=0, next_attempt_at=now, created_at=now)
             for e in events if e.id not in known]
    session.add_all(fresh)
    hook.last_event_id = max(hook.last_event_id, newest)
    return len(fresh)


def _payload(event: AuditEvent) -> bytes:
    return json.dumps({"id": event.id, "action": event.action, "object": event.object_ref,
                       "actor": event.actor, "at": event.at.isoformat(),
                       "details": event.details or {}},
                      separators=(",", ":"), sort_keys=True, default=str).encode()


@dataclass(frozen=True)
class _Claimed:
    url: str
    secret: str
    action: str
    body: bytes
    attempts: int


def _claim(ws: Workspace, delivery_id: int, now: datetime) -> _Claimed | None:
    """Take a due delivery for this pass (its next attempt moves a lease ahead, so that a
    concurrent pass leaves it alone); None when another pass took it first."""
    with ws.db.session() as session:
        taken = session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id, WebhookDelivery.status == "pending",
                   WebhookDelivery.next_attempt_at <= now)
            .values(next_attempt_at=now + LEASE).execution_options(synchronize_session=False))
        if getattr(taken, "rowcount", 0) != 1:
            return None
        row = session.get(WebhookDelivery, delivery_id)
        assert row is not None
        hook = session.get(Webhook, row.webhook_id)
        event = session.get(AuditEvent, row.event_id)
        if hook is None or event is None:
            return None
        return _Claimed(hook.url, hook.secret, row.action, _payload(event), row.attempts)


@dataclass(frozen=True)
class _Outcome:
    status_code: int | None
    error: str | None
    retry: bool


def _post(client: httpx.Client, delivery_id: int, claimed: _Claimed, timeout: float) -> _Outcome:
    import httpx

    headers = {"Content-Type": "application/json", EVENT_HEADER: claimed.action,
               DELIVERY_HEADER: str(delivery_id), SIGNATURE_HEADER: sign(claimed.secret,
                                                                         claimed.body)}
    try:
        with client.stream("POST", claimed.url, content=claimed.body, headers=headers) as response:
            code = response.status_code
            if 200 <= code < 300:
                return _Outcome(code, None, retry=False)
            text = b""
            for chunk in response.iter_bytes():
                text += chunk
                if len(text) >= 200:
                    break
    except httpx.TimeoutException:
        return _Outcome(None, f"timed out after {timeout:g} s", retry=True)
    except httpx.UnsupportedProtocol as exc:
        return _Outcome(None, f"cannot send: {exc}", retry=False)
    except httpx.TransportError as exc:
        reason = _ERRNO.sub("", str(exc)) or type(exc).__name__
        what = "cannot connect" if isinstance(exc, httpx.ConnectError) else type(exc).__name__
        return _Outcome(None, f"{what}: {reason}"[:500], retry=True)
    answer = text[:200].decode("utf-8", "replace").strip()
    detail = f"HTTP {code}" + (f": {answer}" if answer else "")
    if 300 <= code < 400:
        detail += f" (redirected to {response.headers.get('location', '?')}; point the webhook " \
                  "at the final URL)"
    return _Outcome(code, detail, retry=code >= 500 or code in _RETRIED_4XX)


def _settle(ws: Workspace, delivery_id: int, outcome: _Outcome, now: datetime,
            max_attempts: int, backoff: Backoff) -> DeliveryInfo:
    with ws.db.session() as session:
        row = session.get(WebhookDelivery, delivery_id)
        assert row is not None
        row.attempts += 1
        row.last_status_code, row.last_error = outcome.status_code, outcome.error
        if outcome.error is None:
            row.status, row.delivered_at, row.next_attempt_at = "delivered", now, None
        elif outcome.retry and row.attempts < max_attempts:
            row.next_attempt_at = now + backoff.delay(row.attempts)
        else:
            row.status, row.next_attempt_at = "failed", None
        event = session.get(AuditEvent, row.event_id)
        return _delivery_info(row, event.object_ref if event else "")


def deliver_pending(workspace: WorkspaceLike = None, *, now: datetime | None = None,
                    max_attempts: int = 5, backoff: Backoff = Backoff(), timeout: float = 5.0,
                    transport: httpx.BaseTransport | None = None) -> DeliveryReport:
    """One pass: queue new events for every active webhook, then send what is due at ``now``.

    A failed attempt that may succeed later is scheduled ``backoff.delay(attempts)`` after
    ``now``, until ``max_attempts``; nothing here sleeps, the next pass retries it (the
    control plane calls this in its loop; ``mlwright webhook deliver`` runs one pass).

    >>> report = deliver_pending(ws, backoff=Backoff(first=30))   # doctest: +SKIP
    >>> report.delivered, report.retrying, report.next_attempt_at  # doctest: +SKIP
    (4, 1, datetime.datetime(2026, 5, 1, 12, 0, 30, tzinfo=datetime.timezone.utc))
    """
    import httpx

    if max_attempts < 1 or timeout <= 0:
        raise WebhookError(f"deliver_pending needs max_attempts >= 1 and timeout > 0; got "
                           f"{max_attempts} and {timeout}.")
    ws = as_workspace(workspace)
    now = utcnow() if now is None else now if now.tzinfo else now.replace(tzinfo=UTC)
    report = DeliveryReport()
    with ws.db.session() as session:
        hooks = session.execute(select(Webhook.id).where(Webhook.active)).scalars().all()
    for hook_id in hooks:
        with ws.db.exclusive(f"webhook:{hook_id}") as session:
            hook = session.get(Webhook, hook_id)
            if hook is not None and hook.active:
                report.queued += _queue(session, hook, now)
    with ws.db.session() as session:
        due = session.execute(
            select(WebhookDelivery.id).join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
            .where(Webhook.active, WebhookDelivery.status == "pending",
                   WebhookDelivery.next_attempt_at <= now)
            .order_by(WebhookDelivery.id)).scalars().all()
    with httpx.Client(timeout=timeout, follow_redirects=False, transport=transport,
                      headers={"User-Agent": _USER_AGENT}) as client:
        for delivery_id in due:
            claimed = _claim(ws, delivery_id, now)
            if claimed is None:
                continue
            outcome = _post(client, delivery_id, claimed, timeout)
            info = _settle(ws, delivery_id, outcome, now, max_attempts, backoff)
            report.attempts.append(info)
            if info.status == "delivered":
                report.delivered += 1
            elif info.status == "failed":
                report.failed += 1
            else:
                report.retrying += 1
    with ws.db.session() as session:
        left = session.execute(select(func.count(), func.min(WebhookDelivery.next_attempt_at))
                               .where(WebhookDelivery.status == "pending")).one()
    report.pending, report.next_attempt_at = int(left[0]), left[1]
    return report
