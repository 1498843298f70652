"""Time as the emulator keeps it (integer Unix nanoseconds) and as the v1 dialect writes it."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from functools import lru_cache

now_ns = time.time_ns
# The clock of the visibility-delay fault; tests may replace it (stream_emulator.clock.monotonic).
monotonic = time.monotonic


@lru_cache(maxsize=4096)
def rfc3339(ns: int) -> str:
    """RFC 3339 with microseconds and a Z, the way Stream's v1 dialect writes times."""
    seconds, rest = divmod(ns, 1_000_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{stamp}.{rest // 1000:06d}Z"


def parse_time(value: object) -> int | None:
    """Nanoseconds from an ISO 8601 string or a number of nanoseconds; None when absent or bad.

    The v2 spec types request times as numbers while getstream sends ISO strings, so both are accepted
    (docs/reference/stream-api.md#wire-dialects).
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return int(parsed.timestamp() * 1_000_000) * 1000
    return None


# Wall-clock seconds of the rate limiter's windows; tests may replace it
# (stream_emulator.clock.wall).
wall = time.time
