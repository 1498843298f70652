"""The reconciler: compares what our database wants with what Stream holds (level-triggered) and converges them.

The desired state comes from our tables, never from events alone: every mirror row is an identity Stream should
have, and every ready conversation a channel holding each participant. Open webhook drift rows are re-checked
first, and resolved once Stream agrees. With `repair`, drift goes to the outbox worker: a missing identity loses
its mirror row and gets an `identity.sync` row; a conversation missing its channel or a member is marked
unverified and gets a `conversation.provision` row. Runs never sleep (waits are the retry policy's), spend at
most a deadline and a number of Stream calls, and say where they stopped; the next periodic run goes on there.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar, cast

from sqlalchemy import CursorResult, Select, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from onecrew_chat.db import unit_of_work, utcnow
from onecrew_chat.identity import ChatStatus, Identity, cid
from onecrew_chat.logging import get_logger
from onecrew_chat.metrics import DRIFT_DETECTED
from onecrew_chat.models import ChannelDrift, Conversation, JobLease, StreamIdentity
from onecrew_chat.outbox.repository import kick
from onecrew_chat.runtime import Runtime
from onecrew_chat.stream.client import MAX_CHANNELS_PER_QUERY
from onecrew_chat.stream.errors import DeadlineExceeded
from onecrew_chat.sync.deadline import Deadline
from onecrew_chat.sync.mirror import BATCH, EXTERNAL_HASH, chunks
from onecrew_chat.sync.participants import load_profiles
from onecrew_chat.sync.queue import enqueue_identity_sync, enqueue_provision
from onecrew_chat.sync.reconcile.drift import (
    CHANNEL_MISSING,
    EXAMPLES,
    IDENTITY_MISSING,
    MEMBER_MISSING,
    PROFILE_STALE,
    ChannelFinding,
    Report,
    compare_channel,
    profile_differs,
    record_reconcile_run,
)

log = get_logger(__name__)
T = TypeVar("T")

# The job_lease row every process reconciling this database takes turns on.
LEASE = "reconcile"
MAX_DRIFT_ROWS = 1000  # open webhook drift rows looked at per run, oldest first
IDENTITIES, CONVERSATIONS = "identities", "conversations"


def _parsed(stream_ids: list[str]) -> dict[str, Identity]:
    """The ids this service makes, parsed (others in the mirror, if any, are not compared with the directory)."""
    found = {}
    for stream_id in stream_ids:
        try:
            found[stream_id] = Identity.parse(stream_id)
        except ValueError:
            continue
    return found


class _Stop(Exception):
    """The run's budget (deadline or Stream calls) is spent."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@contextlib.asynccontextmanager
async def run_lock(sessionmaker: async_sessionmaker[AsyncSession], hold_s: float) -> AsyncIterator[bool]:
    """True when this process may reconcile: it holds the `reconcile` lease (a row, not a lock) for the block.

    The lease is taken and given back in short transactions, so no transaction, lock or connection is held while
    the run calls Stream; a process that dies leaves a lease that expires after `hold_s`.
    """
    token = secrets.token_hex(16)
    now = utcnow()
    async with unit_of_work(sessionmaker) as session:
        insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        await session.execute(insert(JobLease).values(name=LEASE).on_conflict_do_nothing(index_elements=["name"]))
        taken = await session.execute(
            update(JobLease)
            .where(JobLease.name == LEASE, or_(JobLease.until.is_(None), JobLease.until <= now))
            .values(token=token, until=now + timedelta(seconds=hold_s))
            .execution_options(synchronize_session=False)
        )
    mine = cast(CursorResult[Any], taken).rowcount == 1
    try:
        yield mine
    finally:
        if mine:
            async with unit_of_work(sessionmaker) as session:
                await session.execute(
                    update(JobLease)
                    .where(JobLease.name == LEASE, JobLease.token == token)
                    .values(token=None, until=None)
                    .execution_options(synchronize_session=False)
                )


