"""One time budget shared by every Stream call of a provisioning run (each call retried within what is left)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from onecrew_chat.stream.errors import DeadlineExceeded
from onecrew_chat.stream.retry import RetryPolicy

T = TypeVar("T")


class Deadline:
    """Runs Stream operations under RetryPolicy, each with the time left of one overall deadline."""

    def __init__(self, deadline_s: float, *, clock: Callable[[], float] = time.monotonic, **policy: Any):
        self.deadline_s = deadline_s
        self.clock = clock
        self.policy = policy
        self.started = clock()

    def remaining_s(self) -> float:
        """Seconds left before the deadline (never negative)."""
        return max(0.0, self.started + self.deadline_s - self.clock())

    async def run(
        self,
        operation: Callable[[], Awaitable[T]],
        *,
        repair: Callable[[list[str]], Awaitable[None]] | None = None,
        name: str,
    ) -> T:
        """Run one operation with retries by error class, raising DeadlineExceeded once the budget is spent."""
        left = self.remaining_s()
        if left <= 0:
            raise DeadlineExceeded.after(name, None, self.deadline_s)
        return await RetryPolicy(left, clock=self.clock, **self.policy).run(operation, repair=repair, name=name)
