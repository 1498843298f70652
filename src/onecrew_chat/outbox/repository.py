"""Outbox rows: add (deduped), claim with a lease, and finish as done, retry later, or dead letter."""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from onecrew_chat.db import utcnow
from onecrew_chat.logging import get_logger
from onecrew_chat.metrics import OUTBOX_DEAD
from onecrew_chat.models import OutboxMessage

log = get_logger(__name__)

PENDING, DONE, DEAD = "pending", "done", "dead"
RETRY_BASE_S = 1.0
RETRY_CAP_S = 300.0
_ERROR_LIMIT = 4000


def retry_delay(attempts: int, *, rng: Callable[[], float] = random.random) -> float:
    """Seconds before the next try after `attempts` failed ones: exponential, capped at 5 min, with equal jitter."""
    ceiling = min(RETRY_CAP_S, RETRY_BASE_S * (2 ** max(0, attempts - 1)))
    return ceiling / 2 + rng() * ceiling / 2


def _unleased(now):
    return or_(OutboxMessage.locked_until.is_(None), OutboxMessage.locked_until <= now)


async def add(
    session: AsyncSession,
    kind: str,
    payload: dict[str, Any],
    *,
    dedupe_key: str | None = None,
    delay_s: float = 0.0,
    known_new: bool = False,
) -> OutboxMessage:
    """Queue work in the caller's transaction; a pending, unclaimed row of the same kind and dedupe_key is reused.

    `delay_s` postpones the first try (e.g. while the request itself is still trying inline). `known_new` skips
    looking for a row to reuse when none can exist (its subject was created in this same transaction).
    """
    now = utcnow()
    due = now + timedelta(seconds=max(0.0, delay_s))
    if dedupe_key is not None and not known_new:
        # FOR UPDATE (PostgreSQL): a worker claiming the row now either waits for us or is skipped by us,
        # so we never fold new work into a row that is already being processed.
        existing = (
            await session.execute(
                select(OutboxMessage)
                .where(
                    OutboxMessage.kind == kind,
                    OutboxMessage.dedupe_key == dedupe_key,
                    OutboxMessage.status == PENDING,
                    _unleased(now),
                )
                .order_by(OutboxMessage.id)
                .limit(1)
                .with_for_update()
            )
        ).scalar_one_or_none()
        if existing is not None:
            existing.payload = dict(payload)
            if existing.next_attempt_at > due:
                existing.next_attempt_at = due
            log.debug("outbox.deduped", id=existing.id, kind=kind, dedupe_key=dedupe_key)
            return existing
    message = OutboxMessage(
        kind=kind, payload=dict(payload), dedupe_key=dedupe_key, status=PENDING, attempts=0, next_attempt_at=due
    )
    session.add(message)
    await session.flush()
    log.debug("outbox.added", id=message.id, kind=kind, dedupe_key=dedupe_key, delay_s=delay_s)
    return message


async def claim_due(session: AsyncSession, *, limit: int, lease_s: float) -> list[OutboxMessage]:
    """Lease up to `limit` due rows to this worker for `lease_s` seconds; the caller commits the claim.

    PostgreSQL: `SELECT ... FOR UPDATE SKIP LOCKED`, so concurrent workers never take the same row.
    SQLite: a compare-and-set on locked_until per row (SQLite serialises writers), meant for one worker.
    """
    now = utcnow()
    until = now + timedelta(seconds=lease_s)
    query = (
        select(OutboxMessage)
        .where(OutboxMessage.status == PENDING, OutboxMessage.next_attempt_at <= now, _unleased(now))
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(limit)
    )
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        query = query.with_for_update(skip_locked=True)
    candidates = list((await session.execute(query)).scalars())
    if not candidates:
        return []
    if postgres:
        ids = [message.id for message in candidates]
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids))
            .values(locked_until=until)
            .execution_options(synchronize_session=False)
        )
        claimed = candidates
    else:
        claimed = []
        for message in candidates:
            result = await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == message.id, OutboxMessage.status == PENDING, _unleased(now))
                .values(locked_until=until)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount == 1:
                claimed.append(message)
    for message in claimed:
        set_committed_value(message, "locked_until", until)
    return claimed


