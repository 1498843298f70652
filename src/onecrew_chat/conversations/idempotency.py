"""Idempotency-Key: one stored answer per caller and key, replayed for 24 h; 422 on a different body, 409 while running."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from onecrew_chat.db import unit_of_work, utcnow
from onecrew_chat.errors import AppError, BadRequest, Conflict, Unprocessable
from onecrew_chat.logging import get_logger
from onecrew_chat.metrics import IDEMPOTENT_REPLAYS
from onecrew_chat.models import IdempotencyKey
from onecrew_chat.runtime import Runtime

log = get_logger(__name__)

REPLAY_HEADER = "Idempotent-Replayed"
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # visible ASCII, at most 255 characters (as Stripe allows)
# A "running" key older than this belongs to a request that died; a retry may take it over.
ABANDONED_AFTER_S = 60.0
# A "running" key bound to a conversation this long past the request's deadline belongs to a request that died
# after recording it: a retry resumes that conversation (never makes another).
STALLED_AFTER_S = 5.0
# running | interrupted (bound to a conversation, its request failed after recording it) | done
INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class Resume:
    """An earlier run of this key recorded a conversation and did not answer (it died): finish and answer that one."""

    conversation_id: str


@dataclass(frozen=True)
class Answer:
    """An HTTP answer to send: status, JSON body and whether it is a replay."""

    status: int
    body: dict[str, Any]
    replayed: bool = False


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


async def claim(runtime: Runtime, caller: str, key: str, print_: str) -> Answer | Resume | None:
    """Take the key for this request (None) or return the stored answer; 422 for another body, 409 while running.

    A running key already bound to a conversation, older than a live request can be, is resumed (Resume): the
    conversation exists, so the retry must answer it rather than make another.
    """
    ttl = timedelta(seconds=runtime.settings.idempotency_ttl_s)
    abandoned = timedelta(seconds=ABANDONED_AFTER_S + runtime.settings.provision_deadline_s)
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
                    return None
                expired = row.expires_at <= now
                dead = row.status == "running" and row.created_at <= now - abandoned
                # A live request answers within its deadline; past that (with slack) its conversation is resumed.
                stalled = row.created_at <= now - stalled_after
                resumable = row.status == INTERRUPTED or (row.status == "running" and stalled)
                if row.conversation_id is not None and resumable and not expired:
                    if row.fingerprint != print_:
                        raise _reused()
                    log.info("idempotency.resumed", caller=caller, conversation_id=row.conversation_id)
                    return Resume(row.conversation_id)
                if expired or dead:
                    row.fingerprint, row.status, row.created_at, row.expires_at = print_, "running", now, now + ttl
                    row.response_status = row.response_body = None
                    row.conversation_id = None
                    log.info("idempotency.taken_over", caller=caller, expired=expired)
                    return None
                if row.fingerprint != print_:
                    raise _reused()
                if row.status == "running":
                    raise Conflict(
                        "A request with this Idempotency-Key is still being processed; retry shortly",
                        code="idempotency_key_in_use",
                    )
                IDEMPOTENT_REPLAYS.inc()
                return Answer(row.response_status or 200, row.response_body or {}, replayed=True)
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


def binder(caller: str, key: str) -> Callable[[AsyncSession, str], Awaitable[None]]:
    """Binds the key to the conversation a create records, in that same transaction (so a crash cannot split them)."""

    async def bind(session: AsyncSession, conversation_id: str) -> None:
        await session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.caller == caller, IdempotencyKey.key == key)
            .values(conversation_id=conversation_id)
            .execution_options(synchronize_session=False)
        )

    return bind


async def store(runtime: Runtime, caller: str, key: str, answer: Answer) -> None:
    """Keep the final answer for replays."""
    async with unit_of_work(runtime.sessionmaker) as session:
        row = await session.scalar(
            select(IdempotencyKey).where(IdempotencyKey.caller == caller, IdempotencyKey.key == key)
        )
        if row is not None:
            row.status, row.response_status, row.response_body = "done", answer.status, answer.body


async def release(runtime: Runtime, caller: str, key: str) -> None:
    """Forget the key after a server-side failure, so that a retry runs the request again.

    A key already bound to a conversation stays, marked interrupted: its retry resumes that conversation at once
    instead of making another.
    """
    async with unit_of_work(runtime.sessionmaker) as session:
        mine = (IdempotencyKey.caller == caller, IdempotencyKey.key == key)
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


async def run_once(
    runtime: Runtime,
    *,
    caller: str,
    key: str,
    print_: str,
    work: Callable[[str | None], Awaitable[dict[str, Any]]],
) -> Answer:
    """Run `work` once per (caller, key); client errors (4xx) are stored and replayed, server errors are not.

    `work` gets the conversation an earlier, interrupted run of the key recorded (None the first time).
    """
    stored = await claim(runtime, caller, key, print_)
    if isinstance(stored, Answer):
        log.info("idempotency.replayed", caller=caller, status=stored.status)
        return stored
    resume_id = stored.conversation_id if isinstance(stored, Resume) else None
    try:
        data = await work(resume_id)
    except AppError as exc:
        if exc.status_code < 500:
            await store(
                runtime,
                caller,
                key,
                Answer(exc.status_code, {"success": False, "error": exc.message, "code": exc.code}),
            )
        else:
            await release(runtime, caller, key)
        raise
    except Exception:
        await release(runtime, caller, key)
        raise
    answer = Answer(200, {"success": True, "data": data})
    await store(runtime, caller, key, answer)
    return answer
