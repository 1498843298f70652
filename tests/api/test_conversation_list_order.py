"""The list's order and total come from the participant rows' activity_at copy (migration 0012): kept right by the
database whoever writes, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, update

from onecrew_chat.db import utcnow
from onecrew_chat.identity import Identity
from onecrew_chat.models import Conversation, ConversationParticipant
from tests.api.conversation_rows import add_conversation
from tests.factories import add_users
from tests.support import auth

LIST = "/api/chat/conversations?profile_type=user&limit=10"


async def _listed(client, me: str) -> tuple[list[str], int]:
    body = (await client.get(LIST, headers=auth(me))).json()["data"]
    return [c["id"] for c in body["data"]], body["pagination"]["total"]


async def test_a_new_message_moves_a_conversation_to_the_top_and_deleted_ones_leave_page_and_total(client, session):
    me, a, b, c, d = await add_users(session, 5)
    base = utcnow() - timedelta(days=1)
    old = await add_conversation(session, Identity.user(me), Identity.user(a), created_at=base)
    middle = await add_conversation(session, Identity.user(me), Identity.user(b), created_at=base + timedelta(hours=1))
    new = await add_conversation(session, Identity.user(me), Identity.user(c), created_at=base + timedelta(hours=2))
    assert await _listed(client, me) == ([new.channel_id, middle.channel_id, old.channel_id], 3)

    # A message in the oldest conversation (what the message.new webhook writes): first now.
    await session.execute(update(Conversation).where(Conversation.id == old.id).values(last_message_at=utcnow()))
    await session.commit()
    assert await _listed(client, me) == ([old.channel_id, new.channel_id, middle.channel_id], 3)

    # A soft-deleted conversation leaves the page and the total.
    await session.execute(update(Conversation).where(Conversation.id == new.id).values(deleted_at=utcnow()))
    await session.commit()
    assert await _listed(client, me) == ([old.channel_id, middle.channel_id], 2)

    # A participant added later gets the conversation's activity time, not its own insertion time.
    session.add(ConversationParticipant(conversation_id=middle.id, participant_type="user", participant_id=d))
    await session.commit()
    listed_for_d, total_for_d = await _listed(client, d)
    assert (listed_for_d, total_for_d) == ([middle.channel_id], 1)
    body = (await client.get(LIST, headers=auth(d))).json()["data"]["data"][0]
    assert body["last_message_at"] is None  # no message: ordered by creation time

    # Rows removed (a participant, a whole conversation) leave the counted total too.
    await session.execute(delete(ConversationParticipant).where(ConversationParticipant.participant_id == d))
    await session.execute(delete(Conversation).where(Conversation.id == old.id))
    await session.commit()
    assert await _listed(client, d) == ([], 0)
    assert await _listed(client, me) == ([middle.channel_id], 1)
