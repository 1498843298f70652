"""Stream's health as /readyz reports it: one authenticated ping at most once a minute per process, cached.

Stream's health never decides readiness (the service keeps serving through a Stream outage); it is shown as
the `stream` field of /readyz and as the onecrew_stream_up gauge.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from onecrew_chat.db import utcnow
from onecrew_chat.logging import get_logger
from onecrew_chat.metrics import STREAM_UP
from onecrew_chat.runtime import Runtime, Shared

log = get_logger(__name__)

CHECK_EVERY_S = 60.0
PING_TIMEOUT_S = 1.0


@dataclass
class StreamHealth:
    """The last check: up or down, when, and why not."""

    up: bool
    checked_at: datetime
    checked_mono: float
    ms: float
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "status": "up" if self.up else "down",
            "checked_at": self.checked_at.isoformat().replace("+00:00", "Z"),
            "ms": self.ms,
        }
        if self.error:
            body["error"] = self.error
        return body


class StreamHealthCache:
    """At most one ping per CHECK_EVERY_S; concurrent probes share the one in flight."""

    def __init__(self, every_s: float = CHECK_EVERY_S) -> None:
        self.every_s = every_s
        self.last: StreamHealth | None = None
        self._lock = asyncio.Lock()

    async def get(self, ping: Callable[[], Awaitable[object]]) -> StreamHealth:
        async with self._lock:
            if self.last is None or time.monotonic() - self.last.checked_mono >= self.every_s:
                self.last = await _check(ping)
            return self.last


async def _check(ping: Callable[[], Awaitable[object]]) -> StreamHealth:
    started = time.perf_counter()
    error = None
    try:
        await asyncio.wait_for(ping(), timeout=PING_TIMEOUT_S)
    except TimeoutError:
        error = f"no answer within {PING_TIMEOUT_S:g} s"
    except Exception as exc:  # any failure means "down"; readiness does not depend on it
        detail = str(exc).splitlines()[0][:200] if str(exc) else ""
        error = type(exc).__name__ + (f": {detail}" if detail else "")
    STREAM_UP.set(0 if error else 1)
    if error:
        log.warning("health.stream_down", error=error)
    ms = round((time.perf_counter() - started) * 1000, 1)
    return StreamHealth(up=error is None, checked_at=utcnow(), checked_mono=time.monotonic(), ms=ms, error=error)


_CACHE = Shared("Stream health", lambda _runtime: StreamHealthCache())


async def stream_health(runtime: Runtime) -> StreamHealth:
    """This process's cached Stream health (a ping when the cache is older than a minute)."""
    return await runtime.shared(_CACHE).get(runtime.stream.ping)
