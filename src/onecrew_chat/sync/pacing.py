"""When the next call of one Stream operation may be sent, by Stream's rate limits and the headers it returns.

Stream limits each operation per minute (`x-ratelimit-limit`, 300 for UpdateUsers) and per second at a thirtieth of
that; every answer says how many calls the minute has left (`x-ratelimit-remaining`) and when it resets
(`x-ratelimit-reset`). A caller that batches (the identity coalescer) asks `wait_s` before sending: while it waits,
its batch keeps filling, so a burst costs fewer, fuller calls instead of calls Stream refuses.

- At most the per-second limit of this pacer's own calls in any `window_s` (a little over a second, so that calls
  sent a second apart never land in one of Stream's one-second windows however their latencies differ).
- None while the minute's remaining calls, less the calls sent since that answer, are spent, until its reset.
- None before the reset a 429 named (`refused`).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from onecrew_chat.stream.client import StreamGateway
from onecrew_chat.stream.errors import DeadlineExceeded
from onecrew_chat.sync.deadline import Deadline

# Stream's default for UpdateUsers and most write operations: 300 a minute, so 10 a second.
DEFAULT_PER_MINUTE = 300
WINDOW_S = 1.1
# A 429 without a reset time: Stream's per-second window.
REFUSED_PAUSE_S = 1.0
# The longest a reset time may ask to wait (Stream's per-minute window).
MAX_PAUSE_S = 60.0


class Pacer:
    """Paces one operation's calls made through `started` (one per process and operation)."""

    def __init__(
        self,
        stream: StreamGateway,
        operation: str,
        *,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.stream = stream
        self.operation = operation
        self.window_s = window_s
        self.clock = clock
        self.wall = wall
        self._sent: deque[float] = deque()
        self._since_answer = 0  # calls started since the answer whose headers we hold
        self._answer = stream.rate_limits.get(operation)
        self.refused_until = 0.0

    def per_second(self) -> int:
        """Stream's per-second limit of the operation (a thirtieth of the minute's, as its headers say)."""
        info = self.stream.rate_limits.get(self.operation)
        return max(1, (info.limit if info is not None else DEFAULT_PER_MINUTE) // 30)

    def wait_s(self) -> float:
        """Seconds until the next call may be sent (0: now)."""
        now = self.clock()
        at = max(now, self.refused_until)
        info = self.stream.rate_limits.get(self.operation)
        if info is not self._answer:  # a newer answer (ours or another caller's): its remaining counts from there
            self._answer, self._since_answer = info, 0
        if info is not None and info.remaining - self._since_answer <= 0:
            reset_in = info.reset.timestamp() - self.wall()
            if reset_in > 0:
                at = max(at, now + min(MAX_PAUSE_S, reset_in))
        per_second = self.per_second()
        while self._sent and self._sent[0] <= now - self.window_s:
            self._sent.popleft()
        if len(self._sent) >= per_second:
            at = max(at, self._sent[-per_second] + self.window_s)
        return at - now

    def started(self) -> None:
        """A call is being sent now."""
        self._sent.append(self.clock())
        self._since_answer += 1

    def refused(self, retry_after_s: float | None) -> None:
        """Stream answered 429: no call before its reset (1 s when it named none, at most 60 s)."""
        pause = REFUSED_PAUSE_S if retry_after_s is None else min(MAX_PAUSE_S, retry_after_s)
        self.refused_until = max(self.refused_until, self.clock() + pause)


async def take_turn(pacer: Pacer, deadline: Deadline) -> None:
    """Wait for this process's next turn of the pacer's operation; DeadlineExceeded at once if it comes too late."""
    started = deadline.clock()
    while (wait := pacer.wait_s()) > 0:
        if deadline.clock() + wait >= deadline.expires_at:
            raise DeadlineExceeded.after(pacer.operation, None, deadline.clock() - started)
        await deadline.sleep(wait)  # Stream's limit: the pacer says when the next call fits
    pacer.started()  # no await since the last look: no other caller takes the same turn
