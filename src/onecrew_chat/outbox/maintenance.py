"""Outbox rows outside the worker's rounds: count and list them, re-queue, revive dead letters, purge done rows."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from onecrew_chat.db import utcnow
from onecrew_chat.models import OutboxMessage
from onecrew_chat.outbox.repository import DEAD, DONE, PENDING, UNLEASE, rowcount, unleased


class MessageInProgress(LookupError):
    """`requeue` was asked for a row a worker holds right now."""


async def pending_count(session: AsyncSession) -> int:
    """How many rows are waiting (due or not)."""
    return int((await session.execute(select(func.count()).where(OutboxMessage.status == PENDING))).scalar_one())


async def list_messages(
    session: AsyncSession, *, status: str | Collection[str] | None = None, limit: int = 100
) -> list[OutboxMessage]:
    """Rows of one status or several (default: all), dead first, then oldest first (`onecrew-chat outbox list`)."""
    query = (
        select(OutboxMessage).order_by(case((OutboxMessage.status == DEAD, 0), else_=1), OutboxMessage.id).limit(limit)
    )
    if isinstance(status, str):
        query = query.where(OutboxMessage.status == status)
    elif status is not None:
        query = query.where(OutboxMessage.status.in_(list(status)))
    return list((await session.execute(query)).scalars())


async def requeue(session: AsyncSession, ids: Sequence[int] | None = None) -> int:
    """Make rows due now with a fresh attempt count: every dead row, or these ids (dead or pending); returns how many.

    A row a worker holds right now (its lease has not run out) is never touched: MessageInProgress names it.
    An id with no row, or of a row already done, raises LookupError naming it. Nothing changes on any error.
    """
    now = utcnow()
    query = update(OutboxMessage).where(OutboxMessage.status.in_([PENDING, DEAD]), unleased(now))
    if ids is None:
        query = query.where(OutboxMessage.status == DEAD)
    else:
        wanted = list(ids)
        found = await session.execute(
            select(OutboxMessage.id, OutboxMessage.status, OutboxMessage.locked_until)
            .where(OutboxMessage.id.in_(wanted))
            .with_for_update()
        )
        rows = {message_id: (status, locked_until) for message_id, status, locked_until in found}
        for message_id in wanted:
            if message_id not in rows:
                raise LookupError(f"no outbox message with id {message_id}")
            status, locked_until = rows[message_id]
            if status == DONE:
                raise LookupError(f"outbox message {message_id} is already done; nothing to retry")
            if status == PENDING and locked_until is not None and locked_until > now:
                raise MessageInProgress(
                    f"outbox message {message_id} is being run by a worker right now (leased until "
                    f"{locked_until:%Y-%m-%d %H:%M:%S} UTC); it was left alone, try again after that"
                )
        query = query.where(OutboxMessage.id.in_(wanted))
    result = await session.execute(
        query.values(status=PENDING, attempts=0, next_attempt_at=now, **UNLEASE).execution_options(
            synchronize_session=False
        )
    )
    return rowcount(result)


@dataclass(frozen=True)
class DeadLetter:
    """A dead row as the revival pass reads it: what it was and why it died."""

    id: int
    kind: str
    dedupe_key: str | None
    last_error: str | None


async def dead_letters(session: AsyncSession, *, after_id: int = 0, limit: int = 500) -> list[DeadLetter]:
    """Up to `limit` dead rows with an id above `after_id`, oldest first (a page of the revival pass)."""
    rows = await session.execute(
        select(OutboxMessage.id, OutboxMessage.kind, OutboxMessage.dedupe_key, OutboxMessage.last_error)
        .where(OutboxMessage.status == DEAD, OutboxMessage.id > after_id)
        .order_by(OutboxMessage.id)
        .limit(limit)
    )
    return [DeadLetter(row.id, row.kind, row.dedupe_key, row.last_error) for row in rows]


async def revive(session: AsyncSession, letters: Sequence[DeadLetter]) -> list[tuple[int, str, dict[str, Any]]]:
    """Make these dead rows pending and due now with a fresh attempt count (their failure is now known to pass);
    returns (id, kind, payload) of those revived. A row no longer dead is left alone, and so is one whose kind and
    dedupe key already have a pending row, or a newer dead row among these (at most one pending row per key: that
    row does the work, and this one is revived by a later pass if it is still dead then)."""
    newest: dict[tuple[str, str], int] = {}
    for letter in letters:
        if letter.dedupe_key is not None:
            key = (letter.kind, letter.dedupe_key)
            newest[key] = max(newest.get(key, letter.id), letter.id)
    ids = [
        letter.id
        for letter in letters
        if letter.dedupe_key is None or newest[(letter.kind, letter.dedupe_key)] == letter.id
    ]
    if not ids:
        return []
    pending = aliased(OutboxMessage)
    busy = (
        select(pending.id)
        .where(
            pending.status == PENDING,
            pending.kind == OutboxMessage.kind,
            pending.dedupe_key == OutboxMessage.dedupe_key,
        )
        .exists()
    )
    wanted = sorted(set(ids))  # id order: concurrent passes never deadlock
    result = await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(wanted), OutboxMessage.status == DEAD, ~busy)
        .values(status=PENDING, attempts=0, next_attempt_at=utcnow(), **UNLEASE)
        .returning(OutboxMessage.id, OutboxMessage.kind, OutboxMessage.payload)
        .execution_options(synchronize_session=False)
    )
    return [(row.id, row.kind, dict(row.payload)) for row in result]


async def purge_done(session: AsyncSession, *, older_than: datetime, batch: int) -> int:
    """Delete up to `batch` done rows finished before `older_than`; returns how many (the caller commits)."""
    doomed = (
        select(OutboxMessage.id).where(OutboxMessage.status == DONE, OutboxMessage.updated_at < older_than).limit(batch)
    )
    result = await session.execute(
        delete(OutboxMessage).where(OutboxMessage.id.in_(doomed)).execution_options(synchronize_session=False)
    )
    return rowcount(result)
