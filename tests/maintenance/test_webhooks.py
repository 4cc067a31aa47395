"""Registry webhooks against a real HTTP server on 127.0.0.1, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import socket
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from mlwright.errors import NotFoundError
from mlwright.registry import register_model, remove_alias, set_alias
from mlwright.registry.webhooks import (
    Backoff,
    WebhookError,
    add_webhook,
    deliver_pending,
    list_deliveries,
    list_webhooks,
    remove_webhook,
    sign,
    verify_signature,
)
from mlwright.store import AuditEvent, Webhook, WebhookDelivery, list_events
from mlwright.store.types import utcnow
from mlwright.workspace import Workspace

from .conftest import Receiver
from .flows import Constant

SECRET = "correct horse battery staple"
FAILED_GATES = {"passed": False, "results": [{"gate_id": "auc>=0.9", "blocking": True,
                                              "passed": False, "message": "auc 0.7 < 0.9"}]}


def _register(ws: Workspace, value: float = 1.0, **extra: object) -> None:
    register_model("delays", Constant(value), workspace=ws, **extra)  # type: ignore[arg-type]


def test_events_are_posted_signed_with_the_documented_headers_and_body(
        workspace: Workspace, receiver: Receiver) -> None:
    hook = add_webhook(receiver.url, secret=SECRET, workspace=workspace)
    _register(workspace)
    set_alias("delays", "champion", 1, workspace=workspace)
    report = deliver_pending(workspace)
    assert (report.queued, report.delivered, report.failed, report.pending) == (3, 3, 0, 0)
    assert [r.path for r in receiver.requests] == ["/hooks/mlwright"] * 3
    bodies = [json.loads(r.body) for r in receiver.requests]
    assert [b["action"] for b in bodies] == ["model.created", "model.version.registered",
                                             "model.alias.moved"]
    moved = bodies[2]
    assert set(moved) == {"id", "action", "object", "actor", "at", "details"}
    assert moved["object"] == "delays"
    assert moved["details"] == {"alias": "champion", "from": None, "to": 1}
    assert moved["actor"] == workspace.actor
    with workspace.db.session() as session:
        event = list_events(session, action="model.alias.moved")[0]
    assert moved["id"] == event.id and moved["at"] == event.at.isoformat()
    deliveries = {d.event_id: d for d in list_deliveries(workspace=workspace)}
    for request, body in zip(receiver.requests, bodies, strict=True):
        headers = {k.lower(): v for k, v in request.headers.items()}
        assert headers["content-type"] == "application/json"
        assert headers["x-mlwright-event"] == body["action"]
        assert headers["x-mlwright-delivery"] == str(deliveries[body["id"]].id)
        assert headers["x-mlwright-signature"] == sign(SECRET, request.body)
        assert verify_signature(SECRET, request.body, headers["x-mlwright-signature"])
        assert not verify_signature("another secret", request.body,
                                    headers["x-mlwright-signature"])
        assert not verify_signature(SECRET, request.body + b" ", headers["x-mlwright-signature"])
    assert all(d.status == "delivered" and d.attempts == 1 and d.last_status_code == 204
               and d.webhook_id == hook.id for d in deliveries.values())


def test_verify_signature_refuses_malformed_headers() -> None:
    body = b'{"id": 1}'
    good = sign("s", body)
    assert good.startswith("sha256=") and len(good) == 7 + 64
    assert verify_signature("s", body, good)
    for bad in (None, "", good[7:], "sha1=" + good[7:], good[:-1], "sha256=" + "0" * 64):
        assert not verify_signature("s", body, bad)


def test_a_failing_receiver_is_retried_with_exponential_backoff(
        workspace: Workspace, receiver: Receiver) -> None:
    receiver.fail_first, receiver.fail_status = 2, 503
    add_webhook(receiver.url, secret=SECRET, events=["model.alias.moved"], workspace=workspace)
    _register(workspace)
    set_alias("delays", "champion", 1, workspace=workspace)
    backoff = Backoff(first=10, factor=3, cap=600)
    t0 = utcnow()
    first = deliver_pending(workspace, now=t0, backoff=backoff)
    assert (first.queued, first.delivered, first.retrying, first.pending) == (1, 0, 1, 1)
    assert first.next_attempt_at == t0 + timedelta(seconds=10)
    assert first.attempts[0].last_status_code == 503
    assert first.attempts[0].last_error == "HTTP 503: answer 503"
    early = deliver_pending(workspace, now=t0 + timedelta(seconds=9), backoff=backoff)
    assert (early.delivered, early.retrying, early.attempts) == (0, 0, [])
    assert len(receiver.requests) == 1  # not due yet: nothing sent
    second = deliver_pending(workspace, now=t0 + timedelta(seconds=10), backoff=backoff)
    assert second.retrying == 1
    assert second.next_attempt_at == t0 + timedelta(seconds=10 + 30)  # 10 s * 3
    third = deliver_pending(workspace, now=t0 + timedelta(seconds=40), backoff=backoff)
    assert (third.delivered, third.pending, third.next_attempt_at) == (1, 0, None)
    [delivery] = list_deliveries(workspace=workspace)
    assert (delivery.status, delivery.attempts, delivery.last_status_code,
            delivery.last_error) == ("delivered", 3, 204, None)
    assert delivery.delivered_at == t0 + timedelta(seconds=40)
    # One delivery, retried: the same id and the same signed bytes every time.
    assert len({r.headers["X-Mlwright-Delivery"] for r in receiver.requests}) == 1
    assert len({r.body for r in receiver.requests}) == 1


def test_delivery_fails_for_good_after_max_attempts(workspace: Workspace,
                                                    receiver: Receiver) -> None:
    receiver.status = 500
    add_webhook(receiver.url, secret=SECRET, events=["model.created"], workspace=workspace)
    _register(workspace)
    t0 = utcnow()
    for seconds in (0, 1, 3):
        report = deliver_pending(workspace, now=t0 + timedelta(seconds=seconds), max_attempts=3,
                                 backoff=Backoff(first=1, factor=2))
    assert (report.failed, report.pending) == (1, 0)
    [delivery] = list_deliveries(workspace=workspace)
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("failed", 3, None)
    assert deliver_pending(workspace, now=t0 + timedelta(hours=1)).attempts == []
    assert len(receiver.requests) == 3


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # HTTP only: one dialect
@pytest.mark.parametrize(("status", "expected"), [(400, "failed"), (404, "failed"),
                                                  (410, "failed"), (301, "failed"),
                                                  (408, "pending"), (429, "pending"),
                                                  (502, "pending")])
def test_4xx_fails_at_once_but_408_429_and_5xx_are_retried(
        workspace: Workspace, receiver: Receiver, status: int, expected: str) -> None:
    receiver.status = status
    add_webhook(receiver.url, secret=SECRET, events=["model.created"], workspace=workspace)
    _register(workspace)
    report = deliver_pending(workspace)
    [delivery] = report.attempts
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == \
        (expected, 1, status)
    assert delivery.last_error is not None and delivery.last_error.startswith(f"HTTP {status}")


def test_connection_errors_and_timeouts_are_retried(workspace: Workspace,
                                                   receiver: Receiver) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/hook"
    add_webhook(closed, secret=SECRET, events=["model.created"], workspace=workspace)
    receiver.delay = 1.0
    add_webhook(receiver.url, secret=SECRET, events=["model.created"], workspace=workspace)
    _register(workspace)
    report = deliver_pending(workspace, timeout=0.2)
    refused, slow = sorted(report.attempts, key=lambda d: d.webhook_id)
    assert (refused.status, refused.last_status_code) == ("pending", None)
    assert refused.last_error == "cannot connect: Connection refused"
    assert (slow.status, slow.last_error) == ("pending", "timed out after 0.2 s")
    assert report.retrying == 2


def test_each_webhook_gets_only_the_events_it_asked_for(workspace: Workspace,
                                                        receiver: Receiver) -> None:
    add_webhook(receiver.url + "/aliases", secret=SECRET,
                events=["model.alias.moved", "model.alias.removed"], workspace=workspace)
    add_webhook(receiver.url + "/gates", secret=SECRET, events=["model.gate.failed"],
                workspace=workspace)
    _register(workspace)
    set_alias("delays", "champion", 1, workspace=workspace)
    remove_alias("delays", "champion", workspace=workspace)
    _register(workspace, 2.0, gates=FAILED_GATES)
    report = deliver_pending(workspace)
    assert report.delivered == 3
    got = sorted((r.path.rsplit("/", 1)[-1], r.headers["X-Mlwright-Event"])
                 for r in receiver.requests)
    assert got == [("aliases", "model.alias.moved"), ("aliases", "model.alias.removed"),
                   ("gates", "model.gate.failed")]
    gate = next(json.loads(r.body) for r in receiver.requests if r.path.endswith("/gates"))
    assert (gate["object"], gate["details"]) == ("delays@2", {"failed": ["auc>=0.9"]})


def test_delivering_twice_sends_each_event_once(workspace: Workspace, receiver: Receiver) -> None:
    add_webhook(receiver.url, secret=SECRET, workspace=workspace)
    add_webhook(receiver.url + "/second", secret=SECRET, workspace=workspace)
    _register(workspace)
    assert deliver_pending(workspace).delivered == 4  # 2 events x 2 webhooks
    again = deliver_pending(workspace)
    assert (again.queued, again.delivered, again.attempts) == (0, 0, [])
    assert len(receiver.requests) == 4
    with workspace.db.session() as session:
        pairs = session.execute(select(WebhookDelivery.webhook_id, WebhookDelivery.event_id)).all()
    assert len(pairs) == len(set(pairs)) == 4


def test_a_new_webhook_starts_from_now(workspace: Workspace, receiver: Receiver) -> None:
    _register(workspace)
    add_webhook(receiver.url, secret=SECRET, workspace=workspace)
    assert deliver_pending(workspace).queued == 0
    set_alias("delays", "champion", 1, workspace=workspace)
    assert deliver_pending(workspace).delivered == 1
    assert receiver.requests[0].headers["X-Mlwright-Event"] == "model.alias.moved"


def test_an_event_committed_behind_the_cursor_is_still_delivered(
        workspace: Workspace, receiver: Receiver) -> None:
    """On PostgreSQL a transaction may commit event N after event N+1 was seen."""
    hook = add_webhook(receiver.url, secret=SECRET, events=["model.alias.moved"],
                       workspace=workspace)
    _register(workspace)
    set_alias("delays", "champion", 1, workspace=workspace)
    with workspace.db.session() as session:
        newest = session.execute(select(func.max(AuditEvent.id))).scalar()
        session.execute(update(Webhook).where(Webhook.id == hook.id)
                        .values(last_event_id=newest))  # as if the cursor had passed it
    assert deliver_pending(workspace).delivered == 1
    assert deliver_pending(workspace).attempts == []


def test_inactive_webhooks_are_skipped(workspace: Workspace, receiver: Receiver) -> None:
    hook = add_webhook(receiver.url, secret=SECRET, workspace=workspace)
    with workspace.db.session() as session:
        session.execute(update(Webhook).where(Webhook.id == hook.id).values(active=False))
    _register(workspace)
    assert deliver_pending(workspace).attempts == []
    assert receiver.requests == []


def test_list_masks_secrets_and_remove_drops_the_delivery_log(
        workspace: Workspace, receiver: Receiver) -> None:
    hook = add_webhook(receiver.url, secret=SECRET, events=["model.created"],
                       workspace=workspace)
    assert SECRET not in repr(hook)
    [listed] = list_webhooks(workspace=workspace)
    assert listed.to_dict()["secret"] == "co******le"
    assert SECRET not in json.dumps(listed.to_dict())
    _register(workspace)
    deliver_pending(workspace)
    assert len(list_deliveries(workspace=workspace)) == 1
    remove_webhook(hook.id, workspace=workspace)
    assert list_webhooks(workspace=workspace) == []
    assert list_deliveries(workspace=workspace) == []
    with workspace.db.session() as session:
        actions = [e.action for e in list_events(session, object_type="webhook")]
        assert actions == ["webhook.removed", "webhook.added"]
    with pytest.raises(NotFoundError, match="No webhook with id 99"):
        remove_webhook(99, workspace=workspace)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("url", ["ftp://example.com/x", "example.com/hook", "http://",
                                 "https:///path", "http://exa mple.com/", "http://host:99999/"])
def test_bad_urls_are_refused(workspace: Workspace, url: str) -> None:
    with pytest.raises(WebhookError, match="is not an http:// or https:// URL with a host"):
        add_webhook(url, secret=SECRET, workspace=workspace)


def test_unknown_events_and_blank_secrets_are_refused(workspace: Workspace) -> None:
    with pytest.raises(WebhookError, match=r"Unknown webhook event 'model\.deleted'; use one of"):
        add_webhook("https://ci.example.com/h", secret=SECRET, events=["model.deleted"],
                    workspace=workspace)
    with pytest.raises(WebhookError, match="secret must be 1 to 256 characters"):
        add_webhook("https://ci.example.com/h", secret="  ", workspace=workspace)
    assert list_webhooks(workspace=workspace) == []


def test_backoff_grows_and_is_capped() -> None:
    backoff = Backoff(first=5, factor=2, cap=30)
    assert [backoff.delay(n).total_seconds() for n in range(1, 6)] == [5, 10, 20, 30, 30]