class Run:
    """One reconcile run: its budget, where it is, and what it found."""

    def __init__(self, runtime: Runtime, report: Report, *, limit: int | None, deadline_s: float, max_calls: int):
        self.runtime = runtime
        self.stream = runtime.stream
        self.report = report
        self.limit = limit
        self.deadline = Deadline(deadline_s)
        self.max_calls = max_calls
        self.position: tuple[str, str] | None = None
        self.checked: set[str] = set()  # conversations already compared in this run

    async def call(self, operation: Callable[[], Awaitable[T]], *, name: str) -> T:
        """A Stream call within the run's budget: retried by the policy, _Stop when the budget is spent."""
        if self.deadline.remaining_s() <= 0:
            raise _Stop("deadline")

        async def counted() -> T:
            if self.report.stream_calls >= self.max_calls:
                raise _Stop("call budget")
            self.report.stream_calls += 1
            return await operation()

        try:
            return await self.deadline.run(counted, name=name)
        except DeadlineExceeded as exc:
            log.warning("reconcile.deadline", operation=name, error=str(exc)[:300])
            raise _Stop("deadline") from exc

    # --- webhook drift rows ---------------------------------------------------------------------

    async def webhook_drift(self) -> None:
        """Re-check the channels of open drift rows; rows whose channel Stream holds in full again are resolved."""
        async with self.runtime.sessionmaker() as session:
            rows = list(
                await session.scalars(
                    select(ChannelDrift)
                    .where(ChannelDrift.resolved_at.is_(None))
                    .order_by(ChannelDrift.id)
                    .limit(MAX_DRIFT_ROWS)
                )
            )
            if not rows:
                return
            found = await session.scalars(
                select(Conversation)
                .where(Conversation.channel_id.in_(sorted({row.channel_id for row in rows})))
                .options(selectinload(Conversation.participants))
            )
            conversations = {(c.channel_type, c.channel_id): c for c in found}
        self.report.webhook_drift_open = len(rows)
        agreeing = []
        live = {}
        for row in rows:
            conversation = conversations.get((row.channel_type, row.channel_id))
            if conversation is None or conversation.deleted_at is not None:
                agreeing.append(row.id)  # we no longer want this channel
            elif conversation.chat_status == ChatStatus.READY:
                live[conversation.id] = conversation
        findings: dict[str, ChannelFinding] = {}
        try:
            for batch in chunks(list(live.values()), MAX_CHANNELS_PER_QUERY):
                checked = await self.check(batch)
                findings.update((f.conversation_id, f) for f in checked)
        finally:
            for row in rows:
                conversation = conversations.get((row.channel_type, row.channel_id))
                finding = findings.get(conversation.id) if conversation is not None else None
                if (
                    finding is not None
                    and not finding.drifted
                    and row.detail.get("stream_id") not in finding.unverified
                ):
                    agreeing.append(row.id)
            await self.resolve(agreeing)

    async def resolve(self, drift_ids: list[int]) -> None:
        """Mark drift rows resolved (only when repairing: a report changes nothing)."""
        self.report.webhook_drift_agreeing = len(drift_ids)
        if not (self.report.repair and drift_ids):
            return
        async with unit_of_work(self.runtime.sessionmaker) as session:
            await session.execute(
                update(ChannelDrift)
                .where(ChannelDrift.id.in_(drift_ids), ChannelDrift.resolved_at.is_(None))
                .values(resolved_at=utcnow())
                .execution_options(synchronize_session=False)
            )
        log.info("reconcile.drift_resolved", count=len(drift_ids))

    # --- identities -----------------------------------------------------------------------------

    async def identities(self, after: str) -> None:
        """Every mirror row, 100 per QueryUsers call: ones Stream lacks are `identity_missing`, ones whose name, image
        or role differ from the directory's profile are `profile_stale` (placeholders and external users excepted)."""
        checked = 0
        while self.limit is None or checked < self.limit:
            size = BATCH if self.limit is None else min(BATCH, self.limit - checked)
            async with self.runtime.sessionmaker() as session:
                rows = list(
                    await session.execute(
                        select(StreamIdentity.stream_id, StreamIdentity.profile_hash, StreamIdentity.placeholder)
                        .where(StreamIdentity.stream_id > after)
                        .order_by(StreamIdentity.stream_id)
                        .limit(size)
                    )
                )
                ids = [row.stream_id for row in rows]
                identities = _parsed(ids)
                profiles = await load_profiles(session, identities.values())
            if not ids:
                return
            self.position = (IDENTITIES, after)
            asked_at = utcnow()
            present = await self.call(partial(self.stream.query_users, ids), name="QueryUsers")
            checked += len(ids)
            self.report.identities_checked += len(ids)
            missing = [i for i in ids if i not in present]
            if missing:
                await self.identities_drifted(IDENTITY_MISSING, missing, asked_at)
            compared = [
                row
                for row in rows
                if row.stream_id in present and not row.placeholder and row.profile_hash != EXTERNAL_HASH
            ]
            stale = [
                row.stream_id
                for row in compared
                if row.stream_id in identities
                and profile_differs(profiles.get(identities[row.stream_id]), present[row.stream_id])
            ]
            if stale:
                await self.identities_drifted(PROFILE_STALE, stale, asked_at)
            after = ids[-1]
        if await self._more(select(StreamIdentity.stream_id).where(StreamIdentity.stream_id > after)):
            self.report.stopped_early = "limit"

    async def identities_drifted(self, kind: str, stream_ids: list[str], asked_at: datetime) -> None:
        """Count them; when repairing, drop their mirror rows (unless re-synced since) and queue `identity.sync`,
        which upserts the directory's profile in full (role `user` included)."""
        self.report.note(kind, stream_ids)
        DRIFT_DETECTED.labels(kind=kind).inc(len(stream_ids))
        log.warning("reconcile.drift_found", kind=kind, count=len(stream_ids), examples=stream_ids[:EXAMPLES])
        if not self.report.repair:
            return
        async with unit_of_work(self.runtime.sessionmaker) as session:
            await session.execute(
                delete(StreamIdentity)
                .where(StreamIdentity.stream_id.in_(stream_ids), StreamIdentity.synced_at < asked_at)
                .execution_options(synchronize_session=False)
            )
            for stream_id in stream_ids:
                await enqueue_identity_sync(session, stream_id)
        self.report.identity_syncs_queued += len(stream_ids)
        kick(self.runtime)

    # --- conversations --------------------------------------------------------------------------

    async def conversations(self, after: str) -> None:
        """Every ready conversation, 30 channels per QueryChannels call, compared with its participants."""
        checked = 0
        ready = (Conversation.chat_status == ChatStatus.READY, Conversation.deleted_at.is_(None))
        while self.limit is None or checked < self.limit:
            size = MAX_CHANNELS_PER_QUERY if self.limit is None else min(MAX_CHANNELS_PER_QUERY, self.limit - checked)
            async with self.runtime.sessionmaker() as session:
                batch = list(
                    await session.scalars(
                        select(Conversation)
                        .where(*ready, Conversation.id > after)
                        .order_by(Conversation.id)
                        .limit(size)
                        .options(selectinload(Conversation.participants))
                    )
                )
            if not batch:
                return
            self.position = (CONVERSATIONS, after)
            todo = [c for c in batch if c.id not in self.checked]
            if todo:
                await self.check(todo)
            checked += len(batch)
            after = batch[-1].id
        if await self._more(select(Conversation.id).where(*ready, Conversation.id > after)):
            self.report.stopped_early = "limit"

    async def check(self, conversations: list[Conversation]) -> list[ChannelFinding]:
        """Compare up to 30 conversations with their channels in one call; count and (if repairing) queue repairs."""
        cids = [cid(c.channel_id, c.channel_type) for c in conversations]
        states = await self.call(lambda: self.stream.get_channels(cids), name="QueryChannels")
        findings = [compare_channel(c, states.get(key)) for c, key in zip(conversations, cids, strict=True)]
        for index, (conversation, finding) in enumerate(zip(conversations, findings, strict=True)):
            if finding.unverified:  # a channel of more than 100 members: ask Stream about the members not listed
                findings[index] = await self.verify_members(conversation, finding)
        self.checked.update(c.id for c in conversations)
        self.report.conversations_checked += len(conversations)
        lacking = [f.channel_id for f in findings if f.channel_missing]
        members = [f"{f.channel_id}:{m}" for f in findings for m in f.missing]
        for kind, found in ((CHANNEL_MISSING, lacking), (MEMBER_MISSING, members)):
            if found:
                self.report.note(kind, found)
                DRIFT_DETECTED.labels(kind=kind).inc(len(found))
                log.warning("reconcile.drift_found", kind=kind, count=len(found), examples=found[:EXAMPLES])
        self.report.unverified += sum(1 for f in findings if f.unverified)
        if self.report.repair:
            await self.requeue([f.conversation_id for f in findings if f.needs_provisioning])
        return findings

    async def verify_members(self, conversation: Conversation, finding: ChannelFinding) -> ChannelFinding:
        """Settle the members a truncated channel answer did not list, through QueryMembers (100 ids per call)."""
        asked = list(finding.unverified)
        present = await self.call(
            lambda: self.stream.query_member_ids(conversation.channel_type, conversation.channel_id, asked),
            name="QueryMembers",
        )
        absent = tuple(m for m in asked if m not in present)
        return replace(finding, missing=finding.missing + absent, unverified=())

    async def requeue(self, conversation_ids: list[str]) -> None:
        """Mark the conversations unverified and queue their provisioning: the worker re-creates and re-adds."""
        if not conversation_ids:
            return
        async with unit_of_work(self.runtime.sessionmaker) as session:
            for conversation in await session.scalars(
                select(Conversation).where(Conversation.id.in_(conversation_ids))
            ):
                conversation.stream_verified_at = None  # so the provisioning run does not take it as done
                await enqueue_provision(session, conversation)
        self.report.provisions_queued += len(conversation_ids)
        kick(self.runtime)

    async def _more(self, query: Select[str]) -> bool:
        async with self.runtime.sessionmaker() as session:
            return (await session.scalar(query.limit(1))) is not None


