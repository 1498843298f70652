"""Webhook delivery as Stream does it: signed, optionally gzipped, retried, off the request path.

Each event goes to every target that wants it (`targets`: the app's webhook_url, and each enabled webhook of
`event_hooks` with its own event types), each target a delivery of its own. Each delivery is POSTed with
`X-Signature` (hex HMAC-SHA256 of the JSON body with the API secret), `X-Webhook-Id` (one UUID per event, the
same on every try), `X-Webhook-Attempt` (1, 2, 3) and `X-Api-Key`. Stream's docs (Webhooks, "Performance and
Error Handling"; docs/reference/stream-api.md#webhooks): a try that answers 408, 429 or 5xx, or times out, is
tried up to 3 times in all; a network error up to 2 times; each try may take 6 s and all tries together at
most 15 s; any other answer ends the delivery.
With the app setting `enable_hook_payload_compression` the body is gzipped and sent with
`Content-Encoding: gzip`, while `X-Signature` stays the HMAC of the uncompressed JSON.

Delivery runs as a task on the server's event loop, so a slow receiver never slows an API response.
Every try is recorded in a ring buffer (the newest `log_size`), and tests wait on the record.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from .faults import Faults

DELIVERY_TIMEOUT_S = 6.0
TOTAL_TIMEOUT_S = 15.0
DEFAULT_LOG_SIZE = 1000


@dataclass
class RetryPolicy:
    """How many tries, how long each, and the pause between them (not documented by Stream:
    `backoff_s`, doubled after each try; tests set 0)."""

    status_attempts: int = 3
    network_attempts: int = 2
    try_timeout_s: float = DELIVERY_TIMEOUT_S
    total_s: float = TOTAL_TIMEOUT_S
    backoff_s: float = 1.0


@dataclass(frozen=True)
class WebhookDelivery:
    """One try: what was sent and what came back (status None = no answer; `error` says why).

    `body` is the bytes on the wire (gzip when compressed); `payload` the event itself.
    """

    event_type: str
    webhook_id: str
    url: str
    body: bytes
    headers: dict[str, str]
    status: int | None
    error: str | None = None
    payload: dict = field(default_factory=dict, compare=False, repr=False)
    attempt: int = 1
    # True when the answer was replaced by an injected fault (the receiver did get the request).
    faulted: bool = False

    @property
    def ok(self) -> bool:
        """Whether this try counted as delivered."""
        return self.status is not None and 200 <= self.status < 300 and not self.faulted


def sign(body: bytes, secret: str) -> str:
    """Stream's webhook signature: hex HMAC-SHA256 of the JSON body keyed with the API secret."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def next_pause(policy: RetryPolicy, attempt: int, elapsed_s: float, *, network: bool) -> float | None:
    """The pause before the next try after `attempt` failed tries taking `elapsed_s` in all, or None to stop.

    Stream's docs: 3 attempts for a 408/429/5xx answer or a timed-out try, 2 for a network error, and all tries
    within 15 s. A receiver slower than the 6 s try timeout still gets its 3rd try: the backoff shrinks to leave
    the last try time of its own (at most half of what is left), and that try is cut to what remains.
    """
    most = policy.network_attempts if network else policy.status_attempts
    left = policy.total_s - elapsed_s
    if attempt >= most or left <= 0:
        return None
    return min(policy.backoff_s * (2 ** (attempt - 1)), left / 2)


def _retryable_status(status: int) -> bool:
    return status in (408, 429) or status >= 500


def compression_on(settings: dict) -> bool:
    """Whether the app asked for gzipped webhook bodies."""
    return (
        bool(settings.get("enable_hook_payload_compression"))
        or str(settings.get("webhook_compression_algorithm") or "").lower() == "gzip"
    )


