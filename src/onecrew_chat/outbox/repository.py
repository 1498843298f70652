"""Outbox rows: queue work (one pending row per dedupe key) and record work done outside the worker.

The worker's side (claiming rows under lease tokens and recording their outcomes) is in `lease.py`; listing,
re-queueing, reviving and purging rows is in `maintenance.py`. Writers hand work to the worker here too: `kick`
after committing a row wakes it now instead of at its next poll, and `hand_over` makes due a row whose work the
writer stops trying inline (the worker's loop, worker.py, waits on the runtime's `outbox_wakeup`; the services
call these and never import the loop). Every write that may race a worker is guarded by
`status = 'pending'` and the lease, so a row is never finished twice. `version` is bumped when `add` folds new work
into a pending row; a run of an older version reschedules the row instead of finishing it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import Row, Table, and_, bindparam, case, insert, or_, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from onecrew_chat.db import unit_of_work, utcnow
from onecrew_chat.logging import get_logger
from onecrew_chat.metrics import OUTBOX_DEAD
from onecrew_chat.models import PENDING_DEDUPE, OutboxMessage
from onecrew_chat.outbox.jobs import WorkerHost

log = get_logger(__name__)

ERROR_LIMIT = 4000


class MessageStatus(StrEnum):
    """A row's `status` column."""

    PENDING = "pending"
    DONE = "done"
    DEAD = "dead"


PENDING, DONE, DEAD = MessageStatus.PENDING, MessageStatus.DONE, MessageStatus.DEAD


class Outcome(StrEnum):
    """What one run of a row came to: the worker's logs and the `outcome` label of its metrics."""

    DONE = "done"
    DEAD = "dead"
    RETRY = "retry"
    RERUN = "rerun"  # new work arrived during the run: the row is due again instead
    PAUSED = "paused"  # put back untouched: the worker pauses (Stream refuses our credentials)
    LOST = "lost"  # the lease is no longer ours: nothing was recorded
    UNRECORDED = "unrecorded"  # recording failed: the lease runs out and the row is tried again
    IDLE = "idle"  # no row was due


def rowcount(result: Any) -> int:
    """How many rows an UPDATE or DELETE touched."""
    return int(getattr(result, "rowcount", 0) or 0)


def unleased(now: datetime) -> Any:
    return or_(OutboxMessage.locked_until.is_(None), OutboxMessage.locked_until <= now)


def is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _pending_row(kind: Any, payload: Any, dedupe_key: Any, due: Any, now: Any) -> dict[str, Any]:
    """The columns of a new pending row (values, or bind parameters for a statement built once)."""
    return {
        "kind": kind,
        "payload": payload,
        "dedupe_key": dedupe_key,
        "status": PENDING,
        "attempts": 0,
        "version": 0,
        "next_attempt_at": due,
        "created_at": now,
        "updated_at": now,
    }


def _or_fold(insert: Any) -> Any:
    """`insert` ... ON CONFLICT on the pending rows' (kind, dedupe_key): fold into that row instead (the new
    payload, the earlier due time, `version` bumped)."""
    return insert.on_conflict_do_update(
        index_elements=[OutboxMessage.kind, OutboxMessage.dedupe_key],
        index_where=text(PENDING_DEDUPE),
        set_={
            "payload": insert.excluded.payload,
            "version": OutboxMessage.version + 1,
            "next_attempt_at": case(
                (OutboxMessage.next_attempt_at > insert.excluded.next_attempt_at, insert.excluded.next_attempt_at),
                else_=OutboxMessage.next_attempt_at,
            ),
            "updated_at": insert.excluded.updated_at,
        },
    )


def _add_statement(insert_of: Any) -> Any:
    """INSERT a pending row, or fold into the pending row of its kind and dedupe key (built once per dialect)."""
    row = _pending_row(
        bindparam("new_kind"),
        bindparam("new_payload"),
        bindparam("new_dedupe_key"),
        bindparam("due"),
        bindparam("now"),
    )
    # A Core INSERT returning the row's columns: an ORM-enabled one returning the entity costs several times more.
    table = cast(Table, OutboxMessage.__table__)
    return _or_fold(insert_of(table).values(**row)).returning(*table.c)


