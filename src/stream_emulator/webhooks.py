"""Webhook delivery, signed the way Stream signs it, off the request path.

Each event is POSTed to the app's webhook_url with `X-Signature` (hex HMAC-SHA256 of the raw body
with the API secret), `X-Webhook-Id`, `X-Webhook-Attempt` and `X-Api-Key`. Delivery runs as a task
on the server's event loop, so a slow receiver never slows an API response. Every attempt is
recorded, and tests wait on the record. There is one attempt per event; Stream's retries are not
emulated.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import httpx

DELIVERY_TIMEOUT_S = 6.0


@dataclass(frozen=True)
class WebhookDelivery:
    """One delivery attempt: what was sent and what came back (status None = no answer)."""

    event_type: str
    webhook_id: str
    url: str
    body: bytes
    headers: dict[str, str]
    status: int | None
    error: str | None = None
    payload: dict = field(default_factory=dict, compare=False, repr=False)


def sign(body: bytes, secret: str) -> str:
    """Stream's webhook signature: hex HMAC-SHA256 of the raw body keyed with the API secret."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Webhooks:
    """Sends events to the configured URL and keeps the record of deliveries."""

    def __init__(self, api_key: str, api_secret: str, settings: Callable[[], dict]) -> None:
        self._api_key = api_key
        self._api_secret = api_secret
        self._settings = settings
        self._deliveries: list[WebhookDelivery] = []
        self._changed = threading.Condition()
        self._tasks: set[asyncio.Task] = set()
        self._clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}

    @property
    def deliveries(self) -> list[WebhookDelivery]:
        """Every delivery attempt so far, in the order they finished."""
        with self._changed:
            return list(self._deliveries)

    def clear(self) -> None:
        """Forget the recorded deliveries."""
        with self._changed:
            self._deliveries.clear()

    def emit(self, event: dict[str, Any]) -> None:
        """Queue one event for delivery if a webhook URL is set and the type is wanted."""
        settings = self._settings()
        url = settings.get("webhook_url")
        if not url:
            return
        wanted = settings.get("webhook_events") or ()
        if wanted and event["type"] not in wanted:
            return
        body = json.dumps(event, separators=(",", ":")).encode()
        webhook_id = str(uuid.uuid4())
        headers = {
            "Content-Type": "application/json",
            "X-Signature": sign(body, self._api_secret),
            "X-Webhook-Id": webhook_id,
            "X-Webhook-Attempt": "1",
            "X-Api-Key": self._api_key,
        }
        job = self._deliver(event, url, body, headers, webhook_id)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            # Not inside the server (a direct call from a script): deliver on a thread of its own.
            threading.Thread(target=asyncio.run, args=(job,), daemon=True).start()
            return
        task = loop.create_task(job)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, event: dict, url: str, body: bytes, headers: dict[str, str],
                       webhook_id: str) -> None:
        status = error = None
        try:
            response = await self._client().post(url, content=body, headers=headers,
                                                  timeout=DELIVERY_TIMEOUT_S)
            status = response.status_code
        except Exception as exc:  # the receiver's failure is recorded, never raised
            error = f"{type(exc).__name__}: {exc}"
        record = WebhookDelivery(event["type"], webhook_id, url, body, headers, status, error,
                                 event)
        with self._changed:
            self._deliveries.append(record)
            self._changed.notify_all()

    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None or client.is_closed:
            client = httpx.AsyncClient()
            self._clients[loop] = client
        return client

    def wait_for(self, count: int = 1, event_type: str | None = None,
                 timeout: float = 5.0) -> list[WebhookDelivery]:
        """Block until `count` deliveries (of `event_type`) are recorded; TimeoutError if not."""
        def matching() -> list[WebhookDelivery]:
            return [d for d in self._deliveries if event_type is None or d.event_type == event_type]

        deadline = time.monotonic() + timeout
        with self._changed:
            while len(found := matching()) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(found)} of {count} {event_type or ''} webhook "
                                       f"deliveries after {timeout} s")
                self._changed.wait(left)
            return found

    async def wait_for_async(self, count: int = 1, event_type: str | None = None,
                             timeout: float = 5.0) -> list[WebhookDelivery]:
        """wait_for for async code: waits on a worker thread so the event loop keeps serving."""
        return await asyncio.to_thread(self.wait_for, count, event_type, timeout)

    async def aclose(self) -> None:
        """Finish pending deliveries and close the HTTP client of the running loop."""
        pending = [t for t in self._tasks if t.get_loop() is asyncio.get_running_loop()]
        if pending:
            await asyncio.wait(pending, timeout=DELIVERY_TIMEOUT_S)
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()