def targets(settings: dict, event_type: str) -> list[str]:
    """The URLs an event of this type goes to, each delivered on its own (own X-Webhook-Id, own tries):

    - the app's single `webhook_url`, when set, if `webhook_events` is empty or names the type;
    - every enabled `event_hooks` entry of hook_type `webhook` whose `event_types` is empty (every event) or names
      the type. SQS, SNS and pending-message hooks are kept in the settings but not delivered here.
    """
    urls = []
    url = settings.get("webhook_url")
    wanted = settings.get("webhook_events") or ()
    if url and (not wanted or event_type in wanted):
        urls.append(url)
    for hook in settings.get("event_hooks") or ():
        if hook.get("hook_type") != "webhook" or not hook.get("enabled", True) or not hook.get("webhook_url"):
            continue
        types = hook.get("event_types") or ()
        if not types or event_type in types:
            urls.append(hook["webhook_url"])
    return urls


def delivers_anything(settings: dict) -> bool:
    """Whether any target is configured at all (handlers skip building events when not)."""
    return bool(settings.get("webhook_url")) or any(
        hook.get("hook_type") == "webhook" and hook.get("enabled", True) and hook.get("webhook_url")
        for hook in settings.get("event_hooks") or ()
    )


class Webhooks:
    """Sends events to the configured URL, retrying like Stream, and keeps the record of tries."""

    def __init__(
        self,
        api_key: str,
        api_secret: str,
        settings: Callable[[], dict],
        faults: Faults | None = None,
        policy: RetryPolicy | None = None,
        log_size: int = DEFAULT_LOG_SIZE,
    ) -> None:
        self._api_key = api_key
        self._api_secret = api_secret
        self._settings = settings
        self._faults = faults
        self.default_policy = policy or RetryPolicy()
        self.policy = RetryPolicy(**vars(self.default_policy))
        self._deliveries: deque[WebhookDelivery] = deque(maxlen=log_size)
        self.total = 0
        self._changed = threading.Condition()
        self._tasks: set[asyncio.Task] = set()
        self._pending = 0  # deliveries not finished (all their tries), guarded by _changed
        self._clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}

    @property
    def deliveries(self) -> list[WebhookDelivery]:
        """The newest tries (at most the log's size), in the order they finished."""
        with self._changed:
            return list(self._deliveries)

    def clear(self) -> None:
        """Forget the recorded tries and restore the retry policy."""
        with self._changed:
            self._deliveries.clear()
            self.total = 0
            self.policy = RetryPolicy(**vars(self.default_policy))

    def emit(self, event: dict[str, Any]) -> None:
        """Queue one delivery of the event to every target that wants its type (see `targets`)."""
        settings = self._settings()
        for url in targets(settings, event["type"]):
            self._start(self._deliver(event, url, compression_on(settings)))

    def redeliver(self, delivery: WebhookDelivery) -> None:
        """Send a recorded event again under a new X-Webhook-Id, as an at-least-once sender may."""
        settings = self._settings()
        self._start(self._deliver(delivery.payload, delivery.url, compression_on(settings)))

    def _start(self, job: Any) -> None:
        with self._changed:
            self._pending += 1
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            # Not inside the server (a direct call from a script): deliver on a thread of its own.
            threading.Thread(target=asyncio.run, args=(self._own_loop(job),), daemon=True).start()
            return
        task = loop.create_task(job)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _own_loop(self, job: Any) -> None:
        """Run one delivery on a loop of its own, then close that loop's HTTP client."""
        try:
            await job
        finally:
            client = self._clients.pop(asyncio.get_running_loop(), None)
            if client is not None:
                await client.aclose()

    async def _deliver(self, event: dict, url: str, compress: bool) -> None:
        try:
            await self._send_with_retries(event, url, compress)
        finally:
            with self._changed:
                self._pending -= 1
                self._changed.notify_all()

    async def _send_with_retries(self, event: dict, url: str, compress: bool) -> None:
        policy = self.policy
        data = json.dumps(event, separators=(",", ":")).encode()
        body = gzip.compress(data, mtime=0) if compress else data
        headers = {
            "Content-Type": "application/json",
            "X-Signature": sign(data, self._api_secret),
            "X-Webhook-Id": str(uuid.uuid4()),
            "X-Api-Key": self._api_key,
        }
        if compress:
            headers["Content-Encoding"] = "gzip"
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            left = policy.total_s - (time.monotonic() - started)
            tried = await self._try(
                event,
                url,
                body,
                dict(headers, **{"X-Webhook-Attempt": str(attempt)}),
                attempt,
                min(policy.try_timeout_s, left),
            )
            if tried.ok:
                return
            if tried.status is not None and not _retryable_status(tried.status):
                return
            network = tried.status is None and not (tried.error or "").startswith("timeout")
            pause = next_pause(policy, attempt, time.monotonic() - started, network=network)
            if pause is None:
                return
            if pause > 0:
                await asyncio.sleep(pause)

    async def _try(
        self, event: dict, url: str, body: bytes, headers: dict[str, str], attempt: int, timeout: float
    ) -> WebhookDelivery:
        status = error = None
        try:
            response = await self._client().post(url, content=body, headers=headers, timeout=max(timeout, 0.001))
            status = response.status_code
        except httpx.TimeoutException as exc:
            error = f"timeout: {type(exc).__name__}"
        except Exception as exc:  # the receiver's failure is recorded, never raised
            error = f"{type(exc).__name__}: {exc}"
        faulted = False
        if self._faults is not None and status is not None and 200 <= status < 300:
            injected = self._faults.take_webhook_failure()
            if injected is not None:
                faulted = True
                status, error = (
                    (injected or None),
                    (None if injected else "timeout: injected (the receiver got the request)"),
                )
        record = WebhookDelivery(
            event["type"], headers["X-Webhook-Id"], url, body, headers, status, error, event, attempt, faulted
        )
        with self._changed:
            self._deliveries.append(record)
            self.total += 1
            self._changed.notify_all()
        return record

    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None or client.is_closed:
            client = httpx.AsyncClient()
            self._clients[loop] = client
        return client

    def wait_for(
        self,
        count: int = 1,
        event_type: str | None = None,
        timeout: float = 5.0,
        where: Callable[[WebhookDelivery], bool] | None = None,
    ) -> list[WebhookDelivery]:
        """Block until `count` tries (of `event_type`, matching `where`) are recorded; TimeoutError
        if not within `timeout` seconds."""

        def matching() -> list[WebhookDelivery]:
            return [
                d
                for d in self._deliveries
                if (event_type is None or d.event_type == event_type) and (where is None or where(d))
            ]

        deadline = time.monotonic() + timeout
        with self._changed:
            while len(found := matching()) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"{len(found)} of {count} {event_type or ''} webhook deliveries after {timeout} s"
                    )
                self._changed.wait(left)
            return found

    def wait_idle(self, timeout: float = 5.0) -> None:
        """Block until every delivery has finished all its tries; TimeoutError if not in time."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self._pending} webhook deliveries still running after {timeout} s")
                self._changed.wait(left)

    async def wait_idle_async(self, timeout: float = 5.0) -> None:
        """wait_idle for async code (on a worker thread, so the event loop keeps serving)."""
        await asyncio.to_thread(self.wait_idle, timeout)

    async def wait_for_async(
        self,
        count: int = 1,
        event_type: str | None = None,
        timeout: float = 5.0,
        where: Callable[[WebhookDelivery], bool] | None = None,
    ) -> list[WebhookDelivery]:
        """wait_for for async code: waits on a worker thread so the event loop keeps serving."""
        return await asyncio.to_thread(self.wait_for, count, event_type, timeout, where)

    async def aclose(self) -> None:
        """Finish pending deliveries and close the HTTP client of the running loop."""
        pending = [t for t in self._tasks if t.get_loop() is asyncio.get_running_loop()]
        if pending:
            await asyncio.wait(pending, timeout=DELIVERY_TIMEOUT_S)
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()
