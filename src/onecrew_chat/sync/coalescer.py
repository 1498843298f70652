"""Identity upserts of concurrent requests sent to Stream together.

A login wave makes many first-time token requests at once, each needing its identity in Stream. A request whose
mirror row is fresh never comes here (no call, no wait). The others join the open batch with the profile and mirror
row they already read. The batch is sent when it holds 100 identities; or when no identity joined it for
`quiet_s` (5 ms), no other request is still reading its mirror row on its way here (`arriving`), and no earlier
batch is still on its way to Stream (group commit: while Stream answers one batch, the next one fills); or
`max_wait_s` (1 s) after it opened, whichever comes first. A lone first token waits 5 ms more than it would
alone; a wave of 1,000 first logins costs 10 calls instead of 1,000 (Stream allows 300 upserts a minute). One batch costs one `UpdateUsers` call
(plus one `QueryUsers` for users the directory does not know yet, which become placeholders) and one short
transaction that records the mirror rows; then every request of the batch goes on. Stream is called with no
transaction open, as everywhere else.

Stream's rate limit is not waited out here: a token is signed locally and works before Stream holds the user
(`connectUser` creates it), so a batch answered 429 fails at once and its requests queue their identities in the
outbox, whose worker sends them 100 per call once the reset has passed. Until that reset, later batches are not
sent at all (each would be another refused call) and fail the same way. Without this, a steady stream of lone first
logins (more than Stream's 10 `UpdateUsers` a second) made every eleventh request of a second wait for the next
second: the bench's "token: new identity" at concurrency 1 had p50 14 ms but p95 860 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from onecrew_chat.identity import Identity, Kind
from onecrew_chat.logging import get_logger
from onecrew_chat.models import StreamIdentity
from onecrew_chat.stream.client import StreamGateway
from onecrew_chat.stream.errors import StreamRateLimited
from onecrew_chat.sync.deadline import Deadline
from onecrew_chat.sync.mirror import BATCH, IdentityBatch, save
from onecrew_chat.sync.participants import Profile

if TYPE_CHECKING:
    from onecrew_chat.runtime import Runtime

log = get_logger(__name__)

QUIET_S = 0.005
MAX_WAIT_S = 1.0
# A 429 without a reset time: how long batches are not sent (Stream's per-second window).
RATE_LIMIT_PAUSE_S = 1.0
# The longest pause a reset time can ask for (Stream's per-minute window).
MAX_RATE_LIMIT_PAUSE_S = 60.0
_KEY = "identity_coalescer"


@dataclass
class _Joined:
    """An identity of the open batch: what its first request read, and every request waiting for it."""

    profile: Profile | None
    row: StreamIdentity | None
    waiting: list[asyncio.Future[None]] = field(default_factory=list)


class _Arrival:
    """One request counted in `arriving`, until it departs (joins a batch) or ends."""

    def __init__(self, coalescer: IdentityCoalescer) -> None:
        self.coalescer = coalescer
        self.counted = True

    def depart(self) -> None:
        if self.counted:
            self.counted = False
            self.coalescer.arriving -= 1


_ARRIVAL: contextvars.ContextVar[_Arrival | None] = contextvars.ContextVar("identity_arrival", default=None)


class IdentityCoalescer:
    """Batches the identity upserts of concurrent requests (one per process, see `coalescer`)."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        stream: StreamGateway,
        *,
        deadline_s: float,
        quiet_s: float = QUIET_S,
        max_wait_s: float = MAX_WAIT_S,
        max_batch: int = BATCH,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.stream = stream
        self.deadline_s = deadline_s
        self.quiet_s = quiet_s
        self.max_wait_s = max_wait_s
        self.max_batch = max_batch
        self._open: dict[Identity, _Joined] = {}
        self._opened_at = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self.batches_sent = 0
        # Until this loop time Stream refuses UpdateUsers (a 429's reset): batches fail without a call.
        self.limited_until = 0.0
        # Requests between their start and joining (or not needing) a batch: more identities are on their way.
        self.arriving = 0

    @contextlib.contextmanager
    def arrival(self) -> Iterator[None]:
        """Wrap a token request until it joins a batch: while any is on its way, a quiet batch waits for it.

        The token route wraps the whole request (its directory and mirror reads included); `mirror_or_queue` wraps
        its mirror read, a no-op inside the route's. Joining a batch (`ensure`) ends the request's arrival.
        """
        outer = _ARRIVAL.get()
        if outer is not None and outer.coalescer is self:
            yield  # counted already by an arrival around this one (until it joins a batch)
            return
        mark = _Arrival(self)
        self.arriving += 1
        token = _ARRIVAL.set(mark)
        try:
            yield
        finally:
            _ARRIVAL.reset(token)
            mark.depart()

    def _depart(self) -> None:
        """The current request joins a batch now: it no longer counts as arriving."""
        mark = _ARRIVAL.get()
        if mark is not None and mark.coalescer is self:
            mark.depart()

    async def ensure(self, identity: Identity, read: IdentityBatch) -> None:
        """Return once Stream holds `identity` (with the profile in `read`); raises what its batch met."""
        self._depart()
        loop = asyncio.get_running_loop()
        if loop.time() < self.limited_until:
            raise self._still_limited(loop)
        future: asyncio.Future[None] = loop.create_future()
        joined = self._open.get(identity)
        if joined is None:
            if not self._open:
                self._opened_at = loop.time()
            joined = self._open[identity] = _Joined(read.profile(identity), read.mirror.get(identity.stream_id))
        joined.waiting.append(future)
        if len(self._open) >= self.max_batch:
            self._send_open()
        else:
            self._arm(loop)
        await future

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        """(Re)start the timer: send after `quiet_s` without a newcomer, and no later than `max_wait_s` after opening."""
        if self._timer is not None:
            self._timer.cancel()
        left = self._opened_at + self.max_wait_s - loop.time()
        self._timer = loop.call_later(max(0.0, min(self.quiet_s, left)), self._quiet)

    def _quiet(self) -> None:
        """No newcomer for `quiet_s`: send, unless more are arriving or an earlier batch is still on its way to Stream
        and there is time left to fill this one."""
        loop = asyncio.get_running_loop()
        if (self._sending or self.arriving) and loop.time() < self._opened_at + self.max_wait_s:
            self._arm(loop)
            return
        self._send_open()

    def _send_open(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._open = self._open, {}
        if batch:
            task = asyncio.get_running_loop().create_task(self._send(batch), name="identity-batch")
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, batch: dict[Identity, _Joined]) -> None:
        """One batch: send (no transaction open), record what Stream accepted, then let every request go on."""
        self.batches_sent += 1
        read = IdentityBatch(
            {i: j.profile for i, j in batch.items() if j.profile is not None},
            {i.stream_id: j.row for i, j in batch.items()},
        )
        loop = asyncio.get_running_loop()
        # A 429 is raised at once (see the module's docstring); other transient errors are retried as usual.
        deadline = Deadline(self.deadline_s, wait_rate_limits=False)
        failure: BaseException | None = None
        if loop.time() < self.limited_until:
            failure = self._still_limited(loop)
            batch_to_send: dict[Identity, _Joined] = {}
        else:
            batch_to_send = batch
        try:
            # The caller's own user may not have reached our directory yet (a valid JWT proves it exists); a
            # company always has (acting as it needs an accepted membership), so it never becomes a placeholder.
            for kind, placeholder_ok in ((Kind.USER, True), (Kind.COMPANY, False)):
                identities = [i for i in batch_to_send if i.kind is kind]
                if identities:
                    await read.send(self.stream, identities, placeholder_ok=placeholder_ok, deadline=deadline)
        except StreamRateLimited as exc:
            failure = exc
            pause = exc.retry_after_s if exc.retry_after_s is not None else RATE_LIMIT_PAUSE_S
            self.limited_until = max(self.limited_until, loop.time() + min(MAX_RATE_LIMIT_PAUSE_S, pause))
        except Exception as exc:  # handed to every request of the batch, which decides what to do with it
            failure = exc
        try:
            await save(self.sessionmaker, read)  # what Stream accepted (or may hold), whatever failed after it
        except Exception as exc:
            failure = failure or exc
        log.info(
            "identities.batch_sent",
            identities=len(batch),
            failed=failure is not None,
            rate_limited=isinstance(failure, StreamRateLimited),
        )
        for joined in batch.values():
            for future in joined.waiting:
                if future.done():
                    continue
                if failure is None:
                    future.set_result(None)
                else:
                    future.set_exception(failure)

    def _still_limited(self, loop: asyncio.AbstractEventLoop) -> StreamRateLimited:
        left = max(0.0, self.limited_until - loop.time())
        return StreamRateLimited(
            f"Stream refused UpdateUsers (429) and resets in {left:.2f} s; not sent",
            operation="UpdateUsers",
            status=429,
            retry_after_s=left,
        )


def coalescer(runtime: Runtime) -> IdentityCoalescer:
    """The process's coalescer (one per runtime, made on first use)."""
    found = runtime.extras.get(_KEY)
    if found is None:
        found = runtime.extras[_KEY] = IdentityCoalescer(
            runtime.sessionmaker, runtime.stream, deadline_s=runtime.settings.provision_deadline_s
        )
    assert isinstance(found, IdentityCoalescer)
    return found
