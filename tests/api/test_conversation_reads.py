"""GET /api/chat/conversations (the list) and GET /api/chat/conversations/{id}
(docs/reference/app-contract.md#list, #get-by-id)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event, select, update

from onecrew_chat.conversations.listing import PageRequest
from onecrew_chat.db import utcnow
from onecrew_chat.errors import BadRequest
from onecrew_chat.identity import Identity
from onecrew_chat.models import Base, Conversation, OutboxMessage
from onecrew_chat.sync.queue import provision_dedupe_key
from tests.api.conversation_rows import (  # noqa: F401 (private_emulator_server is a fixture)
    add_conversation,
    failed_pair,
    private_emulator_server,
    provision_rows,
    stream_down,
    unprovisioned_pair,
)
from tests.conftest import deadline_for, make_settings
from tests.factories import add_company, add_user, add_users
from tests.support import auth, new_id

LIST = "/api/chat/conversations"
CONVERSATION_KEYS = {
    "id",
    "conversation_id",
    "conversation_type",
    "name",
    "created_at",
    "updated_at",
    "last_message_at",
    "last_message_preview",
    "participants",
    "chat",
}


@pytest.fixture
def settings(sqlite_only_url, emulator, emulator_server, request):
    """The list and lookup are plain SELECTs: SQLite only, except the classes that ask for both databases."""
    return make_settings(sqlite_only_url, emulator_server.base_url, provision_deadline_s=deadline_for(request))


class TestList:
    async def test_nested_paginated_shape_with_participants_and_their_profiles(self, client, session):
        me = await add_user(session, "Amr")
        company = await add_company(session, "Sat Education", owner=await add_user(session, "Owner"))
        conversation = await add_conversation(session, Identity.user(me), Identity.company(company), preview="hello")
        response = await client.get(LIST + "?profile_type=user&page=1&limit=20", headers=auth(me))
        assert response.status_code == 200
        body = response.json()
        assert body["success"] is True
        assert body["data"]["pagination"] == {"page": 1, "limit": 20, "total": 1, "totalPages": 1}
        [item] = body["data"]["data"]
        assert set(item) == CONVERSATION_KEYS
        assert item["id"] == item["conversation_id"] == conversation.channel_id
        assert item["last_message_preview"] == "hello"
        by_type = {p["participant_type"]: p for p in item["participants"]}
        assert by_type["user"]["participant_id"] == me and by_type["user"]["user"]["name"] == "Amr"
        assert by_type["company"]["company"]["name"] == "Sat Education"
        assert {p["conversation_id"] for p in item["participants"]} == {conversation.channel_id}
        assert "last_read_at" in by_type["user"]

    async def test_newest_activity_first_and_pages(self, client, session):
        me, *others = await add_users(session, 26)
        base = utcnow() - timedelta(days=1)
        expected = []
        for n, other in enumerate(others[:25]):
            # Odd ones have a message (activity = message time), even ones only their creation time.
            at = base + timedelta(minutes=n)
            conversation = await add_conversation(
                session,
                Identity.user(me),
                Identity.user(other),
                created_at=base - timedelta(days=1) if n % 2 else at,
                last_message_at=at if n % 2 else None,
            )
            expected.append(conversation.channel_id)
        expected.reverse()
        seen = []
        for page in (1, 2, 3):
            response = await client.get(LIST + f"?profile_type=user&page={page}&limit=10", headers=auth(me))
            body = response.json()["data"]
            assert body["pagination"] == {"page": page, "limit": 10, "total": 25, "totalPages": 3}
            seen += [c["id"] for c in body["data"]]
        assert seen == expected
        past_the_end = (await client.get(LIST + "?profile_type=user&page=9&limit=10", headers=auth(me))).json()["data"]
        assert past_the_end == {"data": [], "pagination": {"page": 9, "limit": 10, "total": 25, "totalPages": 3}}

    async def test_defaults_to_page_1_of_20_for_the_user(self, client, session):
        me, other = await add_users(session, 2)
        await add_conversation(session, Identity.user(me), Identity.user(other))
        body = (await client.get(LIST, headers=auth(me))).json()["data"]
        assert body["pagination"] == {"page": 1, "limit": 20, "total": 1, "totalPages": 1}

    async def test_each_profile_sees_its_own_conversations(self, client, session):
        me, a, b = await add_users(session, 3)
        company = await add_company(session, owner=me)
        mine = await add_conversation(session, Identity.user(me), Identity.user(a))
        the_company_s = await add_conversation(session, Identity.company(company), Identity.user(b))
        await add_conversation(session, Identity.user(a), Identity.user(b))
        as_user = (await client.get(LIST + "?profile_type=user", headers=auth(me))).json()["data"]["data"]
        as_company = (await client.get(LIST + f"?profile_type=company&company_id={company}", headers=auth(me))).json()[
            "data"
        ]["data"]
        assert [c["id"] for c in as_user] == [mine.channel_id]
        assert [c["id"] for c in as_company] == [the_company_s.channel_id]

    async def test_search_by_participant_or_conversation_name(self, client, session):
        me = await add_user(session, "Amr")
        nour = await add_user(session, "Nour Hassan")
        omar = await add_user(session, "Omar")
        percent = await add_user(session, "100% Studio")
        company = await add_company(session, "Lolo Academy", owner=omar)
        with_nour = await add_conversation(session, Identity.user(me), Identity.user(nour))
        with_company = await add_conversation(session, Identity.user(me), Identity.company(company))
        group = await add_conversation(
            session, Identity.user(me), Identity.user(omar), Identity.user(percent), name="Casting Crew"
        )

        async def search(term: str) -> set[str]:
            response = await client.get(LIST, params={"profile_type": "user", "search": term}, headers=auth(me))
            assert response.status_code == 200
            return {c["id"] for c in response.json()["data"]["data"]}

        assert await search("nour") == {with_nour.channel_id}
        assert await search("LOLO") == {with_company.channel_id}
        assert await search("casting") == {group.channel_id}
        assert await search("omar") == {group.channel_id}
        assert await search("100%") == {group.channel_id}
        assert await search("%") == {group.channel_id}, "% is a character, not a wildcard"
        assert await search("amr") == set(), "the caller's own name matches nothing"
        assert len(await search("  ")) == 3, "a blank search is no search"

    @pytest.mark.parametrize(
        ("query", "code"),
        [
            ("page=0", "invalid_page"),
            ("page=abc", "invalid_page"),
            ("page=99999999999999999999999", "invalid_page"),  # an offset no database can take
            ("page=1000001", "invalid_page"),
            ("limit=0", "invalid_limit"),
            ("limit=101", "invalid_limit"),
            ("profile_type=robot", "invalid_profile_type"),
            ("profile_type=company", "missing_company_id"),
        ],
    )
    async def test_bad_parameters_are_400(self, client, session, query, code):
        me = await add_user(session)
        response = await client.get(LIST + "?" + query, headers=auth(me))
        assert response.status_code == 400
        assert response.json()["code"] == code and response.json()["error"]

    def test_a_search_with_a_nul_is_refused_before_postgresql_sees_it(self):
        with pytest.raises(BadRequest, match="search must not contain"):
            PageRequest.parse(None, None, "a\x00b")

    async def test_a_constant_number_of_queries_whatever_the_size(self, client, session, app):
        me, *others = await add_users(session, 61)
        small, big = await add_user(session), me
        company = await add_company(session, "Studio", owner=others[0])
        await add_conversation(session, Identity.user(small), Identity.user(others[0]))
        await add_conversation(session, Identity.user(small), Identity.company(company))
        for other in others[:60]:
            await add_conversation(session, Identity.user(big), Identity.user(other))
        await add_conversation(session, Identity.user(big), Identity.company(company))
        statements = []
        engine = app.state.runtime.engine.sync_engine

        def count(*_args, **_kwargs):
            statements.append(1)

        event.listen(engine, "before_cursor_execute", count)
        try:
            counts = {}
            for who, limit in ((small, 20), (big, 20), (big, 100)):
                statements.clear()
                response = await client.get(LIST + f"?profile_type=user&limit={limit}", headers=auth(who))
                assert response.status_code == 200
                counts[(who, limit)] = len(statements)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        assert set(counts.values()) == {1}, counts  # the page with its participants, users and companies

    async def test_the_list_reads_plain_rows_not_orm_objects(self, client, session):
        """A page of 100 is read as rows: building ORM objects cost a quarter of its server time."""
        me, *others = await add_users(session, 30)
        company = await add_company(session, "Studio", owner=others[0])
        for other in others:
            await add_conversation(session, Identity.user(me), Identity.user(other))
        await add_conversation(session, Identity.user(me), Identity.company(company), Identity.user(others[1]))
        loaded = []

        def on_load(target, _context):
            loaded.append(type(target).__name__)

        event.listen(Base, "load", on_load, propagate=True)
        try:
            response = await client.get(LIST + "?profile_type=user&limit=100", headers=auth(me))
        finally:
            event.remove(Base, "load", on_load)
        assert response.status_code == 200 and len(response.json()["data"]["data"]) == 30
        assert loaded == []


class TestGetByIdMakesNoStreamCall:
    """Counted on an emulator only this test's app calls, so an earlier test's straggler cannot count."""

    @pytest.fixture
    def settings(self, sqlite_only_url, private_emulator_server):
        return make_settings(sqlite_only_url, private_emulator_server.base_url)

    async def test_participant_gets_the_conversation(self, client, session, private_emulator_server):
        me, other = await add_users(session, 2)
        conversation = await add_conversation(session, Identity.user(me), Identity.user(other))
        response = await client.get(f"{LIST}/{conversation.channel_id}", headers=auth(me))
        assert response.status_code == 200
        data = response.json()["data"]
        assert set(data) == CONVERSATION_KEYS
        assert data["id"] == conversation.channel_id
        assert data["chat"]["status"] == "ready"
        assert private_emulator_server.emulator.count() == 0, "a conversation our records call ready: no Stream call"


class TestGetById:
    async def test_outsiders_get_the_same_404_as_for_a_missing_conversation(self, client, session):
        me, a, b = await add_users(session, 3)
        conversation = await add_conversation(session, Identity.user(a), Identity.user(b))
        hidden = await client.get(f"{LIST}/{conversation.channel_id}", headers=auth(me))
        missing = await client.get(f"{LIST}/user_user-{'0' * 32}", headers=auth(me))
        assert hidden.status_code == missing.status_code == 404
        assert (
            hidden.json()
            == missing.json()
            == {
                "success": False,
                "error": "Conversation not found",
                "code": "conversation_not_found",
            }
        )

    async def test_deleted_conversations_are_not_found(self, client, session):
        me, other = await add_users(session, 2)
        conversation = await add_conversation(session, Identity.user(me), Identity.user(other))
        await session.execute(
            update(Conversation).where(Conversation.id == conversation.id).values(deleted_at=utcnow())
        )
        await session.commit()
        assert (await client.get(f"{LIST}/{conversation.channel_id}", headers=auth(me))).status_code == 404

    @pytest.mark.parametrize("bad", ["a" * 129, "has.dot", "has%20space", "messaging:abc", "ünïcode"])
    async def test_ids_no_scheme_could_produce_are_400(self, client, session, bad):
        me = await add_user(session)
        response = await client.get(f"{LIST}/{bad}", headers=auth(me))
        assert response.status_code == 400
        assert response.json()["code"] == "invalid_conversation_id"

    async def test_older_scheme_ids(self, client, session):
        me, other = await add_users(session, 2)
        era3 = f"user_company-onecrew_company_{new_id()}-onecrew_user_{me}"
        era1_uuid = new_id()
        await add_conversation(session, Identity.user(me), Identity.user(other), channel_id=era3)
        third = await add_user(session)
        era1 = await add_conversation(
            session, Identity.user(me), Identity.user(third), channel_id=f"onecrew_{era1_uuid}"
        )
        assert (await client.get(f"{LIST}/{era3}", headers=auth(me))).json()["data"]["id"] == era3
        # The app's list strips "onecrew_" before opening a chat, so the bare uuid must find the era-1 channel.
        for asked in (era1_uuid, f"onecrew_{era1_uuid}"):
            response = await client.get(f"{LIST}/{asked}", headers=auth(me))
            assert response.status_code == 200
            assert response.json()["data"]["id"] == era1.channel_id

    async def test_unread_count_is_not_taken_for_an_id(self, client, session):
        me = await add_user(session)
        response = await client.get(f"{LIST}/unread-count", headers=auth(me))
        assert response.status_code == 400
        assert response.json()["code"] == "invalid_profile_type"

    async def test_401(self, client):
        response = await client.get(f"{LIST}/user_user-{'0' * 32}")
        assert response.status_code == 401 and response.json()["error"] == "Invalid or expired token"


class TestGetFinishesProvisioning:
    """The pending work is persisted (outbox) when Stream is down: both databases."""

    @pytest.fixture
    def settings(self, database_url, emulator, emulator_server, request):
        return make_settings(database_url, emulator_server.base_url, provision_deadline_s=deadline_for(request))

    async def test_pending_conversation_is_provisioned_by_the_get(self, client, session, emulator):
        me, other, conversation = await unprovisioned_pair(session)
        response = await client.get(f"{LIST}/{conversation.channel_id}", headers=auth(me))
        assert response.status_code == 200
        assert response.json()["data"]["chat"]["status"] == "ready"
        channel = emulator.get_channel("messaging", conversation.channel_id)
        assert set(channel["members"]) == {f"onecrew_user_{me}", f"onecrew_user_{other}"}
        stored = await session.scalar(
            select(Conversation).where(Conversation.id == conversation.id).execution_options(populate_existing=True)
        )
        assert stored.chat_status == "ready" and stored.stream_verified_at is not None

    @pytest.mark.short_deadline
    async def test_with_stream_down_the_get_answers_and_leaves_the_work_queued(self, client, session, emulator):
        me, other, conversation = await unprovisioned_pair(session)
        stream_down(emulator, 503)
        response = await client.get(f"{LIST}/{conversation.channel_id}", headers=auth(me))
        assert response.status_code == 200
        assert response.json()["data"]["chat"]["status"] == "provisioning"
        rows = (await session.scalars(select(OutboxMessage))).all()
        assert [(r.kind, r.payload["conversation_id"], r.status) for r in rows] == [
            ("conversation.provision", conversation.id, "pending")
        ]

    async def test_a_failed_conversation_is_queued_again_not_retried_inline(self, client, session, app, emulator):
        me, other, conversation = await failed_pair(session)
        wakeup = app.state.runtime.outbox_wakeup
        wakeup.clear()
        response = await client.get(f"{LIST}/{conversation.channel_id}", headers=auth(me))
        assert response.status_code == 200
        assert response.json()["data"]["chat"]["status"] == "provisioning"
        key = provision_dedupe_key(conversation.id)
        assert await provision_rows(session) == [(conversation.id, "dead", key), (conversation.id, "pending", key)]
        stored = await session.scalar(
            select(Conversation).where(Conversation.id == conversation.id).execution_options(populate_existing=True)
        )
        assert stored.chat_status == "provisioning"
        assert wakeup.is_set(), "the worker is woken once the row is committed"
        # The request left Stream to the worker (ids are fresh, so no other test's call can make these exist).
        assert emulator.get_channel("messaging", conversation.channel_id) is None
        assert emulator.get_user(f"onecrew_user_{me}") is None

    async def test_a_refusal_is_left_to_the_worker(self, client, session, emulator):
        me, other, conversation = await unprovisioned_pair(session)
        emulator.faults.set_error_rate("GetOrCreateChannel", 1.0, status=400)
        response = await client.get(f"{LIST}/{conversation.channel_id}", headers=auth(me))
        assert response.status_code == 200
        assert response.json()["data"]["chat"]["status"] == "provisioning"
        assert await provision_rows(session) == [(conversation.id, "pending", provision_dedupe_key(conversation.id))]
