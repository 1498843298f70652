"""One cheap authenticated Stream call (GetApp) that tells apart: fine, credentials refused, and unreachable.

Used by `onecrew-chat status`, GET /api/internal/status and the start-up check of `serve` and `worker`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Literal

from onecrew_chat.stream.client import StreamGateway
from onecrew_chat.stream.errors import StreamError, StreamRateLimited, StreamRequestError

Credentials = Literal["ok", "rejected", "unknown"]
AUTH_STATUSES = (401, 403)


@dataclass(frozen=True)
class StreamProbe:
    """What one GetApp call said: reachable (Stream answered), credentials, and the error in words if any."""

    reachable: bool
    credentials: Credentials
    ms: float
    status: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Stream answered and accepted the key and secret."""
        return self.reachable and self.credentials == "ok"


async def probe_stream(gateway: StreamGateway, *, timeout_s: float) -> StreamProbe:
    """Call GetApp once (no retry) within `timeout_s` and classify the outcome; never raises."""
    started = time.perf_counter()

    def elapsed() -> float:
        return round((time.perf_counter() - started) * 1000, 1)

    try:
        await asyncio.wait_for(gateway.ping(), timeout=timeout_s)
    except TimeoutError:
        return StreamProbe(False, "unknown", elapsed(), error=f"no answer within {timeout_s:g} s")
    except StreamRequestError as exc:
        if exc.status in AUTH_STATUSES:
            return StreamProbe(True, "rejected", elapsed(), exc.status, _words(exc))
        # Stream answered with another refusal: it is reachable and the signature was accepted.
        return StreamProbe(True, "ok", elapsed(), exc.status, _words(exc))
    except StreamRateLimited as exc:
        return StreamProbe(True, "unknown", elapsed(), exc.status, _words(exc))
    except StreamError as exc:
        return StreamProbe(False, "unknown", elapsed(), exc.status, _words(exc))
    return StreamProbe(True, "ok", elapsed())


def _words(exc: StreamError) -> str:
    return (exc.message or type(exc).__name__).splitlines()[0][:200]
