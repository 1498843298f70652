"""Webhook delivery as Stream documents it: retries with one id and a growing attempt, the try and
total timeouts, gzip bodies signed over the JSON, a bounded record."""

from __future__ import annotations

import gzip
import hashlib
import hmac
import http.server
import json
import socket
import threading
from collections.abc import Iterator

import pytest
from getstream.base import StreamApiException
from getstream.models import EventHook

from stream_emulator import Emulator
from stream_emulator.webhooks import RetryPolicy, Webhooks
from tests.support import serve_in_background

from .conftest import SECRET


class _Scripted(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        server = self.server
        length = int(self.headers.get("content-length", 0))
        server.received.append((dict(self.headers), self.rfile.read(length)))  # type: ignore[attr-defined]
        status = server.script.pop(0) if server.script else 200  # type: ignore[attr-defined]
        if status == "hang":
            server.release.wait(10)  # type: ignore[attr-defined]  # until the test ends
            return
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


class Receiver:
    def __init__(self) -> None:
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
        self.server.received = []  # type: ignore[attr-defined]
        self.server.script = []  # type: ignore[attr-defined]
        self.server.release = threading.Event()  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    @property
    def received(self) -> list[tuple[dict, bytes]]:
        return self.server.received  # type: ignore[attr-defined]

    def answer(self, *statuses: int | str) -> None:
        self.server.script.extend(statuses)  # type: ignore[attr-defined]


def _served() -> Iterator[Receiver]:
    """A receiver on its own thread, until the test ends."""
    made = Receiver()
    serve_in_background(made.server)
    yield made
    made.server.release.set()  # type: ignore[attr-defined]
    made.server.shutdown()
    made.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from _served()


@pytest.fixture
def fast(emu: Emulator) -> Emulator:
    """No pause between tries (Stream's pause is not documented; the tries and timeouts are)."""
    emu.webhooks.policy.backoff_s = 0.0
    return emu


def _user_update(sc, url: str) -> None:
    sc.update_app_settings(webhook_url=url, webhook_events=["user.updated"])
    sc.upsert_user({"id": "ann"})
    sc.upsert_user({"id": "ann", "name": "Ann"})  # an update: one user.updated event


def _tries(emu: Emulator) -> list[tuple[str, int | None, int]]:
    emu.webhooks.wait_idle()
    return [(d.webhook_id, d.status, d.attempt) for d in emu.webhook_deliveries]


@pytest.mark.parametrize("failure", [503, 500, 429, 408])
def test_a_retryable_answer_is_tried_again_with_the_same_id(sc, fast, receiver, failure):
    receiver.answer(failure, failure)
    _user_update(sc, receiver.url)
    tries = _tries(fast)
    assert [(status, attempt) for _, status, attempt in tries] == [(failure, 1), (failure, 2), (200, 3)]
    assert len({webhook_id for webhook_id, _, _ in tries}) == 1
    headers = [h for h, _ in receiver.received]
    assert [h["X-Webhook-Attempt"] for h in headers] == ["1", "2", "3"]
    assert len({h["X-Webhook-Id"] for h in headers}) == 1
    assert len({body for _, body in receiver.received}) == 1


def test_three_tries_at_most(sc, fast, receiver):
    receiver.answer(503, 503, 503, 503)
    _user_update(sc, receiver.url)
    assert [status for _, status, _ in _tries(fast)] == [503, 503, 503]
    assert len(receiver.received) == 3


def test_another_4xx_is_not_retried(sc, fast, receiver):
    receiver.answer(401)
    _user_update(sc, receiver.url)
    assert [status for _, status, _ in _tries(fast)] == [401]


def test_a_network_error_is_tried_twice(sc, fast):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    _user_update(sc, f"http://127.0.0.1:{port}/hooks")
    tries = _tries(fast)
    assert [(status, attempt) for _, status, attempt in tries] == [(None, 1), (None, 2)]


def test_a_try_that_times_out_is_tried_three_times(sc, fast, receiver):
    fast.webhooks.policy.try_timeout_s = 0.2
    receiver.answer("hang", "hang", "hang")
    _user_update(sc, receiver.url)
    tries = fast.webhook_deliveries if fast.webhooks.wait_idle(10) is None else []
    assert [d.attempt for d in tries] == [1, 2, 3]
    assert all(d.error and d.error.startswith("timeout") for d in tries)


def test_a_backoff_longer_than_the_total_budget_shrinks_to_fit(sc, fast, receiver):
    fast.webhooks.policy.total_s = 0.5
    fast.webhooks.policy.backoff_s = 1.0  # a full pause would pass the total: it shrinks instead of ending early
    receiver.answer(503, 503, 503)
    _user_update(sc, receiver.url)
    statuses = [status for _, status, _ in _tries(fast)]
    assert (
        set(statuses) == {503} and len(statuses) <= 3
    )  # the schedule itself: tests/unit/test_webhook_retry_schedule.py


def test_an_injected_failure_reaches_the_receiver_and_is_retried(sc, fast, receiver):
    fast.faults.fail_webhooks(1, status=503)
    _user_update(sc, receiver.url)
    tries = fast.webhook_deliveries if fast.webhooks.wait_idle() is None else []
    assert [(d.status, d.faulted, d.attempt) for d in tries] == [(503, True, 1), (200, False, 2)]
    assert len(receiver.received) == 2
    assert len({h["X-Webhook-Id"] for h, _ in receiver.received}) == 1


def test_redelivery_uses_a_new_id(sc, fast, receiver):
    _user_update(sc, receiver.url)
    fast.webhooks.wait_idle()
    fast.webhooks.redeliver(fast.webhook_deliveries[0])
    fast.webhooks.wait_for(2)
    first, second = (h["X-Webhook-Id"] for h, _ in receiver.received)
    assert first != second and receiver.received[0][1] == receiver.received[1][1]


def test_compressed_bodies_are_gzip_signed_over_the_json(sc, fast, receiver):
    sc.update_app_settings(enable_hook_payload_compression=True)
    _user_update(sc, receiver.url)
    fast.webhooks.wait_idle()
    headers, body = receiver.received[0]
    assert headers["Content-Encoding"] == "gzip"
    data = gzip.decompress(body)
    assert json.loads(data)["type"] == "user.updated"
    assert headers["X-Signature"] == hmac.new(SECRET.encode(), data, hashlib.sha256).hexdigest()
    assert headers["X-Signature"] != hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert sc.verify_webhook(data, headers["X-Signature"])


def test_the_record_of_tries_is_a_ring_buffer(receiver):
    hooks = Webhooks("k", "s", lambda: {"webhook_url": receiver.url}, policy=RetryPolicy(), log_size=2)
    for n in range(3):
        hooks.emit({"type": "user.updated", "n": n})
    hooks.wait_idle()
    assert hooks.total == 3
    assert len(hooks.deliveries) == 2


def test_reset_restores_the_policy_and_forgets_the_tries(sc, fast, receiver):
    fast.webhooks.policy.try_timeout_s = 0.1
    _user_update(sc, receiver.url)
    fast.webhooks.wait_idle()
    fast.reset()
    assert fast.webhooks.policy == fast.webhooks.default_policy
    assert fast.webhook_deliveries == [] and fast.webhooks.total == 0


@pytest.fixture
def second_receiver() -> Iterator[Receiver]:
    yield from _served()


def test_event_hooks_each_get_their_own_event_types_signed_and_retried_on_their_own(
    gs, sc, fast, receiver, second_receiver
):
    """Stream's multi-event hooks: every enabled webhook hook is a target of its own (its URL, its event types,
    empty = all), each delivery signed and retried by Stream's policy under its own X-Webhook-Id."""

    gs.update_app(
        event_hooks=[
            EventHook(hook_type="webhook", enabled=True, webhook_url=receiver.url, event_types=["user.updated"]),
            EventHook(hook_type="webhook", enabled=True, webhook_url=second_receiver.url, event_types=[]),
            EventHook(hook_type="webhook", enabled=False, webhook_url=second_receiver.url, event_types=[]),
        ]
    )
    hooks = gs.get_app().data.app.event_hooks
    assert [(h.webhook_url, h.event_types, h.enabled) for h in hooks] == [
        (receiver.url, ["user.updated"], True),
        (second_receiver.url, [], True),
        (second_receiver.url, [], False),
    ]
    assert all(h.id for h in hooks) and len({h.id for h in hooks}) == 3

    receiver.answer(503)  # the first hook's first try fails: only that hook is tried again
    sc.upsert_user({"id": "ann"})
    sc.upsert_user({"id": "ann", "name": "Ann"})  # user.updated
    channel = sc.channel("messaging", "hooks", {"members": ["ann"]})
    channel.create("ann")
    channel.send_message({"text": "hi"}, "ann")  # message.new: only the all-events hook wants it
    fast.webhooks.wait_idle()

    first = [(h["X-Webhook-Attempt"], json.loads(body)["type"]) for h, body in receiver.received]
    assert first == [("1", "user.updated"), ("2", "user.updated")]
    second = {json.loads(body)["type"] for _, body in second_receiver.received}
    assert {"user.updated", "message.new"} <= second
    assert len(second_receiver.received) == len({h["X-Webhook-Id"] for h, _ in second_receiver.received})
    for headers, body in [*receiver.received, *second_receiver.received]:
        assert headers["X-Signature"] == hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    first_ids = {h["X-Webhook-Id"] for h, _ in receiver.received}
    assert len(first_ids) == 1 and first_ids.isdisjoint({h["X-Webhook-Id"] for h, _ in second_receiver.received})

    # The list is replaced as a whole: a hook left out is deleted, a known id is updated in place.
    kept = hooks[1]
    gs.update_app(event_hooks=[EventHook(id=kept.id, hook_type="webhook", enabled=True, webhook_url=receiver.url)])
    assert [(h.id, h.webhook_url) for h in gs.get_app().data.app.event_hooks] == [(kept.id, receiver.url)]


def test_an_app_without_event_hooks_has_one_webhook_url(gs, emu, receiver):
    """An app Stream has not migrated to multi-event hooks: GET /app shows none, and setting them is refused."""

    emu.state.app["_multi_event_hooks"] = False
    assert gs.get_app().data.app.event_hooks == []
    with pytest.raises(StreamApiException) as refused:
        gs.update_app(event_hooks=[EventHook(hook_type="webhook", enabled=True, webhook_url=receiver.url)])
    assert refused.value.code == 4 and "event_hooks are not enabled for this app" in str(refused.value)