async def release(session: AsyncSession, ids: Sequence[int]) -> None:
    """Give back leases this worker will not use (e.g. when stopping mid-batch)."""
    if ids:
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(list(ids)), OutboxMessage.status == PENDING)
            .values(locked_until=None)
            .execution_options(synchronize_session=False)
        )


async def mark_done(session: AsyncSession, message: OutboxMessage) -> None:
    """The work is done; the row stays as a record."""
    message.status = DONE
    message.attempts += 1
    message.locked_until = None
    await session.flush()


async def complete(session: AsyncSession, message_id: int) -> bool:
    """Mark a row done whose work its writer finished itself (e.g. a create provisioned inline), unless a worker holds it."""
    result = await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.status == PENDING, _unleased(utcnow()))
        .values(status=DONE, locked_until=None, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)


async def make_due(session: AsyncSession, message_id: int) -> None:
    """Make a pending row due now (its writer gave up trying inline: the worker takes over)."""
    await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.status == PENDING)
        .values(next_attempt_at=utcnow())
        .execution_options(synchronize_session=False)
    )


async def mark_retry(
    session: AsyncSession, message: OutboxMessage, error: str, delay_s: float | None = None
) -> None:
    """Count a failed try and schedule the next one `delay_s` from now (default: `retry_delay`)."""
    message.attempts += 1
    delay = retry_delay(message.attempts) if delay_s is None else max(0.0, delay_s)
    message.next_attempt_at = utcnow() + timedelta(seconds=delay)
    message.locked_until = None
    message.last_error = error[:_ERROR_LIMIT]
    await session.flush()


async def mark_dead(session: AsyncSession, message: OutboxMessage, error: str) -> None:
    """Give up on the row (a dead letter, kept for `outbox list` / `outbox retry`)."""
    message.status = DEAD
    message.attempts += 1
    message.locked_until = None
    message.last_error = error[:_ERROR_LIMIT]
    await session.flush()
    OUTBOX_DEAD.labels(message.kind).inc()
    log.error("outbox.dead", id=message.id, kind=message.kind, attempts=message.attempts, error=error[:500])


async def pending_count(session: AsyncSession) -> int:
    """How many rows are waiting (due or not)."""
    return int((await session.execute(select(func.count()).where(OutboxMessage.status == PENDING))).scalar_one())


async def list_messages(
    session: AsyncSession, *, status: str | Collection[str] | None = None, limit: int = 100
) -> list[OutboxMessage]:
    """Rows of one status or several (default: all), dead first, then oldest first (`onecrew-chat outbox list`)."""
    query = (
        select(OutboxMessage)
        .order_by(case((OutboxMessage.status == DEAD, 0), else_=1), OutboxMessage.id)
        .limit(limit)
    )
    if isinstance(status, str):
        query = query.where(OutboxMessage.status == status)
    elif status is not None:
        query = query.where(OutboxMessage.status.in_(list(status)))
    return list((await session.execute(query)).scalars())


async def requeue(session: AsyncSession, ids: Sequence[int] | None = None) -> int:
    """Make rows due now with a fresh attempt count: every dead row, or these ids (dead or pending); returns how many.

    An id with no row, or of a row already done, raises LookupError naming it, before anything changes.
    """
    query = update(OutboxMessage)
    if ids is None:
        query = query.where(OutboxMessage.status == DEAD)
    else:
        wanted = list(ids)
        found = await session.execute(
            select(OutboxMessage.id, OutboxMessage.status).where(OutboxMessage.id.in_(wanted)).with_for_update()
        )
        statuses = {message_id: status for message_id, status in found}
        for message_id in wanted:
            if message_id not in statuses:
                raise LookupError(f"no outbox message with id {message_id}")
            if statuses[message_id] == DONE:
                raise LookupError(f"outbox message {message_id} is already done; nothing to retry")
        query = query.where(OutboxMessage.id.in_(wanted))
    result = await session.execute(
        query.values(status=PENDING, attempts=0, next_attempt_at=utcnow(), locked_until=None).execution_options(
            synchronize_session=False
        )
    )
    return int(result.rowcount or 0)