async def reconcile(
    runtime: Runtime,
    *,
    repair: bool,
    limit: int | None = None,
    deadline_s: float | None = None,
    max_calls: int | None = None,
    resume: tuple[str, str] | None = None,
    report: Report | None = None,
) -> Report:
    """One run (skipped when another process holds the lock): webhook drift rows, identities, then conversations.

    `limit` caps the identities and the conversations checked; `resume` is a previous report's `resume`; `report`
    (optional) is filled in as the run goes, so a caller can show progress.
    """
    started = time.perf_counter()
    settings = runtime.settings
    report = report or Report(repair=repair)
    deadline_s = deadline_s or settings.reconcile_deadline_s
    async with run_lock(runtime.sessionmaker, hold_s=deadline_s + 60.0) as mine:
        if not mine:
            report.skipped = True
            log.info("reconcile.skipped", reason="another process is reconciling")
            return report
        run = Run(
            runtime,
            report,
            limit=limit,
            deadline_s=deadline_s,
            max_calls=max_calls or settings.reconcile_max_calls,
        )
        try:
            await run.webhook_drift()
            phase, after = resume or (IDENTITIES, "")
            if phase == IDENTITIES:
                await run.identities(after)
                after = ""
            await run.conversations(after)
        except _Stop as stop:
            report.stopped_early = stop.reason
            report.resume = run.position
            log.warning("reconcile.stopped_early", reason=stop.reason, resume=run.position)
    report.ms = round((time.perf_counter() - started) * 1000, 2)
    async with unit_of_work(runtime.sessionmaker) as session:  # for `status` and /metrics in every process
        await record_reconcile_run(session, utcnow(), report.drift)
    log.info("reconcile.finished", **report.log_fields())
    return report
