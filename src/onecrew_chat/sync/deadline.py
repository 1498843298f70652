"""One time budget for a provisioning run, shared by its Stream calls and by its wait for another run's claim."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

from onecrew_chat.stream.errors import DeadlineExceeded
from onecrew_chat.stream.retry import RetryPolicy

T = TypeVar("T")

# A claim is held for one run's Stream calls (tens of milliseconds): look again soon, not after seconds.
POLL_CAP_S = 0.1
# Calls of one run in flight at once (a large group's upserts and member batches): well within Stream's
# per-second limits (UpdateUsers and UpdateChannel allow about 10 a second).
CONCURRENT_CALLS = 4


class Deadline(RetryPolicy):
    """A RetryPolicy started once per request or worker attempt: every Stream call and wait of the run shares it.

    `run` retries a Stream operation by error class within what is left (see RetryPolicy); `poll` waits for a
    condition the database cannot wait on for us within a bound (a claim another run holds) within the same budget.
    """

    async def poll(
        self,
        attempt: Callable[[], Awaitable[T | None]],
        *,
        name: str,
        wake: Callable[[], asyncio.Event | None] | None = None,
    ) -> T:
        """Call `attempt` until it returns something other than None, with jittered waits; DeadlineExceeded at the end.

        `wake` gives an event that ends a wait early (set by a holder in this process when it is done).
        """
        started = self.clock()
        tries = 0
        while True:
            result = await attempt()
            if result is not None:
                return result
            wait = min(POLL_CAP_S, self.backoff_s(tries))
            tries += 1
            if self.clock() + wait >= self.expires_at:
                raise DeadlineExceeded.after(name, None, self.clock() - started)
            event = wake() if wake is not None else None
            if event is None:
                await self.sleep(wait)  # backoff between polls, bounded by the deadline
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), wait)

    async def each(self, calls: list[Callable[[], Awaitable[None]]], *, limit: int = CONCURRENT_CALLS) -> None:
        """Run independent calls of this run at most `limit` at a time; raise the first failure once all ended.

        Every call still ends (none is cancelled midway), so what Stream accepted is known to the caller.
        """
        gate = asyncio.Semaphore(limit)

        async def gated(call: Callable[[], Awaitable[None]]) -> None:
            async with gate:
                await call()

        results = await asyncio.gather(*(gated(call) for call in calls), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
