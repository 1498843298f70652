"""GET /api/chat/conversations/unread-count: conversations with a message after the profile's last_read_at
(docs/reference/app-contract.md#unread-count)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select, text, update

from onecrew_chat.conversations.unread import UnreadCache, count_unread
from onecrew_chat.db import make_engine, make_sessionmaker, utcnow
from onecrew_chat.identity import Identity
from onecrew_chat.models import Conversation, ConversationParticipant
from tests.api.conversation_rows import add_conversation
from tests.conftest import make_settings
from tests.factories import add_company, add_user, add_users
from tests.support import auth, new_id, wait_until

URL = "/api/chat/conversations/unread-count"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=1)


async def arrange(session):
    """Me (a user who owns a company) with read, unread, never-read and empty conversations."""
    me, a, b, c, d = await add_users(session, 5)
    company = await add_company(session, owner=me)
    user, firm = Identity.user(me), Identity.company(company)
    now = utcnow()
    hour = timedelta(hours=1)
    # unread: a message after my read marker
    await add_conversation(session, user, Identity.user(a), last_message_at=now, read_at={user: now - hour})
    # unread: a message and I never read
    await add_conversation(session, user, Identity.user(b), last_message_at=now - hour)
    # read: my marker is after the last message
    await add_conversation(session, user, Identity.user(c), last_message_at=now - hour, read_at={user: now})
    # empty: no message at all
    await add_conversation(session, user, Identity.user(d))
    # the company's: unread for the company, not for me as a user
    await add_conversation(session, firm, Identity.user(a), last_message_at=now)
    return me, company


async def test_counts_conversations_with_a_message_after_last_read_at(client, session):
    me, company = await arrange(session)
    response = await client.get(URL + "?profile_type=user", headers=auth(me))
    assert response.status_code == 200
    assert response.json() == {
        "success": True,
        "data": {"unread_count": 2, "profile_type": "user", "profile_id": me, "cached": False},
    }
    as_company = await client.get(URL + f"?profile_type=company&company_id={company}", headers=auth(me))
    assert as_company.json()["data"] == {
        "unread_count": 1,
        "profile_type": "company",
        "profile_id": company,
        "cached": False,
    }


async def test_a_new_message_written_to_the_conversation_counts_for_every_participant(client, session):
    """The participant copy of last_message_at follows the conversation, whoever writes it (database triggers)."""
    me, other = await add_users(session, 2)
    conversation = await add_conversation(
        session, Identity.user(me), Identity.user(other), read_at={Identity.user(me): utcnow()}
    )
    assert await count_unread(session, Identity.user(me)) == 0
    await session.execute(
        update(Conversation)
        .where(Conversation.id == conversation.id)
        .values(last_message_at=utcnow() + timedelta(seconds=1))
    )
    await session.commit()
    for user in (me, other):
        response = await client.get(URL + "?profile_type=user", headers=auth(user))
        assert response.json()["data"]["unread_count"] == 1


async def test_orm_writes_and_participants_added_later_keep_the_copy_equal(session):
    """The triggers on both databases: an ORM attribute write, a later participant, and a later read marker."""
    me, other, late = await add_users(session, 3)
    conversation = await add_conversation(
        session, Identity.user(me), Identity.user(other), conversation_type="group", read_at={Identity.user(me): T0}
    )
    conversation.last_message_at = T1
    await session.commit()
    assert [await count_unread(session, Identity.user(u)) for u in (me, other, late)] == [1, 1, 0]

    session.add(ConversationParticipant(conversation_id=conversation.id, participant_type="user", participant_id=late))
    await session.commit()
    assert await count_unread(session, Identity.user(late)) == 1, "a new participant gets the conversation's time"

    await session.execute(
        update(ConversationParticipant)
        .where(ConversationParticipant.participant_id.in_([me, late]))
        .values(last_read_at=T1 + timedelta(seconds=1))
    )
    await session.commit()
    assert [await count_unread(session, Identity.user(u)) for u in (me, other, late)] == [0, 1, 0]


async def test_second_call_is_cached(client, session):
    me, _company = await arrange(session)
    first = await client.get(URL + "?profile_type=user", headers=auth(me))
    second = await client.get(URL + "?profile_type=user", headers=auth(me))
    assert first.json()["data"]["cached"] is False
    assert second.json()["data"] == {**first.json()["data"], "cached": True}


@pytest.mark.parametrize("query", ["", "?profile_type="])
async def test_profile_type_is_required_here(client, session, query):
    """Unlike token and list (which default to the user), unread-count needs profile_type (the scripts check it)."""
    me = await add_user(session)
    response = await client.get(URL + query, headers=auth(me))
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_profile_type"
    assert response.json()["success"] is False and response.json()["error"]


async def test_a_company_the_caller_does_not_manage_is_403(client, session):
    me, owner = await add_users(session, 2)
    company = await add_company(session, owner=owner)
    response = await client.get(URL + f"?profile_type=company&company_id={company}", headers=auth(me))
    assert response.status_code == 403
    assert response.json()["error"] == "User must be a member of this company"


async def test_401_without_a_valid_token(client):
    response = await client.get(URL + "?profile_type=user")
    assert response.status_code == 401
    assert response.json()["error"] == "Invalid or expired token"


class TestNoCache:
    """With ONECREW_UNREAD_CACHE_TTL_S=0 every answer comes from the database."""

    @pytest.fixture
    def settings(self, sqlite_only_url, emulator, emulator_server):
        return make_settings(sqlite_only_url, emulator_server.base_url, unread_cache_ttl_s=0)

    async def test_never_cached(self, client, session):
        me, _company = await arrange(session)
        for _ in range(2):
            response = await client.get(URL + "?profile_type=user", headers=auth(me))
            assert response.json()["data"]["cached"] is False


async def test_the_count_is_one_scan_of_the_partial_index(session):
    """The query plan on both databases uses ix_conversation_participant_unread and touches no other table."""
    dialect = session.get_bind().dialect.name
    query = (
        "SELECT count(*) FROM conversation_participant WHERE participant_type = 'user' AND participant_id = 'x' "
        "AND last_message_at IS NOT NULL AND (last_read_at IS NULL OR last_message_at > last_read_at)"
    )
    if dialect == "postgresql":
        await session.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(row[0] for row in await session.execute(text("EXPLAIN " + query)))
    else:
        plan = "\n".join(str(row[-1]) for row in await session.execute(text("EXPLAIN QUERY PLAN " + query)))
    assert "ix_conversation_participant_unread" in plan
    assert "conversation " not in plan.replace("conversation_participant", "")


class TestUnreadCache:
    """The cache on a fake clock: TTL, invalidation, and no stale count stored after an invalidation."""

    def make(self, ttl_s: float = 10.0):
        self.now = 100.0
        return UnreadCache(ttl_s, clock=lambda: self.now)

    def test_expires_after_ttl(self):
        cache = self.make()
        cache.put("p", 3, cache.ticket())
        self.now += 9.9
        assert cache.get("p") == 3
        self.now += 0.2
        assert cache.get("p") is None

    def test_invalidate_forgets(self):
        cache = self.make()
        cache.put("p", 3, cache.ticket())
        cache.put("q", 1, cache.ticket())
        cache.invalidate(["p"])
        assert cache.get("p") is None and cache.get("q") == 1

    def test_a_count_read_before_an_invalidation_is_not_stored(self):
        cache = self.make()
        ticket = cache.ticket()
        self.now += 0.001
        cache.invalidate(["p"])  # a webhook committed while the count was being read
        self.now += 0.001
        cache.put("p", 3, ticket)
        assert cache.get("p") is None
        cache.put("p", 4, cache.ticket())
        assert cache.get("p") == 4

    def test_bounded(self):
        self.now = 0.0
        cache = UnreadCache(10.0, clock=lambda: self.now, max_entries=3)
        for n in range(10):
            cache.put(f"p{n}", n, cache.ticket())
        assert sum(cache.get(f"p{n}") is not None for n in range(10)) <= 3


class TestParticipantCopyUnderConcurrency:
    """PostgreSQL: a participant inserted while a message arrives still gets the conversation's newest time."""

    @pytest.fixture
    async def engine(self, postgres_only_url):
        engine = make_engine(url=postgres_only_url)
        yield engine
        await engine.dispose()

    async def arrange(self, engine):
        sessionmaker = make_sessionmaker(engine)
        async with sessionmaker() as session:
            me, joiner = await add_users(session, 2)
            conversation = await add_conversation(
                session,
                Identity.user(me),
                last_message_at=T0,
                read_at={Identity.user(me): T0},
                conversation_type="group",
            )
        return me, joiner, conversation.id

    @staticmethod
    def join(conversation_id: str, user_id: str):
        return insert(ConversationParticipant).values(
            id=new_id(),
            conversation_id=conversation_id,
            participant_type="user",
            participant_id=user_id,
            joined_at=T0,
            created_at=T0,
        )

    @staticmethod
    def message(conversation_id: str):
        return update(Conversation).where(Conversation.id == conversation_id).values(last_message_at=T1)

    @staticmethod
    async def settles(engine, task: asyncio.Task) -> None:
        """Wait until the statement either finished or waits on a row lock (never a blind sleep)."""

        async def waiting_or_done() -> bool:
            if task.done():
                return True
            async with engine.connect() as probe:
                waiting = await probe.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
                    )
                )
            return waiting > 0

        await wait_until(waiting_or_done, timeout=30, what="the statement to finish or wait on a lock")

    async def copies(self, engine, conversation_id: str) -> set:
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(ConversationParticipant.last_message_at).where(
                    ConversationParticipant.conversation_id == conversation_id
                )
            )
            return {row[0] for row in rows}

    async def test_message_first_then_a_participant_joins(self, engine):
        _me, joiner, conversation_id = await self.arrange(engine)
        async with engine.connect() as writer, engine.connect() as adder:
            await writer.begin()
            await writer.execute(self.message(conversation_id))
            await adder.begin()
            adding = asyncio.create_task(adder.execute(self.join(conversation_id, joiner)))
            await self.settles(engine, adding)
            await writer.commit()
            await adding
            await adder.commit()
        assert await self.copies(engine, conversation_id) == {T1}

    async def test_a_participant_joins_first_then_a_message(self, engine):
        _me, joiner, conversation_id = await self.arrange(engine)
        async with engine.connect() as writer, engine.connect() as adder:
            await adder.begin()
            await adder.execute(self.join(conversation_id, joiner))
            await writer.begin()
            writing = asyncio.create_task(writer.execute(self.message(conversation_id)))
            await self.settles(engine, writing)
            await adder.commit()
            await writing
            await writer.commit()
        assert await self.copies(engine, conversation_id) == {T1}
