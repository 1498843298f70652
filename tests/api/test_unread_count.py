"""GET /api/chat/conversations/unread-count: conversations with a message after the profile's last_read_at (§5.3)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text, update

from onecrew_chat.db import utcnow
from onecrew_chat.identity import Identity
from onecrew_chat.models import Conversation
from onecrew_chat.reads.unread import UnreadCache, count_unread
from tests.api.conversation_rows import add_conversation
from tests.conftest import make_settings
from tests.factories import add_company, add_user, add_users
from tests.support import auth

URL = "/api/chat/conversations/unread-count"


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
        "unread_count": 1, "profile_type": "company", "profile_id": company, "cached": False,
    }


async def test_a_new_message_written_to_the_conversation_counts_for_every_participant(client, session):
    """The participant copy of last_message_at follows the conversation, whoever writes it (database triggers)."""
    me, other = await add_users(session, 2)
    conversation = await add_conversation(session, Identity.user(me), Identity.user(other), read_at={Identity.user(me): utcnow()})
    assert await count_unread(session, Identity.user(me)) == 0
    await session.execute(
        update(Conversation).where(Conversation.id == conversation.id).values(last_message_at=utcnow() + timedelta(seconds=1))
    )
    await session.commit()
    for user in (me, other):
        response = await client.get(URL + "?profile_type=user", headers=auth(user))
        assert response.json()["data"]["unread_count"] == 1


async def test_second_call_is_cached(client, session):
    me, _company = await arrange(session)
    first = await client.get(URL + "?profile_type=user", headers=auth(me))
    second = await client.get(URL + "?profile_type=user", headers=auth(me))
    assert first.json()["data"]["cached"] is False
    assert second.json()["data"] == {**first.json()["data"], "cached": True}


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("", "invalid_profile_type"),
        ("?profile_type=", "invalid_profile_type"),
        ("?profile_type=invalid", "invalid_profile_type"),
        ("?profile_type=company", "missing_company_id"),
        ("?profile_type=company&company_id=xyz", "invalid_company_id"),
    ],
)
async def test_bad_parameters_are_400(client, session, query, code):
    me = await add_user(session)
    response = await client.get(URL + query, headers=auth(me))
    assert response.status_code == 400
    assert response.json()["code"] == code
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