_ADD_POSTGRES = _add_statement(postgresql.insert)
_ADD_SQLITE = _add_statement(sqlite.insert)


async def add(
    session: AsyncSession,
    kind: str,
    payload: dict[str, Any],
    *,
    dedupe_key: str | None = None,
    delay_s: float = 0.0,
    known_new: bool = False,
) -> OutboxMessage:
    """Queue work in the caller's transaction; with a dedupe_key, the pending row of that kind and key is reused.

    One INSERT ... ON CONFLICT on the partial unique index (kind, dedupe_key) of pending rows, so two concurrent
    adds make one row. Folding into a row takes the new payload, the earlier due time, and bumps `version`: a
    worker running the row right now reschedules it when it finishes, so the new work always gets its own run.
    `delay_s` postpones the first try (e.g. while the request itself is still trying inline). `known_new` is
    accepted for callers that know no row can exist yet; the statement is the same.
    """
    del known_new  # the upsert costs one statement either way
    if dedupe_key is None:
        due = utcnow() + timedelta(seconds=max(0.0, delay_s))
        message = OutboxMessage(kind=kind, payload=dict(payload), status=PENDING, attempts=0, next_attempt_at=due)
        session.add(message)
        await session.flush()
        log.debug("outbox.added", id=message.id, kind=kind, delay_s=delay_s)
        return message
    statement = _ADD_POSTGRES if is_postgres(session) else _ADD_SQLITE
    result = await session.execute(statement, add_params(kind, payload, dedupe_key, delay_s))
    return added(result, delay_s)


def add_params(kind: str, payload: dict[str, Any], dedupe_key: str, delay_s: float = 0.0) -> dict[str, Any]:
    """The parameters of `add`'s statement (a row with a dedupe key)."""
    now = utcnow()
    due = now + timedelta(seconds=max(0.0, delay_s))
    return {"new_kind": kind, "new_payload": dict(payload), "new_dedupe_key": dedupe_key, "due": due, "now": now}


def add_along(*writes: Any) -> Any:
    """`add`'s PostgreSQL statement carrying other writes as WITH queries (build it once): one statement, one
    round trip. Run with `add_params` and the writes' own parameters; read its result with `added`."""
    return _ADD_POSTGRES.add_cte(*writes)


def added(result: Any, delay_s: float = 0.0) -> OutboxMessage:
    """The row `add`'s statement returned, as a detached OutboxMessage."""
    message = _existing(result.one())
    log.debug(
        "outbox.added",
        id=message.id,
        kind=message.kind,
        dedupe_key=message.dedupe_key,
        version=message.version,
        delay_s=delay_s,
    )
    return message


def _existing(row: Row[Any]) -> OutboxMessage:
    """The OutboxMessage of a row the database returned, as a loaded one that no session tracks (detached)."""
    message = OutboxMessage(**row._mapping)
    make_transient_to_detached(message)
    return message


async def add_many(session: AsyncSession, kind: str, items: Sequence[tuple[dict[str, Any], str]]) -> int:
    """Queue many `(payload, dedupe_key)` of one kind in the caller's transaction, as `add` does each (one statement).

    A key given twice keeps its last payload; a pending row of the same kind and key is folded into (new payload,
    `version` bumped, due now). Returns how many keys were queued.
    """
    unique = {key: payload for payload, key in items}
    if not unique:
        return 0
    now = utcnow()
    rows = [  # key order: concurrent writers never deadlock
        _pending_row(kind, dict(payload), key, now, now) for key, payload in sorted(unique.items())
    ]
    insert = (postgresql.insert if is_postgres(session) else sqlite.insert)(OutboxMessage)
    await session.execute(_or_fold(insert.values(rows)))
    log.debug("outbox.added_many", kind=kind, count=len(rows))
    return len(rows)


