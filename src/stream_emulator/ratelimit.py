"""Stream's rate limits: per operation and platform, per minute and per second (limit / 30).

Stream's docs ("Rate Limits"): limits apply per API endpoint and per platform (server side,
iOS, Android, web each count apart) on a 1-minute window, and also per second at a thirtieth of
the minute's limit; a call over either gets HTTP 429 with code 9. Every answer carries
`x-ratelimit-limit`, `x-ratelimit-remaining` and `x-ratelimit-reset` (Unix seconds), lowercase
(docs/reference/stream-api.md#rate-limits).
The headers are always sent; refusing is switched by `enabled`.
"""

from __future__ import annotations

import threading

from . import clock
from . import operations as op

Headers = list[tuple[bytes, bytes]]


def per_second(limit: int) -> int:
    """The per-second limit Stream derives from a per-minute one."""
    return max(1, limit // 30)


class RateLimiter:
    """Counts calls per (operation, platform) in the current minute and second."""

    def __init__(self, enabled: bool = False) -> None:
        self.enabled = enabled
        self._lock = threading.Lock()
        # (operation, platform) -> [minute, calls in it, second, calls in it]
        self._windows: dict[tuple[str, str], list[int]] = {}

    def reset(self) -> None:
        """Forget every count (the enabled switch stays as it is)."""
        with self._lock:
            self._windows.clear()

    def take(self, operation: str, platform: str, count: bool = True) -> tuple[bool, Headers]:
        """Count one call; (allowed, headers). A refused call is not counted; with count=False
        nothing is counted or refused (the headers of a call refused before it was counted)."""
        limit = op.RATE_LIMITS.get(operation, op.DEFAULT_RATE_LIMIT)
        now = clock.wall()
        second = int(now)
        minute = second // 60 * 60
        with self._lock:
            window = self._windows.get((operation, platform))
            if window is None or window[0] != minute:
                window = self._windows[(operation, platform)] = [minute, 0, second, 0]
            if window[2] != second:
                window[2], window[3] = second, 0
            over_minute = window[1] >= limit
            over_second = window[3] >= per_second(limit)
            refused = count and self.enabled and (over_minute or over_second)
            if count and not refused:
                window[1] += 1
                window[3] += 1
            remaining = max(0, limit - window[1])
        reset = minute + 60
        if refused and not over_minute:
            remaining, reset = 0, second + 1
        return not refused, headers(limit, remaining, reset)


def headers(limit: int, remaining: int, reset: int) -> Headers:
    """The three lowercase rate-limit headers."""
    return [
        (b"x-ratelimit-limit", str(limit).encode()),
        (b"x-ratelimit-remaining", str(remaining).encode()),
        (b"x-ratelimit-reset", str(reset).encode()),
    ]
