"""A provisioning run's claim on its conversation: a lease token and expiry on the row, taken and given back in
short transactions, and the in-process wake-ups of the runs waiting for it (see sync/channels.py)."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Table, bindparam, case, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from onecrew_chat.db import unit_of_work, utcnow
from onecrew_chat.identity import ChatStatus
from onecrew_chat.models import Conversation, OutboxMessage
from onecrew_chat.outbox import repository as outbox
from onecrew_chat.runtime import Runtime, Shared
from onecrew_chat.sync.read_model import Provisionable


def lease_s(deadline_s: float) -> float:
    """How long a claim holds: past the holder's deadline, so that only a dead holder's claim expires."""
    return 2 * deadline_s + 5.0


class Waiters:
    """In-process wake-ups: the run holding a claim sets its event when done, so waiters here look again at once."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def get(self, conversation_id: str) -> asyncio.Event | None:
        return self._events.get(conversation_id)

    def hold(self, conversation_id: str) -> asyncio.Event:
        event = self._events[conversation_id] = asyncio.Event()
        return event

    def release(self, conversation_id: str, event: asyncio.Event) -> None:
        if self._events.get(conversation_id) is event:
            del self._events[conversation_id]
        event.set()


_WAITERS = Shared("provisioning waiters", lambda _runtime: Waiters())


def waiters(runtime: Runtime) -> Waiters:
    """The process's provisioning waiters (one per runtime)."""
    return runtime.shared(_WAITERS)


DONE = "done"


def by_id(conversation_id: str) -> Any:
    """The conversation by internal id or by channel id (outbox rows and old callers hold either)."""
    return or_(Conversation.id == conversation_id, Conversation.channel_id == conversation_id)


@dataclass(frozen=True)
class NewClaim:
    """A claim taken on a conversation as it is inserted: its token and lease expiry (the row's columns)."""

    token: str
    until: datetime


def new_claim(deadline_s: float) -> NewClaim:
    """The claim a create writes into the conversation row it inserts (no other run can have one on a new row)."""
    return NewClaim(secrets.token_hex(16), utcnow() + timedelta(seconds=lease_s(deadline_s)))


async def claim(sessionmaker: async_sessionmaker[AsyncSession], conversation_id: str, hold_s: float) -> str | None:
    """A short transaction: a claim token, `DONE` when the conversation is provisioned, None while another run holds it."""
    token = secrets.token_hex(16)
    now = utcnow()
    async with unit_of_work(sessionmaker) as session:
        result = await session.execute(
            update(Conversation)
            .where(
                by_id(conversation_id),
                or_(Conversation.chat_status != ChatStatus.READY, Conversation.stream_verified_at.is_(None)),
                or_(Conversation.provision_lease_until.is_(None), Conversation.provision_lease_until <= now),
            )
            .values(provision_lease_token=token, provision_lease_until=now + timedelta(seconds=hold_s))
            .execution_options(synchronize_session=False)
        )
        if cast(CursorResult[Any], result).rowcount == 1:
            return token
        row = (
            await session.execute(
                select(Conversation.chat_status, Conversation.stream_verified_at).where(by_id(conversation_id))
            )
        ).one_or_none()
    if row is None or (row.chat_status == ChatStatus.READY and row.stream_verified_at is not None):
        return DONE
    return None


def ready_statement() -> Any:
    """UPDATE conversation: ready and verified now, the claim given back if it is still ours (built once)."""
    conversation = cast(Table, Conversation.__table__).c
    mine = conversation.provision_lease_token == bindparam("token")
    return (
        update(cast(Table, Conversation.__table__))
        .where(
            or_(
                conversation.id == bindparam("conversation_id"), conversation.channel_id == bindparam("conversation_id")
            )
        )
        .values(
            chat_status=ChatStatus.READY,
            stream_verified_at=bindparam("now"),
            updated_at=bindparam("now"),
            provision_lease_token=case((mine, None), else_=conversation.provision_lease_token),
            provision_lease_until=case((mine, None), else_=conversation.provision_lease_until),
        )
    )


READY_STATEMENT = ready_statement()


async def record_ready(session: AsyncSession, conversation_id: str, token: str) -> None:
    """The channel holds every participant: say so, and give back the claim if it is still ours."""
    await session.execute(READY_STATEMENT, {"conversation_id": conversation_id, "token": token, "now": utcnow()})


# record_ready and the outbox row's mark_done as one PostgreSQL statement (a data-modifying WITH runs exactly once,
# whether or not the outer statement reads it): one statement is atomic on its own, so it needs no transaction.
# The outbox row's updated_at is bound here: SQLAlchemy computes no onupdate default for a statement with a WITH.
READY_AND_DONE_STATEMENT = (
    outbox.mark_done_statement()
    .values(updated_at=bindparam("now"))
    .add_cte(READY_STATEMENT.returning(cast(Table, Conversation.__table__).c.id).cte("ready"))
)


def one_statement_ready(sessionmaker: async_sessionmaker[AsyncSession]) -> bool:
    """Whether the database can record ready and done in one statement (PostgreSQL; SQLite has no writing WITH)."""
    return bool(sessionmaker.kw["bind"].dialect.name == "postgresql")


async def record_ready_and_done(
    session: AsyncSession, conversation_id: str, token: str, message: OutboxMessage
) -> bool:
    """record_ready and outbox.mark_done of `message` in one statement (PostgreSQL only). True if the row is done."""
    now = utcnow()
    params = {"conversation_id": conversation_id, "token": token, **outbox.mark_done_params(message, now)}
    return outbox.marked_done(message, await session.execute(READY_AND_DONE_STATEMENT, params))


def mark_ready(conversation: Provisionable | None) -> None:
    """The caller's copy of the conversation says what the row now says: ready and verified."""
    if conversation is not None:
        conversation.chat_status, conversation.stream_verified_at = ChatStatus.READY, utcnow()


async def release(session: AsyncSession, conversation_id: str, token: str) -> None:
    await session.execute(
        update(Conversation)
        .where(by_id(conversation_id), Conversation.provision_lease_token == token)
        .values(provision_lease_token=None, provision_lease_until=None)
        .execution_options(synchronize_session=False)
    )
