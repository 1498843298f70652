"""RetryPolicy: the one place Stream calls are retried, by error class, inside a deadline."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog

from onecrew_chat import metrics
from onecrew_chat.stream.errors import (
    DeadlineExceeded,
    StreamError,
    StreamRateLimited,
    StreamUnavailable,
    StreamUsersMissing,
)

__all__ = ["DeadlineExceeded", "RetryPolicy"]

T = TypeVar("T")
log = structlog.get_logger(__name__)  # structlog directly: this package imports nothing else of ours


class RetryPolicy:
    """Runs Stream operations until each succeeds, fails for good, or the deadline leaves no room for another try.

    The deadline starts when the policy is made and is shared by every `run`: one policy per request (or per
    worker attempt) bounds all of its Stream calls together.

    - StreamUnavailable (network, timeout, any 5xx or 408 whatever the body): full-jitter exponential backoff,
      rand(0, min(cap, base * 2**n)).
    - StreamRateLimited (429): wait until Stream's reset (plus up to `base_s` of jitter) if that fits the deadline,
      else DeadlineExceeded at once; without a reset time it backs off like StreamUnavailable. With
      `wait_rate_limits=False` it is raised at once (a caller with a better use for the wait, e.g. a token).
    - StreamUsersMissing: `await repair(missing_ids)`, then retry (at most `max_repairs` times); the first retry
      after a repair is immediate, later ones back off with equal jitter (half the exponential step, plus up to
      the other half), so five rounds span at least 0.375 s whatever the random draws.
    - Any other StreamRequestError: raised at once.
    A transient error raised by `repair` itself is waited out like one raised by the operation.
    Each attempt is also cut off when the deadline passes mid-call.
    """

    def __init__(
        self,
        deadline_s: float,
        *,
        base_s: float = 0.05,
        cap_s: float = 1.0,
        max_repairs: int = 3,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        wait_rate_limits: bool = True,
    ):
        if deadline_s <= 0:
            raise ValueError("deadline_s must be positive")
        self.deadline_s = deadline_s
        self.base_s = base_s
        self.cap_s = cap_s
        self.max_repairs = max_repairs
        self.clock = clock
        self.rng = rng
        self.sleep = sleep
        self.wait_rate_limits = wait_rate_limits
        self.expires_at = clock() + deadline_s

    def remaining_s(self) -> float:
        """Seconds left before the deadline (never negative)."""
        return max(0.0, self.expires_at - self.clock())

    def backoff_s(self, attempt: int) -> float:
        """The full-jitter wait before retry number `attempt` (0-based)."""
        return self.rng() * min(self.cap_s, self.base_s * (2.0**attempt))

    async def run(
        self,
        operation: Callable[[], Awaitable[T]],
        *,
        repair: Callable[[list[str]], Awaitable[None]] | None = None,
        name: str,
    ) -> T:
        """Run `operation` under this policy; returns its result or raises StreamError / DeadlineExceeded."""
        started = self.clock()
        deadline = self.expires_at
        backoffs = 0
        repairs = 0
        attempt = 0
        last: StreamError | None = None
        while True:
            attempt += 1
            remaining = deadline - self.clock()
            if remaining <= 0:
                raise DeadlineExceeded.after(name, last, self.clock() - started) from last
            immediate = False
            try:
                return await self._attempt(operation, remaining, name)
            except StreamUsersMissing as error:
                if repair is None or repairs >= self.max_repairs:
                    raise
                repairs += 1
                metrics.STREAM_REPAIRS.inc()
                last = error
                try:
                    await repair(list(error.missing_ids))
                    immediate = repairs == 1
                except (StreamUnavailable, StreamRateLimited) as failed:
                    last = failed  # the repair itself hit a transient error: wait as for that error
            except (StreamUnavailable, StreamRateLimited) as error:
                if isinstance(error, StreamRateLimited) and not self.wait_rate_limits:
                    raise
                last = error
            if immediate:
                wait = 0.0
            elif isinstance(last, StreamRateLimited) and last.retry_after_s is not None:
                wait = last.retry_after_s + self.rng() * self.base_s
            elif isinstance(last, StreamUsersMissing):
                # Users just upserted that Stream does not show yet: equal jitter, so the repair rounds always
                # span a known time (at least 0.375 s over five) instead of possibly all landing in a few ms.
                full = min(self.cap_s, self.base_s * (2.0**backoffs))
                wait = full / 2 + self.rng() * full / 2
                backoffs += 1
            else:
                wait = self.backoff_s(backoffs)
                backoffs += 1
            reason = _reason(last)
            if self.clock() + wait >= deadline:
                # No pointless wait: the next try could not start before the deadline.
                raise DeadlineExceeded.after(name, last, self.clock() - started) from last
            metrics.STREAM_RETRIES.labels(name, reason).inc()
            log.info(
                "stream.retry",
                operation=name,
                reason=reason,
                attempt=attempt,
                wait_ms=round(wait * 1000, 1),
                status=last.status,
                code=last.code,
                missing_ids=getattr(last, "missing_ids", None),
            )
            if wait > 0:
                await self.sleep(wait)  # backoff / retry wait, bounded by the deadline

    async def _attempt(self, operation: Callable[[], Awaitable[T]], remaining: float, name: str) -> T:
        try:
            return await asyncio.wait_for(operation(), timeout=remaining)
        except TimeoutError as exc:
            # The deadline passed mid-call: whether Stream applied the call is unknown, like any timeout.
            last = StreamUnavailable("the call outlived the deadline", operation=name)
            last.__cause__ = exc
            raise DeadlineExceeded.after(name, last, remaining) from last


def _reason(error: StreamError) -> str:
    if isinstance(error, StreamUsersMissing):
        return "users_missing"
    return "rate_limited" if isinstance(error, StreamRateLimited) else "unavailable"
