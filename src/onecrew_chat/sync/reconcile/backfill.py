"""The identity backfill: send every directory user and company that the mirror says Stream lacks or holds stale.

Resumable by construction: each accepted batch writes its mirror rows at once, and a run sends only what the
mirror does not already show as fresh, so a run that stops (Ctrl-C, Stream down) is finished by running it
again. Missing identities are upserted and stale ones partially updated, at most 100 per call; a 429 waits for
Stream's reset and 5xx back off, within a deadline per batch (the RetryPolicy).

Stream's limit, not one call's round trip, sets the pace: up to IN_FLIGHT calls are in flight while the directory
is read, each started when the operation's Pacer (the rate-limit headers of Stream's answers) allows, so a slow
round trip (a loaded machine, a distant Stream) no longer leaves Stream's allowance unused.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import literal, select

from onecrew_chat.identity import Kind
from onecrew_chat.logging import get_logger
from onecrew_chat.models import Company, StreamIdentity, User
from onecrew_chat.runtime import Runtime
from onecrew_chat.stream.client import counting_calls
from onecrew_chat.stream.errors import StreamBatchError
from onecrew_chat.sync.deadline import Deadline
from onecrew_chat.sync.mirror import BATCH, IdentityBatch, is_fresh
from onecrew_chat.sync.mirror_record import save
from onecrew_chat.sync.pacing import Pacer, take_turn
from onecrew_chat.sync.participants import Profile, company_profile, stream_id_prefix, user_profile

log = get_logger(__name__)

PAGE = 500  # directory rows read per query
BATCH_DEADLINE_S = 90.0  # one batch may wait out a whole rate-limit window (Stream's are per minute)
# Calls in flight at once: enough to keep Stream's 10 a second going with round trips of most of a second.
IN_FLIGHT = 8
# The table, its kind and its profile builder (which takes that table's row).
PARTIES: tuple[tuple[type[User] | type[Company], Kind, Callable[[Any], Profile]], ...] = (
    (User, Kind.USER, user_profile),
    (Company, Kind.COMPANY, company_profile),
)


@dataclass
class BackfillReport:
    """What one backfill run found and sent."""

    dry_run: bool
    scanned: int = 0
    fresh: int = 0
    missing: int = 0  # not in the mirror: upserted
    stale: int = 0  # in the mirror with another profile: partially updated
    upserted: int = 0
    updated: int = 0
    refused: list[str] = field(default_factory=list)  # ids Stream refused (named by its batch error)
    stream_calls: int = 0
    ms: float = 0.0

    @property
    def sent(self) -> int:
        """Identities Stream accepted in this run."""
        return self.upserted + self.updated


class Backfill:
    """One run: reads the directory page by page and sends full batches as they fill up, several in flight."""

    def __init__(
        self,
        runtime: Runtime,
        report: BackfillReport,
        batch: int,
        progress: Callable[[BackfillReport], None] | None,
        in_flight: int = IN_FLIGHT,
    ):
        self.runtime = runtime
        self.report = report
        self.batch = batch
        self.progress = progress
        self.missing: list[Profile] = []
        self.stale: list[Profile] = []
        self.slots = asyncio.Semaphore(in_flight)
        self.sending: set[asyncio.Task[None]] = set()
        self.failure: BaseException | None = None
        # Upserts and partial updates are limited apart by Stream: one pacer each.
        self.pacers = {
            False: Pacer(runtime.stream, "UpdateUsers"),
            True: Pacer(runtime.stream, "UpdateUsersPartial"),
        }

    async def run(self) -> None:
        """Scan and send; every call started is waited for, and the first failure is raised."""
        try:
            await self.scan()
        finally:
            # Let the calls in flight finish (their accepted rows are saved) whatever stopped the scan.
            while self.sending:
                await asyncio.wait(set(self.sending))
        if self.failure is not None:
            raise self.failure

    async def scan(self) -> None:
        """Every user, then every company, with its mirror row; full batches are sent on the way."""
        for model, kind, to_profile in PARTIES:
            after = ""
            stream_id = literal(stream_id_prefix(kind)) + model.id
            while True:
                async with self.runtime.sessionmaker() as session:
                    page = list(
                        await session.execute(
                            select(model, StreamIdentity)
                            .outerjoin(StreamIdentity, StreamIdentity.stream_id == stream_id)
                            .where(model.id > after)
                            .order_by(model.id)
                            .limit(PAGE)
                        )
                    )
                if not page:
                    break
                for row, mirrored in page:
                    await self.sort(to_profile(row), mirrored)
                after = cast(User | Company, page[-1][0]).id
                if self.progress is not None:
                    self.progress(self.report)
        await self.flush(self.missing, partial=False)
        await self.flush(self.stale, partial=True)

    async def sort(self, profile: Profile, mirrored: StreamIdentity | None) -> None:
        """Count one identity and queue it if Stream needs it; send a batch once it is full."""
        self.report.scanned += 1
        if is_fresh(profile, mirrored):
            self.report.fresh += 1
            return
        pending = self.missing if mirrored is None else self.stale
        if mirrored is None:
            self.report.missing += 1
        else:
            self.report.stale += 1
        pending.append(profile)
        if len(pending) >= self.batch:
            await self.flush(pending, partial=mirrored is not None)

    async def flush(self, pending: list[Profile], *, partial: bool) -> None:
        """Start sending the queued profiles (one call, once a slot is free); empties `pending`."""
        profiles = list(pending)
        pending.clear()
        if self.report.dry_run or not profiles:
            return
        await self.slots.acquire()
        if self.failure is not None:  # a batch failed for good: start no more
            self.slots.release()
            raise self.failure
        task = asyncio.create_task(self.send(profiles, partial=partial))
        self.sending.add(task)
        task.add_done_callback(self.sent)

    def sent(self, task: asyncio.Task[None]) -> None:
        self.sending.discard(task)
        self.slots.release()
        if not task.cancelled() and task.exception() is not None and self.failure is None:
            self.failure = task.exception()

    async def send(self, profiles: list[Profile], *, partial: bool) -> None:
        """One call for these profiles, leaving out an id Stream refuses by name; their mirror rows saved."""
        while profiles:
            # Stream's limits (as its answers' headers say) allow this call; a turn is at most a window away
            await take_turn(self.pacers[partial], Deadline(BATCH_DEADLINE_S))
            batch = IdentityBatch({p.identity: p for p in profiles}, {})
            send = batch.update if partial else batch.upsert
            with counting_calls() as count:
                try:
                    await send(self.runtime.stream, profiles, Deadline(BATCH_DEADLINE_S))  # no transaction open
                except StreamBatchError as exc:
                    if exc.bad_id not in {p.stream_id for p in profiles}:
                        raise
                    self.report.refused.append(exc.bad_id)
                    profiles = [p for p in profiles if p.stream_id != exc.bad_id]
                    continue
                finally:
                    self.report.stream_calls += count.calls
                    await save(self.runtime.sessionmaker, batch)
            if partial:
                self.report.updated += len(profiles)
            else:
                self.report.upserted += len(profiles)
            log.info("identities.backfilled", count=len(profiles), partial=partial, sent=self.report.sent)
            if self.progress is not None:
                self.progress(self.report)
            return


async def backfill_identities(
    runtime: Runtime,
    *,
    batch: int = BATCH,
    dry_run: bool = False,
    progress: Callable[[BackfillReport], None] | None = None,
    in_flight: int = IN_FLIGHT,
) -> BackfillReport:
    """Upsert (or update) every directory identity the mirror lacks or holds stale, `batch` (≤100) per call and
    at most `in_flight` calls at once."""
    if not 1 <= batch <= BATCH:
        raise ValueError(f"batch must be between 1 and {BATCH}, got {batch}")
    started = time.perf_counter()
    report = BackfillReport(dry_run=dry_run)
    try:
        await Backfill(runtime, report, batch, progress, in_flight).run()
    finally:
        report.ms = round((time.perf_counter() - started) * 1000, 2)
        log.info(
            "identities.backfill_finished",
            dry_run=dry_run,
            scanned=report.scanned,
            fresh=report.fresh,
            missing=report.missing,
            stale=report.stale,
            upserted=report.upserted,
            updated=report.updated,
            refused=len(report.refused),
            stream_calls=report.stream_calls,
            ms=report.ms,
        )
    return report