async def add_later(session: AsyncSession, kind: str, payloads: Sequence[dict[str, Any]], *, delay_s: float) -> int:
    """Queue one row per payload, due `delay_s` from now, with no dedupe key (one INSERT); returns how many.

    For work that must run once more after a while whatever runs meanwhile (a pending row of the same dedupe key
    would take the earlier due time and defeat the delay).
    """
    if not payloads:
        return 0
    now = utcnow()
    due = now + timedelta(seconds=max(0.0, delay_s))
    rows = [_pending_row(kind, dict(payload), None, due, now) for payload in payloads]
    await session.execute(insert(OutboxMessage), rows)
    log.debug("outbox.added_later", kind=kind, count=len(rows), delay_s=delay_s)
    return len(rows)


async def guarded_update(session: AsyncSession, condition: Any, **values: Any) -> bool:
    result = await session.execute(
        update(OutboxMessage).where(condition).values(**values).execution_options(synchronize_session=False)
    )
    return bool(rowcount(result))


UNLEASE = {"lease_token": None, "locked_until": None}


_TABLE: Table = OutboxMessage.__table__  # type: ignore[assignment]  # a Table (typed FromClause)


def _mark_done_statement() -> Any:
    """mark_done's guarded UPDATE (built once): the pending, unleased row of this id and version becomes done."""
    table = _TABLE.c
    return (
        update(_TABLE)
        .where(
            table.id == bindparam("message_id"),
            table.status == PENDING,
            table.version == bindparam("seen_version"),
            or_(table.locked_until.is_(None), table.locked_until <= bindparam("now")),
        )
        .values(status=DONE, attempts=table.attempts + 1, lease_token=None, locked_until=None)
    )


_MARK_DONE = _mark_done_statement()


async def mark_done(session: AsyncSession, message: OutboxMessage) -> bool:
    """A run outside the worker (e.g. inline provisioning) did the work of this pending, unleased row.

    Guarded by the version the caller saw: when work was folded in since, the row stays pending. True if done.
    """
    result = await session.execute(_MARK_DONE, mark_done_params(message, utcnow()))
    return marked_done(message, result)


def mark_done_statement() -> Any:
    """mark_done's UPDATE (built once), for a caller that runs it with another write in one statement; bound
    with `mark_done_params`, its result passed to `marked_done`."""
    return _MARK_DONE


def mark_done_params(message: OutboxMessage, now: datetime) -> dict[str, Any]:
    return {"message_id": message.id, "seen_version": message.version, "now": now}


def marked_done(message: OutboxMessage, result: Any) -> bool:
    """The caller's copy of the row says what the row now says, if mark_done's UPDATE changed it. True if done."""
    done = bool(rowcount(result))
    if done:
        for name, value in (("status", DONE), ("attempts", message.attempts + 1), *UNLEASE.items()):
            set_committed_value(message, name, value)
    return done


async def give_up(session: AsyncSession, message: OutboxMessage, error: str) -> bool:
    """Dead-letter a pending, unleased row whose writer met an error no retry can fix (e.g. Stream refused it)."""
    now = utcnow()
    dead = await guarded_update(
        session,
        and_(OutboxMessage.id == message.id, OutboxMessage.status == PENDING, unleased(now)),
        status=DEAD,
        attempts=OutboxMessage.attempts + 1,
        last_error=error[:ERROR_LIMIT],
        **UNLEASE,
    )
    if dead:
        OUTBOX_DEAD.labels(message.kind).inc()
        log.error("outbox.dead", id=message.id, kind=message.kind, error=error[:500])
    return dead


async def make_due(session: AsyncSession, message_id: int) -> None:
    """Make a pending row due now (its writer gave up trying inline: the worker takes over)."""
    await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.status == PENDING)
        .values(next_attempt_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def kick(runtime: WorkerHost) -> None:
    """Wake the worker now instead of at its next poll (or probe, when paused); call it after committing a row."""
    runtime.outbox_wakeup.set()


async def hand_over(runtime: WorkerHost, message_id: int) -> None:
    """The writer of a row stops trying its work inline (the service it calls is slow or down): the row is due now,
    in a short transaction of its own, and the worker is woken for it."""
    async with unit_of_work(runtime.sessionmaker) as session:
        await make_due(session, message_id)
    kick(runtime)
