"""Outbox rows: add (one pending row per dedupe key), claim rows under lease tokens, record their outcomes.

A row is claimed alone (`claim_one`), or with more due rows of its kind (`claim_more`) for a kind whose handler
takes a batch; every row of a batch still has a lease token of its own, and its outcome is recorded under it.

Every outcome is recorded by a statement guarded by `id`, `lease_token` and `status = 'pending'`: a worker
whose lease ran out (and whose row another worker took) changes nothing. `version` is bumped when `add`
folds new work into a pending row; a run of an older version reschedules the row instead of finishing it.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    String,
    Table,
    and_,
    bindparam,
    case,
    cast,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.orm.attributes import set_committed_value

from onecrew_chat.db import utcnow
from onecrew_chat.logging import get_logger
from onecrew_chat.metrics import OUTBOX_DEAD
from onecrew_chat.models import PENDING_DEDUPE, OutboxMessage

log = get_logger(__name__)

PENDING, DONE, DEAD = "pending", "done", "dead"
RETRY_BASE_S = 1.0
RETRY_CAP_S = 300.0
_ERROR_LIMIT = 4000

# What a guarded record did: the outcome asked for, "rerun" (new work arrived during the run: the row is
# due again instead), or "lost" (the lease is no longer ours: nothing was recorded).
RERUN, LOST = "rerun", "lost"


class MessageInProgress(LookupError):
    """`requeue` was asked for a row a worker holds right now."""


@dataclass(frozen=True)
class Claim:
    """One row leased to one worker: what the handler needs, and the token that guards every record."""

    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int
    version: int
    token: str


def retry_delay(attempts: int, *, rng: Callable[[], float] = random.random) -> float:
    """Seconds before the next try after `attempts` failed ones: exponential, capped at 5 min, with equal jitter."""
    ceiling = min(RETRY_CAP_S, RETRY_BASE_S * float(2 ** max(0, attempts - 1)))
    return ceiling / 2 + rng() * ceiling / 2


def rowcount(result: Any) -> int:
    """How many rows an UPDATE or DELETE touched."""
    return int(getattr(result, "rowcount", 0) or 0)


def _unleased(now: datetime) -> Any:
    return or_(OutboxMessage.locked_until.is_(None), OutboxMessage.locked_until <= now)


def _postgres(session: AsyncSession) -> bool:
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
    return _or_fold(insert_of(OutboxMessage).values(**row)).returning(OutboxMessage)


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
    now = utcnow()
    due = now + timedelta(seconds=max(0.0, delay_s))
    if dedupe_key is None:
        message = OutboxMessage(kind=kind, payload=dict(payload), status=PENDING, attempts=0, next_attempt_at=due)
        session.add(message)
        await session.flush()
        log.debug("outbox.added", id=message.id, kind=kind, delay_s=delay_s)
        return message
    statement = _ADD_POSTGRES if _postgres(session) else _ADD_SQLITE
    result = await session.execute(
        statement,
        {"new_kind": kind, "new_payload": dict(payload), "new_dedupe_key": dedupe_key, "due": due, "now": now},
        execution_options={"populate_existing": True},
    )
    added: OutboxMessage = result.scalar_one()
    log.debug("outbox.added", id=added.id, kind=kind, dedupe_key=dedupe_key, version=added.version, delay_s=delay_s)
    return added


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
    insert = (postgresql.insert if _postgres(session) else sqlite.insert)(OutboxMessage)
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


def _due(now: datetime) -> list[Any]:
    """Pending rows due by `now` that no lease holds: what a claim may take."""
    return [OutboxMessage.status == PENDING, OutboxMessage.next_attempt_at <= now, _unleased(now)]


# What a claim's UPDATE returns, and the Claim made of it.
_CLAIMED = (
    OutboxMessage.id,
    OutboxMessage.kind,
    OutboxMessage.payload,
    OutboxMessage.attempts,
    OutboxMessage.version,
    OutboxMessage.lease_token,
)


def _claim_of(row: Any) -> Claim:
    return Claim(
        id=row.id,
        kind=row.kind,
        payload=dict(row.payload),
        attempts=row.attempts,
        version=row.version,
        token=row.lease_token,
    )


async def claim_one(session: AsyncSession, *, lease_s: float) -> Claim | None:
    """Lease the next due row to a fresh token for `lease_s` seconds, or None; the caller commits at once.

    PostgreSQL: the row is picked `FOR UPDATE SKIP LOCKED`, so concurrent claimers never wait for or share one.
    SQLite: the UPDATE repeats the conditions (a compare-and-set; SQLite runs one writer at a time).
    """
    now = utcnow()
    pick = select(OutboxMessage.id).where(*_due(now)).order_by(OutboxMessage.next_attempt_at, OutboxMessage.id).limit(1)
    if _postgres(session):
        pick = pick.with_for_update(skip_locked=True)
    token = uuid.uuid4().hex
    row = (
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == pick.scalar_subquery(), OutboxMessage.status == PENDING, _unleased(now))
            .values(lease_token=token, locked_until=now + timedelta(seconds=lease_s))
            .returning(*_CLAIMED)
            .execution_options(synchronize_session=False)
        )
    ).first()
    return None if row is None else _claim_of(row)


async def claim_more(
    session: AsyncSession, kind: str, *, limit: int, lease_s: float, exclude: Collection[int] = ()
) -> list[Claim]:
    """Lease up to `limit` more due rows of `kind` (not those in `exclude`), oldest due first; the caller commits.

    One statement, picked like `claim_one` (`FOR UPDATE SKIP LOCKED` on PostgreSQL, a compare-and-set on SQLite).
    Each row gets a lease token of its own (one random prefix per call, then the row's id), so every outcome is
    recorded under its row's own token, exactly as for a row claimed alone.
    """
    if limit <= 0:
        return []
    now = utcnow()
    pick = (
        select(OutboxMessage.id)
        .where(*_due(now), OutboxMessage.kind == kind)
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(limit)
    )
    if exclude:
        pick = pick.where(OutboxMessage.id.not_in(list(exclude)))
    picked = pick.cte("picked")
    if _postgres(session):
        # Materialized, so the LIMIT holds: a subquery under IN may be rescanned and pick more rows.
        picked = pick.with_for_update(skip_locked=True).cte("picked").prefix_with("MATERIALIZED")
    prefix = uuid.uuid4().hex[:20] + "-"
    rows = (
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(select(picked.c.id)), OutboxMessage.status == PENDING, _unleased(now))
            .values(
                lease_token=literal(prefix, String) + cast(OutboxMessage.id, String),
                locked_until=now + timedelta(seconds=lease_s),
            )
            .returning(*_CLAIMED)
            .execution_options(synchronize_session=False)
        )
    ).all()
    return sorted((_claim_of(row) for row in rows), key=lambda claim: claim.id)


def _held(claim: Claim) -> Any:
    """Rows still leased to this claim."""
    return and_(OutboxMessage.id == claim.id, OutboxMessage.lease_token == claim.token, OutboxMessage.status == PENDING)


async def _guarded(session: AsyncSession, condition: Any, **values: Any) -> bool:
    result = await session.execute(
        update(OutboxMessage).where(condition).values(**values).execution_options(synchronize_session=False)
    )
    return bool(rowcount(result))


_UNLEASE = {"lease_token": None, "locked_until": None}


async def _rerun(session: AsyncSession, claim: Claim, **values: Any) -> str:
    """New work arrived during the run (the version moved): release the row to run again; RERUN, or LOST."""
    if await _guarded(session, _held(claim), **_UNLEASE, **values):
        log.info("outbox.rerun", id=claim.id, kind=claim.kind)
        return RERUN
    return LOST


async def record_done(session: AsyncSession, claim: Claim) -> str:
    """The run succeeded: DONE, RERUN (work was folded in meanwhile, the row is due again) or LOST."""
    if await _guarded(
        session,
        and_(_held(claim), OutboxMessage.version == claim.version),
        status=DONE,
        attempts=OutboxMessage.attempts + 1,
        **_UNLEASE,
    ):
        return DONE
    return await _rerun(session, claim)


def _held_all(claims: Sequence[Claim], *, same_version: bool) -> Any:
    """Rows still leased to these claims (and, with `same_version`, with no work folded in since they were claimed)."""
    if same_version:
        keys = tuple_(OutboxMessage.id, OutboxMessage.lease_token, OutboxMessage.version)
        held = keys.in_([(claim.id, claim.token, claim.version) for claim in claims])
    else:
        held = tuple_(OutboxMessage.id, OutboxMessage.lease_token).in_([(claim.id, claim.token) for claim in claims])
    return and_(OutboxMessage.status == PENDING, held)


async def _guarded_many(session: AsyncSession, condition: Any, **values: Any) -> set[int]:
    result = await session.execute(
        update(OutboxMessage)
        .where(condition)
        .values(**values)
        .returning(OutboxMessage.id)
        .execution_options(synchronize_session=False)
    )
    return set(result.scalars())


async def record_done_many(session: AsyncSession, claims: Sequence[Claim]) -> dict[int, str]:
    """`record_done` for several claims in one statement (plus one per row that must rerun): outcome by row id."""
    if not claims:
        return {}
    done = await _guarded_many(
        session, _held_all(claims, same_version=True), status=DONE, attempts=OutboxMessage.attempts + 1, **_UNLEASE
    )
    outcomes = {claim.id: DONE for claim in claims if claim.id in done}
    for claim in claims:
        if claim.id not in done:
            outcomes[claim.id] = await _rerun(session, claim)
    return outcomes


async def record_retry_many(
    session: AsyncSession, claims: Sequence[Claim], error: str, delay_s: float
) -> dict[int, str]:
    """`record_retry` for several claims in one statement, all due `delay_s` from now: "retry" or LOST by row id."""
    if not claims:
        return {}
    retried = await _guarded_many(
        session,
        _held_all(claims, same_version=False),
        attempts=OutboxMessage.attempts + 1,
        next_attempt_at=utcnow() + timedelta(seconds=max(0.0, delay_s)),
        last_error=error[:_ERROR_LIMIT],
        **_UNLEASE,
    )
    return {claim.id: "retry" if claim.id in retried else LOST for claim in claims}


async def record_retry(session: AsyncSession, claim: Claim, error: str, delay_s: float) -> str:
    """Count a failed try and make the row due `delay_s` from now: "retry", or LOST."""
    return (await record_retry_many(session, [claim], error, delay_s))[claim.id]


async def record_dead(session: AsyncSession, claim: Claim, error: str) -> str:
    """Give up on the row (a dead letter, for `outbox list` / `outbox retry`): DEAD, RERUN or LOST.

    A row that received new work during the failed run is not given up on: the new work gets its own try.
    """
    if await _guarded(
        session,
        and_(_held(claim), OutboxMessage.version == claim.version),
        status=DEAD,
        attempts=OutboxMessage.attempts + 1,
        last_error=error[:_ERROR_LIMIT],
        **_UNLEASE,
    ):
        OUTBOX_DEAD.labels(claim.kind).inc()
        log.error("outbox.dead", id=claim.id, kind=claim.kind, attempts=claim.attempts + 1, error=error[:500])
        return DEAD
    return await _rerun(session, claim, attempts=OutboxMessage.attempts + 1, last_error=error[:_ERROR_LIMIT])


async def put_back(session: AsyncSession, claim: Claim, error: str) -> str:
    """Return the row untouched (no attempt counted, due now) because the worker pauses: "paused", or LOST."""
    done = await _guarded(session, _held(claim), next_attempt_at=utcnow(), last_error=error[:_ERROR_LIMIT], **_UNLEASE)
    return "paused" if done else LOST


async def release(session: AsyncSession, claim: Claim) -> bool:
    """Give the row back untouched (the worker stops mid-run); True if the lease was still ours."""
    return await _guarded(session, _held(claim), **_UNLEASE)


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
    result = await session.execute(
        _MARK_DONE, {"message_id": message.id, "seen_version": message.version, "now": utcnow()}
    )
    done = bool(rowcount(result))
    if done:
        for name, value in (("status", DONE), ("attempts", message.attempts + 1), *_UNLEASE.items()):
            set_committed_value(message, name, value)
    return done


async def give_up(session: AsyncSession, message: OutboxMessage, error: str) -> bool:
    """Dead-letter a pending, unleased row whose writer met an error no retry can fix (e.g. Stream refused it)."""
    now = utcnow()
    dead = await _guarded(
        session,
        and_(OutboxMessage.id == message.id, OutboxMessage.status == PENDING, _unleased(now)),
        status=DEAD,
        attempts=OutboxMessage.attempts + 1,
        last_error=error[:_ERROR_LIMIT],
        **_UNLEASE,
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
    query = update(OutboxMessage).where(OutboxMessage.status.in_([PENDING, DEAD]), _unleased(now))
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
        query.values(status=PENDING, attempts=0, next_attempt_at=now, **_UNLEASE).execution_options(
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
        .values(status=PENDING, attempts=0, next_attempt_at=utcnow(), **_UNLEASE)
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
