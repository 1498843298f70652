"""Read-path test rows, written straight into the database (no Stream calls), and an emulator of their own."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select

from onecrew_chat.db import utcnow
from onecrew_chat.identity import ConversationType, Identity, group_channel_id, pair_channel_id, pair_key
from onecrew_chat.models import Conversation, ConversationParticipant, OutboxMessage
from onecrew_chat.sync.queue import PROVISION, provision_dedupe_key
from tests.factories import add_users
from tests.support import STREAM_KEY, STREAM_SECRET


async def add_conversation(
    session,
    *members: Identity,
    conversation_type: str | None = None,
    channel_id: str | None = None,
    name: str | None = None,
    chat_status: str = "ready",
    verified: bool = True,
    last_message_at: datetime | None = None,
    preview: str | None = None,
    read_at: dict[Identity, datetime | None] | None = None,
    created_at: datetime | None = None,
) -> Conversation:
    """A conversation between `members` (the first is the creator), committed, with its participants loaded."""
    creator = members[0]
    if conversation_type is None:
        kinds = {m.kind.value for m in members}
        if len(members) != 2:
            conversation_type = ConversationType.GROUP.value
        elif len(kinds) == 2:
            conversation_type = ConversationType.USER_COMPANY.value
        else:
            conversation_type = f"{creator.kind.value}_{creator.kind.value}"
    is_pair = conversation_type != ConversationType.GROUP.value
    if channel_id is None:
        channel_id = pair_channel_id(conversation_type, *members) if is_pair else group_channel_id()
    now = created_at or utcnow()
    conversation = Conversation(
        channel_id=channel_id,
        conversation_type=conversation_type,
        name=name,
        pair_key=pair_key(*members) if is_pair else None,
        created_by_type=creator.kind.value,
        created_by_id=creator.entity_id,
        chat_status=chat_status,
        stream_verified_at=now if verified else None,
        last_message_at=last_message_at,
        last_message_preview=preview,
        created_at=now,
        updated_at=now,
    )
    read_at = read_at or {}
    conversation.participants = [
        ConversationParticipant(
            participant_type=m.kind.value, participant_id=m.entity_id, joined_at=now, last_read_at=read_at.get(m)
        )
        for m in members
    ]
    session.add(conversation)
    await session.commit()
    return conversation


async def unprovisioned_pair(session) -> tuple[str, str, Conversation]:
    """Two users and their conversation whose channel never reached Stream: (me, other, conversation)."""
    me, other = await add_users(session, 2)
    conversation = await add_conversation(
        session, Identity.user(me), Identity.user(other), chat_status="provisioning", verified=False
    )
    return me, other, conversation


async def failed_pair(session) -> tuple[str, str, Conversation]:
    """Two users and their conversation the worker gave up on: `failed`, with the dead outbox row it left."""
    me, other = await add_users(session, 2)
    conversation = await add_conversation(
        session, Identity.user(me), Identity.user(other), chat_status="failed", verified=False
    )
    session.add(
        OutboxMessage(
            kind=PROVISION,
            payload={"conversation_id": conversation.id},
            dedupe_key=provision_dedupe_key(conversation.id),
            status="dead",
            attempts=20,
            next_attempt_at=utcnow(),
            last_error="StreamUnavailable: GetOrCreateChannel HTTP 503",
        )
    )
    await session.commit()
    return me, other, conversation


async def provision_rows(session) -> list[tuple[str, str, str]]:
    """(conversation_id, status, dedupe_key) of every provisioning outbox row, oldest first."""
    rows = await session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.kind == PROVISION)
        .order_by(OutboxMessage.id)
        .execution_options(populate_existing=True)
    )
    return [(r.payload["conversation_id"], r.status, r.dedupe_key) for r in rows]


def stream_down(emulator, status: int = 503) -> None:
    """Every call that provisioning makes fails with `status` until the faults are reset."""
    for operation in ("UpdateUsers", "GetOrCreateChannel"):
        emulator.faults.set_error_rate(operation, 1.0, status=status)


@pytest.fixture
def private_emulator_server():
    """An emulator no other test's app knows, for exact call counts.

    The session's emulator may still log a call an earlier test gave up on (a client timeout or deadline leaves the
    emulator finishing it, e.g. /readyz's 1 s cut of a 3 s latency logs GetApp 2 s later), so "no Stream call" is
    counted here, where only this test's app can call.
    """
    from stream_emulator import Emulator, EmulatorServer

    server = EmulatorServer(Emulator(api_key=STREAM_KEY, api_secret=STREAM_SECRET))
    server.start()
    yield server
    server.stop()
