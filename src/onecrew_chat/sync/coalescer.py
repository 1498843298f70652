"""Identity upserts of concurrent requests sent to Stream together, paced by Stream's rate limits.

Everything that needs identities in Stream joins here: tokens, creates of new pairs, the prepare path and the
worker's provisioning (`sync.channels.finish`). A request whose mirror rows are fresh never comes here (no call, no
wait). The others join the open batch with the profiles and mirror rows they already read, in one of two ways:

- `ensure` (creates, prepare, the worker): the request waits until Stream holds its identities, since it adds them
  to a channel next. The batch is sent when Stream's limits allow a call (`sync.pacing`: the per-second limit, the
  minute's remaining calls from the headers, a 429's reset) and it holds 100 identities; or when no identity joined
  it for `quiet_s` (5 ms), no other such request is still reading its mirror rows on its way here (`arriving`), and
  no earlier batch is still on its way to Stream (group commit: while Stream answers one batch, the next one
  fills); or `max_wait_s` (1 s) after it opened. A request waits for Stream's limits only within its own deadline,
  and a batch Stream refuses anyway (429: another process spent the budget) is sent again after the reset for the
  requests whose deadline allows it.
- `queue` (tokens): the request goes on at once. A token is signed locally and the app's `connectUser` creates or
  updates the user in Stream itself, and every create mirrors its members before adding them, so nothing waits
  for this upsert; it brings the full profile and the mirror row. While nobody waits for any of its identities,
  the batch fills up to 100 while identities keep joining it (sent after `queue_quiet_s` without one, at most
  `queue_max_s` after it opened): a login wave costs about one `UpdateUsers` call per 100 new people.
  What Stream does not take goes to the outbox, whose worker sends it (after a 429 it stays for the next batch).

One batch costs one `UpdateUsers` call (plus one `QueryUsers` for users the directory does not know yet, which
become placeholders) and one short transaction that records the mirror rows; Stream is called with no transaction open.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from onecrew_chat.db import unit_of_work
from onecrew_chat.identity import Identity, Kind
from onecrew_chat.logging import get_logger
from onecrew_chat.models import StreamIdentity
from onecrew_chat.runtime import Runtime, Shared
from onecrew_chat.stream.client import StreamGateway
from onecrew_chat.stream.errors import DeadlineExceeded, StreamRateLimited
from onecrew_chat.sync.deadline import Deadline
from onecrew_chat.sync.mirror import BATCH, IdentityBatch
from onecrew_chat.sync.mirror_record import save
from onecrew_chat.sync.pacing import Pacer
from onecrew_chat.sync.participants import Profile
from onecrew_chat.sync.queue import enqueue_identity_syncs

log = get_logger(__name__)

QUIET_S = 0.005
MAX_WAIT_S = 1.0
# A batch nobody waits for: logins arriving at 30 a second still fill it; a lone login's is sent after 0.5 s.
QUEUE_QUIET_S = 0.5
QUEUE_MAX_S = 5.0
UPDATE_USERS = "UpdateUsers"


@dataclass
class _Waiter:
    """One request waiting for an identity: its future, and the loop time it may wait for Stream's limits until."""

    future: asyncio.Future[None]
    until: float


