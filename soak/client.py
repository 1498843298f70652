"""The app's side of the soak: keep-alive HTTP with the app's retries, and a tally of every answer it saw.

The app's ApiClient retries network failures, timeouts and 5xx up to 3 times with a 1, 2, 4 s backoff. A keyed
create is also retried on `409 idempotency_key_in_use` (the service says "retry shortly"), with the same
Idempotency-Key, until it answers or `PATIENCE_S` has passed. A request cut off by a kill keeps being retried
the same way past the app's 3 retries (a user tapping again), because on this shared machine a restarted API
takes longer to serve again than the app's 7 s of backoff; those requests are counted (`Tally.outlasted`).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from soak.chaos import KillLog

TIMEOUT_S = 10.0  # the app's per-attempt timeout
APP_BACKOFF_S = (1.0, 2.0, 4.0)
PATIENCE_S = 90.0  # past the 63 s after which the service takes over a key whose request died


@dataclass
class Seen:
    """One answer (or cut-off attempt) a client saw."""

    kind: str
    status: int  # 0: no answer (connection refused or reset, timeout)
    code: str | None
    in_kill_window: bool
    retry_after: str | None = None
    error: str | None = None


@dataclass
class Tally:
    """Every attempt and every logical request's final outcome."""

    attempts: list[Seen] = field(default_factory=list)
    final: Counter[tuple[str, int]] = field(default_factory=Counter)
    retried: Counter[str] = field(default_factory=Counter)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    unanswered: list[str] = field(default_factory=list)
    outlasted: Counter[str] = field(default_factory=Counter)  # retried past the app's 3 retries (kill window)
    keyed_waits: list[tuple[float, list[str]]] = field(default_factory=list)  # keyed creates that needed retries

    def server_errors(self) -> list[Seen]:
        return [s for s in self.attempts if s.status >= 500]

    def cut_off(self) -> list[Seen]:
        return [s for s in self.attempts if s.status == 0]


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    headers: httpx.Headers
    attempts: int


class AppClient:
    """One keep-alive httpx client shared by every simulated app user."""

    def __init__(self, base_url: str, tally: Tally, kills: KillLog, concurrency: int) -> None:
        limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2)
        self.http = httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT_S, limits=limits)
        self.tally = tally
        self.kills = kills

    async def close(self) -> None:
        await self.http.aclose()

    async def _attempt(self, kind: str, method: str, path: str, **kwargs: Any) -> tuple[Seen, httpx.Response | None]:
        started = time.monotonic()
        try:
            response = await self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            seen = Seen(kind, 0, None, self.kills.overlaps(started, time.monotonic()), error=type(exc).__name__)
            return seen, None
        code = None
        if response.status_code >= 400:
            try:
                code = response.json().get("code")
            except ValueError:
                code = "not_json"
        window = self.kills.overlaps(started, time.monotonic())
        self.tally.latencies.setdefault(kind, []).append(time.monotonic() - started)
        return Seen(kind, response.status_code, code, window, response.headers.get("retry-after")), response

    async def request(self, kind: str, method: str, path: str, *, keyed: bool = False, **kwargs: Any) -> Answer | None:
        """The request with the app's retries; None when no attempt got a final answer."""
        started = time.monotonic()
        attempt = 0
        history: list[str] = []
        while True:
            seen, response = await self._attempt(kind, method, path, **kwargs)
            self.tally.attempts.append(seen)
            history.append(f"{seen.status}{'/' + seen.code if seen.code else ''}")
            attempt += 1
            # The app retries a create whose error says "timeout": the 408 `provisioning_timeout` of a deferred one.
            retryable = seen.status == 0 or seen.status >= 500 or seen.status == 408
            if keyed and seen.status == 409 and seen.code == "idempotency_key_in_use":
                retryable = True
            if not retryable:
                assert response is not None
                self.tally.final[(kind, seen.status)] += 1
                if attempt > 1:
                    self.tally.retried[kind] += 1
                    if keyed:
                        self.tally.keyed_waits.append((time.monotonic() - started, history))
                body = response.json() if response.content else {}
                return Answer(response.status_code, body, response.headers, attempt)
            if attempt > len(APP_BACKOFF_S):
                if not (keyed or seen.in_kill_window) or time.monotonic() - started > PATIENCE_S:
                    break
                if attempt == len(APP_BACKOFF_S) + 1 and not keyed:
                    self.tally.outlasted[kind] += 1
            delay = APP_BACKOFF_S[min(attempt - 1, len(APP_BACKOFF_S) - 1)]
            if seen.retry_after and seen.retry_after.isdigit():
                delay = max(delay, float(seen.retry_after))
            await asyncio.sleep(delay)  # the app's backoff between attempts (client behaviour, not a wait on state)
        self.tally.final[(kind, -1)] += 1
        self.tally.unanswered.append(f"{kind} {method} {path}: {history}")
        return None
