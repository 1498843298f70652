"""The worker's side of the outbox: lease due rows to a token, then record each run's outcome under it.

A row is claimed alone (`claim_one`), or with more due rows of its kind (`claim_more`) for a kind whose handler
takes a batch; every row of a batch still has a lease token of its own, and its outcome is recorded under it.
Every outcome is recorded by a statement guarded by `id`, `lease_token` and `status = 'pending'`: a worker whose
lease ran out (and whose row another worker took) changes nothing.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, and_, cast, literal, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from onecrew_chat.db import utcnow
from onecrew_chat.logging import get_logger
from onecrew_chat.metrics import OUTBOX_DEAD
from onecrew_chat.models import OutboxMessage
from onecrew_chat.outbox.repository import (
    DEAD,
    DONE,
    ERROR_LIMIT,
    PENDING,
    UNLEASE,
    Outcome,
    guarded_update,
    is_postgres,
    unleased,
)

log = get_logger(__name__)

RETRY_BASE_S = 1.0
RETRY_CAP_S = 300.0


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


def _due(now: datetime) -> list[Any]:
    """Pending rows due by `now` that no lease holds: what a claim may take."""
    return [OutboxMessage.status == PENDING, OutboxMessage.next_attempt_at <= now, unleased(now)]


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


async def claim_one(session: AsyncSession, *, lease_s: float, kinds: Collection[str] | None = None) -> Claim | None:
    """Lease the next due row to a fresh token for `lease_s` seconds, or None; the caller commits at once.

    `kinds`: only rows of these kinds (the ones this worker can run). During a rolling upgrade a row of a kind only
    the newer version knows waits for a worker of that version, instead of failing in an older one.
    PostgreSQL: the row is picked `FOR UPDATE SKIP LOCKED`, so concurrent claimers never wait for or share one.
    SQLite: the UPDATE repeats the conditions (a compare-and-set; SQLite runs one writer at a time).
    """
    now = utcnow()
    pick = select(OutboxMessage.id).where(*_due(now)).order_by(OutboxMessage.next_attempt_at, OutboxMessage.id).limit(1)
    if kinds is not None:
        pick = pick.where(OutboxMessage.kind.in_(sorted(kinds)))
    if is_postgres(session):
        pick = pick.with_for_update(skip_locked=True)
    token = uuid.uuid4().hex
    row = (
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == pick.scalar_subquery(), OutboxMessage.status == PENDING, unleased(now))
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
    if is_postgres(session):
        # Materialized, so the LIMIT holds: a subquery under IN may be rescanned and pick more rows.
        picked = pick.with_for_update(skip_locked=True).cte("picked").prefix_with("MATERIALIZED")
    prefix = uuid.uuid4().hex[:20] + "-"
    rows = (
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(select(picked.c.id)), OutboxMessage.status == PENDING, unleased(now))
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


async def _rerun(session: AsyncSession, claim: Claim, **values: Any) -> Outcome:
    """New work arrived during the run (the version moved): release the row to run again; RERUN, or LOST."""
    if await guarded_update(session, _held(claim), **UNLEASE, **values):
        log.info("outbox.rerun", id=claim.id, kind=claim.kind)
        return Outcome.RERUN
    return Outcome.LOST


async def record_done(session: AsyncSession, claim: Claim) -> Outcome:
    """The run succeeded: DONE, RERUN (work was folded in meanwhile, the row is due again) or LOST."""
    if await guarded_update(
        session,
        and_(_held(claim), OutboxMessage.version == claim.version),
        status=DONE,
        attempts=OutboxMessage.attempts + 1,
        **UNLEASE,
    ):
        return Outcome.DONE
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


async def record_done_many(session: AsyncSession, claims: Sequence[Claim]) -> dict[int, Outcome]:
    """`record_done` for several claims in one statement (plus one per row that must rerun): outcome by row id."""
    if not claims:
        return {}
    done = await _guarded_many(
        session, _held_all(claims, same_version=True), status=DONE, attempts=OutboxMessage.attempts + 1, **UNLEASE
    )
    outcomes = {claim.id: Outcome.DONE for claim in claims if claim.id in done}
    for claim in claims:
        if claim.id not in done:
            outcomes[claim.id] = await _rerun(session, claim)
    return outcomes


async def record_retry_many(
    session: AsyncSession, claims: Sequence[Claim], error: str, delay_s: float
) -> dict[int, Outcome]:
    """`record_retry` for several claims in one statement, all due `delay_s` from now: "retry" or LOST by row id."""
    if not claims:
        return {}
    retried = await _guarded_many(
        session,
        _held_all(claims, same_version=False),
        attempts=OutboxMessage.attempts + 1,
        next_attempt_at=utcnow() + timedelta(seconds=max(0.0, delay_s)),
        last_error=error[:ERROR_LIMIT],
        **UNLEASE,
    )
    return {claim.id: Outcome.RETRY if claim.id in retried else Outcome.LOST for claim in claims}


async def record_retry(session: AsyncSession, claim: Claim, error: str, delay_s: float) -> Outcome:
    """Count a failed try and make the row due `delay_s` from now: "retry", or LOST."""
    return (await record_retry_many(session, [claim], error, delay_s))[claim.id]


async def record_dead(session: AsyncSession, claim: Claim, error: str) -> Outcome:
    """Give up on the row (a dead letter, for `outbox list` / `outbox retry`): DEAD, RERUN or LOST.

    A row that received new work during the failed run is not given up on: the new work gets its own try.
    """
    if await guarded_update(
        session,
        and_(_held(claim), OutboxMessage.version == claim.version),
        status=DEAD,
        attempts=OutboxMessage.attempts + 1,
        last_error=error[:ERROR_LIMIT],
        **UNLEASE,
    ):
        OUTBOX_DEAD.labels(claim.kind).inc()
        log.error("outbox.dead", id=claim.id, kind=claim.kind, attempts=claim.attempts + 1, error=error[:500])
        return Outcome.DEAD
    return await _rerun(session, claim, attempts=OutboxMessage.attempts + 1, last_error=error[:ERROR_LIMIT])


async def put_back(session: AsyncSession, claim: Claim, error: str) -> Outcome:
    """Return the row untouched (no attempt counted, due now) because the worker pauses: "paused", or LOST."""
    done = await guarded_update(
        session, _held(claim), next_attempt_at=utcnow(), last_error=error[:ERROR_LIMIT], **UNLEASE
    )
    return Outcome.PAUSED if done else Outcome.LOST


async def release(session: AsyncSession, claim: Claim) -> bool:
    """Give the row back untouched (the worker stops mid-run); True if the lease was still ours."""
    return await guarded_update(session, _held(claim), **UNLEASE)