@dataclass
class _Joined:
    """An identity of the open batch: what its first request read, every request waiting for it, and whether a
    request queued it without waiting (`queue`: the batch then owes it to Stream, through the outbox if it fails)."""

    profile: Profile | None
    row: StreamIdentity | None
    waiting: list[_Waiter] = field(default_factory=list)
    queued: bool = False


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
        queue_quiet_s: float = QUEUE_QUIET_S,
        queue_max_s: float = QUEUE_MAX_S,
        max_batch: int = BATCH,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.stream = stream
        self.deadline_s = deadline_s
        self.quiet_s = quiet_s
        self.max_wait_s = max_wait_s
        self.queue_quiet_s = queue_quiet_s
        self.queue_max_s = queue_max_s
        self.max_batch = max_batch
        self.pacer = Pacer(stream, UPDATE_USERS)
        self._open: dict[Identity, _Joined] = {}
        self._urgent = 0  # identities of the open batch that a request is waiting for
        self._opened_at = 0.0
        self._joined_at = 0.0  # when an identity last joined the open batch
        self._timer: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self.batches_sent = 0
        # Requests between their start and joining (or not needing) a batch: more identities are on their way.
        self.arriving = 0

    @contextlib.contextmanager
    def arrival(self) -> Iterator[None]:
        """Wrap a create until it joins a batch: while any is on its way, a quiet batch waits for it.

        An arrival inside another one is a no-op. Joining a batch (`ensure`, `queue`) ends the request's arrival.
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

    @property
    def idle(self) -> bool:
        """No open batch, and no batch on its way to Stream."""
        return not self._open and not self._sending

    def depart(self) -> None:
        """The current request joins a batch now, or needs none: it no longer counts as arriving."""
        mark = _ARRIVAL.get()
        if mark is not None and mark.coalescer is self:
            mark.depart()

    async def ensure(self, identity: Identity, read: IdentityBatch, *, wait_s: float) -> None:
        """Return once Stream holds `identity` (with the profile in `read`); raises what its batch met.

        `wait_s`: how long the caller may wait for Stream's rate limits to allow its batch (what is left of its
        deadline). When the limits allow no call within it, StreamRateLimited is raised at once, without joining.
        """
        self.depart()
        loop = asyncio.get_running_loop()
        allowed_in = self.pacer.wait_s()
        if allowed_in > wait_s:
            raise self._limited(allowed_in)
        future: asyncio.Future[None] = loop.create_future()
        self._join(
            identity,
            read.profile(identity),
            read.mirror.get(identity.stream_id),
            [_Waiter(future, loop.time() + wait_s)],
        )
        await future

    def queue(self, identity: Identity, read: IdentityBatch) -> None:
        """Have Stream hold `identity` without waiting for it: it joins the open batch, which, while nobody waits for
        any of its identities, fills up to 100 while more keep joining (a login wave: one call per 100 new people).
        What Stream does not take (it fails, or the process stops first) goes to the outbox (`_owed`, `close`)."""
        self.depart()
        self._join(identity, read.profile(identity), read.mirror.get(identity.stream_id), [], queued=True)

    async def send(
        self, read: IdentityBatch, identities: list[Identity], *, placeholder_ok: bool, deadline: Deadline
    ) -> int:
        """`IdentityBatch.send` for a provisioning run: the identities the directory knows that Stream lacks (or holds
        outdated) go in shared batches, waiting for Stream's limits within `deadline`; unknown ones (placeholders,
        rare) are sent by the run itself. Returns how many identities needed sending."""
        missing, stale, unknown = read.needs(identities, placeholder_ok=placeholder_ok)
        if unknown:
            await read.send(self.stream, unknown, placeholder_ok=placeholder_ok, deadline=deadline)
        shared = [profile.identity for profile in missing + stale]
        if shared:
            waits = [self.ensure(identity, read, wait_s=deadline.remaining_s()) for identity in shared]
            try:
                results = await asyncio.wait_for(
                    asyncio.gather(*waits, return_exceptions=True), timeout=deadline.remaining_s()
                )
            except TimeoutError:
                raise DeadlineExceeded.after(UPDATE_USERS, None, deadline.deadline_s) from None
            for result in results:
                if isinstance(result, BaseException):
                    raise result
        return len(shared) + len(unknown)

    def _join(
        self,
        identity: Identity,
        profile: Profile | None,
        row: StreamIdentity | None,
        waiters: list[_Waiter],
        *,
        queued: bool = False,
    ) -> None:
        loop = asyncio.get_running_loop()
        joined = self._open.get(identity)
        if joined is None:
            if not self._open:
                self._opened_at = loop.time()
            joined = self._open[identity] = _Joined(profile, row)
        self._joined_at = loop.time()
        if waiters and not joined.waiting:
            self._urgent += 1
        joined.waiting.extend(waiters)
        joined.queued = joined.queued or queued
        self._arm(loop)

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        """(Re)start the timer: when Stream's limits allow a call, and the batch is full or done filling."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._open:
            return
        delay = self.pacer.wait_s()
        if len(self._open) < self.max_batch:
            if self._urgent:
                delay = max(delay, min(self.quiet_s, self._opened_at + self.max_wait_s - loop.time()))
            else:
                delay = max(delay, self._queue_until() - loop.time())
        self._timer = loop.call_later(max(0.0, delay), self._fire)

    def _fire(self) -> None:
        """Send the next batch, unless Stream's limits allow no call yet, or it is not full and still filling."""
        self._timer = None
        loop = asyncio.get_running_loop()
        if self.pacer.wait_s() > 0:
            self._arm(loop)
            return
        if self._urgent:
            filling = (self._sending or self.arriving) and loop.time() < self._opened_at + self.max_wait_s
        else:  # nobody waits: fill while identities keep coming
            filling = loop.time() < self._queue_until()
        if len(self._open) < self.max_batch and filling:
            self._arm(loop)
            return
        self._send_next(loop)

    def _queue_until(self) -> float:
        """When a batch nobody waits for is sent if not full: `queue_quiet_s` after the last identity joined it, at
        most `queue_max_s` after it opened."""
        return min(self._joined_at + self.queue_quiet_s, self._opened_at + self.queue_max_s)

    def _send_next(self, loop: asyncio.AbstractEventLoop) -> None:
        """Send up to `max_batch` identities of the open batch; the rest stay open for the next call."""
        if not self._open:
            return
        identities = list(self._open)[: self.max_batch]
        batch = {identity: self._open.pop(identity) for identity in identities}
        self._urgent -= sum(1 for joined in batch.values() if joined.waiting)
        self.pacer.started()
        task = loop.create_task(self._send(batch), name="identity-batch")
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)
        if self._open:
            self._opened_at = loop.time()
            self._arm(loop)

    async def _send(self, batch: dict[Identity, _Joined]) -> None:
        """One batch: send (no transaction open), record what Stream accepted, then let every request go on."""
        self.batches_sent += 1
        read = IdentityBatch(
            {i: j.profile for i, j in batch.items() if j.profile is not None},
            {i.stream_id: j.row for i, j in batch.items()},
        )
        loop = asyncio.get_running_loop()
        # A 429 is raised at once: the batch's requests decide whether to wait for the reset (see `_refused`).
        deadline = Deadline(self.deadline_s, wait_rate_limits=False)
        failure: BaseException | None = None
        try:
            # The caller's own user may not have reached our directory yet (a valid JWT proves it exists); a
            # company always has (acting as it needs an accepted membership), so it never becomes a placeholder.
            known = [i for i in batch if i.kind is Kind.USER or read.profile(i) is not None]
            if known:  # one call for users and companies alike
                await read.send(self.stream, known, placeholder_ok=True, deadline=deadline)
            unknown = [i for i in batch if i.kind is Kind.COMPANY and read.profile(i) is None]
            if unknown:  # raises UnknownIdentity
                await read.send(self.stream, unknown, placeholder_ok=False, deadline=deadline)
        except StreamRateLimited as exc:
            failure = exc
            self.pacer.refused(exc.retry_after_s)
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
        if isinstance(failure, StreamRateLimited):
            self._refused(loop, read, batch, failure)
            return
        if failure is not None:
            await self._owed([i for i, j in batch.items() if j.queued and i.stream_id not in read.accepted])
        for joined in batch.values():
            for waiter in joined.waiting:
                if waiter.future.done():
                    continue
                if failure is None:
                    waiter.future.set_result(None)
                else:
                    waiter.future.set_exception(failure)

    def _refused(
        self,
        loop: asyncio.AbstractEventLoop,
        read: IdentityBatch,
        batch: dict[Identity, _Joined],
        failure: StreamRateLimited,
    ) -> None:
        """Stream refused the batch (429): requests that may wait past the reset join the next batch, the rest fail."""
        allowed_at = loop.time() + self.pacer.wait_s()
        for identity, joined in batch.items():
            staying = [w for w in joined.waiting if not w.future.done() and w.until >= allowed_at]
            for waiter in joined.waiting:
                if waiter not in staying and not waiter.future.done():
                    waiter.future.set_exception(failure)
            if (staying or joined.queued) and identity.stream_id not in read.accepted:
                self._join(identity, joined.profile, joined.row, staying, queued=joined.queued)
            else:
                for waiter in staying:
                    waiter.future.set_result(None)

    async def _owed(self, identities: list[Identity]) -> None:
        """Queue in the outbox the identities a request queued that Stream did not take (its worker sends them)."""
        if not identities:
            return
        try:
            async with unit_of_work(self.sessionmaker) as session:
                await enqueue_identity_syncs(session, [identity.stream_id for identity in identities])
        except Exception as exc:  # the next create, token or reconcile finds the mirror row missing and sends it
            log.warning("identities.not_queued", count=len(identities), error=str(exc)[:300])
            return
        log.info("identities.sync_deferred", count=len(identities))

    async def close(self) -> None:
        """The process stops: identities queued but not sent go to the outbox; batches on their way finish."""
        if self._timer is not None:
            self._timer.cancel()
        owed = [identity for identity, joined in self._open.items() if joined.queued]
        for waiter in (waiter for joined in self._open.values() for waiter in joined.waiting):
            if not waiter.future.done():
                waiter.future.set_exception(self._limited(self.max_wait_s))
        self._open, self._urgent, self._timer = {}, 0, None
        await self._owed(owed)
        if self._sending:
            await asyncio.wait(set(self._sending), timeout=self.deadline_s)

    def _limited(self, wait_s: float) -> StreamRateLimited:
        words = f"Stream's UpdateUsers limit allows the next call in {wait_s:.2f} s; not sent"
        return StreamRateLimited(words, operation=UPDATE_USERS, status=429, retry_after_s=wait_s)


_COALESCER = Shared(
    "identity coalescer",
    lambda runtime: IdentityCoalescer(
        runtime.sessionmaker, runtime.stream, deadline_s=runtime.settings.provision_deadline_s
    ),
)


def coalescer(runtime: Runtime) -> IdentityCoalescer:
    """The process's coalescer (one per runtime, made on first use)."""
    return runtime.shared(_COALESCER)


async def close_coalescer(runtime: Runtime) -> None:
    """`IdentityCoalescer.close` for the process's coalescer, if it made one."""
    made = runtime.made(_COALESCER)
    if made is not None:
        await made.close()
