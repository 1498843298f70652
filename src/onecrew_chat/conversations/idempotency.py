"""Idempotency-Key: one stored answer per caller and key, replayed for 24 h; 422 on a different body, 409 while running.

The key's life (claim, bind, store, release) is kept here; the answer stored is rendered by the API edge
(api/idempotent.py), which runs the request once under the key.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from onecrew_chat.db import unit_of_work, utcnow
from onecrew_chat.errors import BadRequest, Conflict, Unprocessable
from onecrew_chat.logging import get_logger
from onecrew_chat.metrics import IDEMPOTENT_REPLAYS
from onecrew_chat.models import IdempotencyKey
from onecrew_chat.runtime import Runtime

log = get_logger(__name__)

REPLAY_HEADER = "Idempotent-Replayed"
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # visible ASCII, at most 255 characters (as Stripe allows)
# A "running" key this long past the request's deadline belongs to a request that died: a retry resumes the
# conversation it recorded, or takes the key over when it recorded none. Every write of a run (binding its
# conversation, storing or releasing its answer) is guarded by its claim, so a run that was only slow, not dead,
# can never record a second conversation under a key taken over meanwhile: its recording is rolled back.
STALLED_AFTER_S = 5.0
# running | interrupted (bound to a conversation, its request failed after recording it) | done
INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class Claim:
    """This run holds the key: it was (re)written `running` at `claimed_at`; `resume_id` is an earlier run's
    conversation to finish and answer (None: make it)."""

    caller: str
    key: str
    claimed_at: datetime
    resume_id: str | None = None

    def mine(self) -> tuple[Any, ...]:
        """The WHERE clause of a write that may only touch the key while this run holds it."""
        return (
            IdempotencyKey.caller == self.caller,
            IdempotencyKey.key == self.key,
            IdempotencyKey.created_at == self.claimed_at,
        )

    async def bind(self, session: AsyncSession, conversation_id: str) -> None:
        """Bind the key to the conversation a create records, in that same transaction (so a crash cannot split
        them); a key taken over meanwhile makes the recording roll back (409) instead of making a second one."""
        result = await session.execute(
            update(IdempotencyKey)
            .where(*self.mine(), IdempotencyKey.conversation_id.is_(None))
            .values(conversation_id=conversation_id)
            .execution_options(synchronize_session=False)
        )
        if cast(CursorResult[Any], result).rowcount != 1:
            raise Conflict(
                "A retry with this Idempotency-Key took over while this request was still running; retry shortly",
                code="idempotency_key_in_use",
            )


@dataclass(frozen=True)
class Answer:
    """The answer stored for a key: the HTTP status and JSON body the API edge rendered, replayed as they are."""

    status: int
    body: dict[str, Any]


def parse_key(raw: str) -> str:
    """The Idempotency-Key header value; 400 when it is empty, too long or not visible ASCII."""
    key = raw.strip()
    if not _KEY.match(key):
        raise BadRequest(
            "Idempotency-Key must be 1 to 255 visible ASCII characters (a UUID is a good choice)",
            code="invalid_idempotency_key",
        )
    return key


def fingerprint(source: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a request body."""
    canonical = json.dumps(source, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def claim(runtime: Runtime, caller: str, key: str, print_: str) -> Answer | Claim:
    """Take the key for this request (a Claim) or return the stored answer; 422 for another body, 409 while running.

    A running key older than a live request can be, or interrupted, is taken over: resumed when it is bound to a
    conversation (the conversation exists, so the retry must answer it rather than make another).
    """
    ttl = timedelta(seconds=runtime.settings.idempotency_ttl_s)
    stalled_after = timedelta(seconds=STALLED_AFTER_S + 2 * runtime.settings.provision_deadline_s)
    for _attempt in range(3):
        now = utcnow()
        try:
            async with unit_of_work(runtime.sessionmaker) as session:
                row = await session.scalar(
                    select(IdempotencyKey)
                    .where(IdempotencyKey.caller == caller, IdempotencyKey.key == key)
                    .with_for_update()
                )
                if row is None:
                    session.add(
                        IdempotencyKey(caller=caller, key=key, fingerprint=print_, created_at=now, expires_at=now + ttl)
                    )
                    return Claim(caller, key, now)
                expired = row.expires_at <= now
                # A live request answers within its deadline; past that (with slack) it is taken over.
                stalled = row.status == INTERRUPTED or (
                    row.status == "running" and row.created_at <= now - stalled_after
                )
                if stalled and not expired and row.fingerprint != print_:
                    raise _reused()
                if expired or stalled:
                    resume_id = None if expired else row.conversation_id
                    row.fingerprint, row.status, row.created_at, row.expires_at = print_, "running", now, now + ttl
                    row.response_status = row.response_body = None
                    row.conversation_id = resume_id
                    if resume_id is not None:
                        log.info("idempotency.resumed", caller=caller, conversation_id=resume_id)
                    else:
                        log.info("idempotency.taken_over", caller=caller, expired=expired)
                    return Claim(caller, key, now, resume_id)
                if row.fingerprint != print_:
                    raise _reused()
                if row.status == "running":
                    raise Conflict(
                        "A request with this Idempotency-Key is still being processed; retry shortly",
                        code="idempotency_key_in_use",
                    )
                IDEMPOTENT_REPLAYS.inc()
                log.info("idempotency.replayed", caller=caller, status=row.response_status or 200)
                return Answer(row.response_status or 200, row.response_body or {})
        except IntegrityError:
            continue  # another request inserted the key first: read what it stored
    raise Conflict(
        "A request with this Idempotency-Key is still being processed; retry shortly", code="idempotency_key_in_use"
    )


def _reused() -> Unprocessable:
    return Unprocessable(
        "This Idempotency-Key was already used with a different request body; use a new key",
        code="idempotency_key_reused",
    )


async def store(runtime: Runtime, claim: Claim, answer: Answer) -> None:
    """Keep the final answer for replays (unless a retry took the key over meanwhile)."""
    async with unit_of_work(runtime.sessionmaker) as session:
        await session.execute(
            update(IdempotencyKey)
            .where(*claim.mine())
            .values(status="done", response_status=answer.status, response_body=answer.body)
            .execution_options(synchronize_session=False)
        )


async def release(runtime: Runtime, claim: Claim) -> None:
    """Forget the key after a server-side failure, so that a retry runs the request again.

    A key already bound to a conversation stays, marked interrupted: its retry resumes that conversation at once
    instead of making another. A key a retry took over meanwhile is left to it.
    """
    async with unit_of_work(runtime.sessionmaker) as session:
        mine = claim.mine()
        await session.execute(delete(IdempotencyKey).where(*mine, IdempotencyKey.conversation_id.is_(None)))
        await session.execute(
            update(IdempotencyKey)
            .where(*mine, IdempotencyKey.conversation_id.is_not(None))
            .values(status=INTERRUPTED)
            .execution_options(synchronize_session=False)
        )


async def purge_expired(runtime: Runtime) -> int:
    """Delete keys past their expiry; returns how many (for a periodic job)."""
    async with unit_of_work(runtime.sessionmaker) as session:
        result = await session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at <= utcnow()))
        return cast(CursorResult[Any], result).rowcount or 0
