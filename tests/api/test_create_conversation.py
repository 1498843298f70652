"""POST /api/chat/conversations over HTTP against the emulator, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import event, func, select

from onecrew_chat.db_counters import attach_counters
from onecrew_chat.identity import Identity, pair_channel_id
from onecrew_chat.models import Conversation, ConversationParticipant, OutboxMessage, StreamIdentity, User
from tests.factories import add_company, add_user, add_users
from tests.support import auth, identities_sent

URL = "/api/chat/conversations"


async def create(client, sub: str, body: dict, **headers):
    """POST a create request as `sub`."""
    return await client.post(URL, json=body, headers={**auth(sub), **headers})


async def test_seed_case_user_absent_from_stream_gets_a_channel_with_a_company_first_try(client, session, emulator):
    amr = await add_user(session, "Amr", user_id="dda3aaa6-d123-4e57-aeef-f0661ec61352")
    owner = await add_user(session, "Owner")
    company = await add_company(session, "Lolo Academy", owner=owner)
    assert emulator.get_user(Identity.user(amr).stream_id) is None

    response = await create(
        client, owner, {"conversation_type": "user_company", "participant_ids": [amr], "company_id": company}
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    data = body["data"]
    expected_channel = pair_channel_id("user_company", Identity.company(company), Identity.user(amr))
    assert data["id"] == data["conversation_id"] == expected_channel
    assert data["chat"]["status"] == "ready"
    assert data["chat"]["cid"] == f"messaging:{expected_channel}"
    assert emulator.count("UpdateUsers") == 1
    assert emulator.count("GetOrCreateChannel") == 1
    assert all(r.status < 400 for r in emulator.requests), [(r.operation, r.status) for r in emulator.requests]
    channel = emulator.get_channel("messaging", expected_channel)
    assert sorted(channel["members"]) == sorted([Identity.user(amr).stream_id, Identity.company(company).stream_id])
    assert channel["created_by_id"] == Identity.company(company).stream_id
    assert "name" not in channel or channel["name"] in (None, "")
    stored = emulator.get_user(Identity.user(amr).stream_id)
    assert stored["name"] == "Amr" and stored["role"] == "user"
    mirrored = await session.scalar(select(func.count()).select_from(StreamIdentity))
    assert mirrored == 2
    done = await session.scalar(select(OutboxMessage.status))
    assert done == "done"


async def test_user_to_company_and_company_to_user_share_one_conversation_and_the_second_makes_no_stream_call(
    client, session, emulator
):
    user = await add_user(session, "Mona", image_url="https://img.example/mona.png")
    owner = await add_user(session, "Owner")
    company = await add_company(session, "Sat Education", owner=owner)

    first = await create(client, user, {"conversation_type": "user_company", "participant_ids": [company]})
    assert first.status_code == 200, first.text
    calls = emulator.count()
    second = await create(
        client, owner, {"conversation_type": "user_company", "participant_ids": [user], "company_id": company}
    )
    assert second.status_code == 200, second.text
    assert emulator.count() == calls, "an existing, ready pair must not call Stream"
    assert first.json()["data"]["id"] == second.json()["data"]["id"]
    assert await session.scalar(select(func.count()).select_from(Conversation)) == 1
    assert emulator.channel_count() == 1

    data = second.json()["data"]
    assert data["conversation_type"] == "user_company"
    assert data["name"] is None
    assert data["last_message_at"] is None and data["last_message_preview"] is None
    assert data["created_at"].endswith("Z") and "T" in data["created_at"]
    by_type = {p["participant_type"]: p for p in data["participants"]}
    assert by_type["user"]["participant_id"] == user
    assert by_type["user"]["user"] == {
        "id": user,
        "name": "Mona",
        "image_url": "https://img.example/mona.png",
        "category": "talent",
    }
    assert by_type["company"]["company"]["name"] == "Sat Education"
    assert set(by_type["company"]["company"]) == {"id", "name", "logo_url", "subcategory"}
    assert all(p["conversation_id"] == data["id"] for p in data["participants"])
    assert all(p["last_read_at"] is None and p["joined_at"].endswith("Z") for p in data["participants"])
    assert sorted(data["chat"]["members"]) == sorted(
        [Identity.user(user).stream_id, Identity.company(company).stream_id]
    )
    assert data["chat"]["channel_type"] == "messaging"


async def test_user_user_is_the_same_channel_in_both_directions(client, session, emulator):
    a, b = await add_user(session, "A"), await add_user(session, "B")
    one = await create(client, a, {"conversation_type": "user_user", "participant_ids": [b]})
    two = await create(
        client, b, {"conversation_type": "user_user", "participant_ids": [a, b]}
    )  # listing yourself is harmless
    assert one.status_code == two.status_code == 200, (one.text, two.text)
    assert one.json()["data"]["id"] == two.json()["data"]["id"]
    assert emulator.count("GetOrCreateChannel") == 1
    assert emulator.get_channel("messaging", one.json()["data"]["id"])["created_by_id"] == Identity.user(a).stream_id


async def test_company_company_acts_as_the_company(client, session, emulator):
    owner = await add_user(session, "Owner")
    mine = await add_company(session, "Mine", owner=owner, role="admin")
    theirs = await add_company(session, "Theirs")
    response = await create(
        client, owner, {"conversation_type": "company_company", "participant_ids": [theirs], "company_id": mine}
    )
    assert response.status_code == 200, response.text
    channel = emulator.get_channel("messaging", response.json()["data"]["id"])
    assert sorted(channel["members"]) == sorted([Identity.company(mine).stream_id, Identity.company(theirs).stream_id])
    assert Identity.user(owner).stream_id not in channel["members"]
    assert emulator.get_user(Identity.company(theirs).stream_id)["onecrew_kind"] == "company"


async def test_a_changed_profile_goes_to_stream_as_a_partial_update(client, session, emulator):
    a, b, c = await add_user(session, "A"), await add_user(session, "B"), await add_user(session, "C")
    assert (await create(client, a, {"conversation_type": "user_user", "participant_ids": [b]})).status_code == 200
    await session.execute(User.__table__.update().where(User.id == a).values(name="A renamed", image_url=None))
    await session.commit()
    before_upserts = emulator.count("UpdateUsers")

    response = await create(client, a, {"conversation_type": "user_user", "participant_ids": [c]})

    assert response.status_code == 200, response.text
    assert emulator.count("UpdateUsersPartial") == 1
    assert emulator.count("UpdateUsers") == before_upserts + 1  # only C, who Stream does not know yet
    stored = emulator.get_user(Identity.user(a).stream_id)
    assert stored["name"] == "A renamed" and not stored.get("image")


async def test_a_group_gets_its_name_and_every_member(client, session, emulator):
    me = await add_user(session, "Me")
    owner = await add_user(session, "Owner")
    company = await add_company(session, "Crew Co", owner=owner)
    others = [await add_user(session, f"U{n}") for n in range(3)]
    response = await create(
        client, me, {"conversation_type": "group", "participant_ids": [*others, company], "name": "  Night shoot  "}
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["id"].startswith("group-") and data["name"] == "Night shoot"
    channel = emulator.get_channel("messaging", data["id"])
    assert channel["name"] == "Night shoot"
    assert len(channel["members"]) == 5 and Identity.company(company).stream_id in channel["members"]
    again = await create(client, me, {"conversation_type": "group", "participant_ids": others})
    assert again.json()["data"]["id"] != data["id"], "groups are not deduplicated by members"
    rows = await session.scalar(select(func.count()).select_from(ConversationParticipant))
    assert rows == 5 + 4


@pytest.mark.long_deadline
async def test_a_group_of_a_thousand_participants_is_created_in_chunks(client, session, emulator):
    me = await add_user(session, "Organiser")
    others = await add_users(session, 999, "Extra")
    owner = await add_user(session, "Owner")
    company = await add_company(session, "Casting", owner=owner)
    participant_ids = [*others, company]
    assert len(participant_ids) == 1000

    response = await create(
        client, me, {"conversation_type": "group", "participant_ids": participant_ids, "name": "Extras"}
    )

    assert response.status_code == 200, response.text[:500]
    data = response.json()["data"]
    assert data["chat"]["status"] == "ready" and len(data["participants"]) == 1001
    channel = emulator.get_channel("messaging", data["id"])
    assert len(set(channel["members"])) == 1001
    assert emulator.count("UpdateUsers") == 11  # 1,001 identities, 100 per call
    assert emulator.count("GetOrCreateChannel") == 1  # the first 100 members
    assert emulator.count("UpdateChannel") == 10  # the other 901, 100 per call
    assert await session.scalar(select(func.count()).select_from(ConversationParticipant)) == 1001


async def test_no_code_path_sends_the_admin_role(client, session, emulator):
    """Create (new identities, a company, a group) and tokens: every Stream user has role "user"."""
    user, other = await add_user(session, "A"), await add_user(session, "B")
    company = await add_company(session, "Co", owner=user)
    for sub, body in [
        (user, {"conversation_type": "user_company", "participant_ids": [user], "company_id": company}),
        (other, {"conversation_type": "user_company", "participant_ids": [company]}),
        (user, {"conversation_type": "group", "participant_ids": [other, company], "name": "G"}),
    ]:
        assert (await create(client, sub, body)).status_code == 200
    for query in ("profile_type=user", f"profile_type=company&company_id={company}"):
        assert (await client.post(f"/api/chat/token?{query}", headers=auth(user))).status_code == 200
    stored = [emulator.get_user(i) for i in emulator.user_ids()]
    assert len(stored) == 3
    assert {u["role"] for u in stored} == {"user"}


async def test_many_pairs_created_at_once_each_three_times_give_one_conversation_per_pair(client, session, emulator):
    users = await add_users(session, 10)
    company = await add_company(session, "Busy", owner=await add_user(session, "Owner"))
    body = {"conversation_type": "user_company", "participant_ids": [company]}

    async def as_the_app(user: str):
        """The app sends the same request again after a 408 (provisioning outlasted the deadline on a busy machine)."""
        for _ in range(5):
            response = await create(client, user, body)
            if response.status_code != 408:
                return response
        return response

    responses = await asyncio.gather(*(as_the_app(u) for u in users for _ in range(3)))
    assert [r.status_code for r in responses] == [200] * 30, {r.text for r in responses if r.status_code != 200}
    assert len({r.json()["data"]["id"] for r in responses}) == 10
    assert await session.scalar(select(func.count()).select_from(Conversation)) == 10
    assert emulator.channel_count() == 10


async def test_an_existing_pair_with_a_changed_profile_sends_only_the_profile(client, session, emulator):
    a, b = await add_user(session, "A"), await add_user(session, "B")
    body = {"conversation_type": "user_user", "participant_ids": [b]}
    assert (await create(client, a, body)).status_code == 200
    await session.execute(User.__table__.update().where(User.id == b).values(name="B renamed"))
    await session.commit()
    emulator.clear_requests()

    response = await create(client, a, body)

    assert response.status_code == 200 and response.json()["data"]["chat"]["status"] == "ready"
    assert [r.operation for r in emulator.requests] == ["UpdateUsersPartial"]
    assert emulator.get_user(Identity.user(b).stream_id)["name"] == "B renamed"
    assert response.json()["data"]["participants"][1]["user"]["name"] == "B renamed"


async def test_sql_statements_per_request_stay_few(client, app, session, emulator):
    user = await add_user(session, "Amr")
    owner = await add_user(session, "Owner")
    company = await add_company(session, "Lolo Academy", owner=owner)
    statements: list[str] = []
    event.listen(app.state.runtime.engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    body = {"conversation_type": "user_company", "participant_ids": [company]}

    # Budgets, not exact counts: fewer statements is never wrong.
    async def count(response) -> int:
        assert response.status_code == 200 and response.json()["data"]["chat"]["status"] == "ready", response.text
        counted, statements[:] = len(statements), []
        return counted

    # New pair: users and companies (one query, mirror rows joined on), pair lookup with the cut-over switch (off);
    # insert conversation (claimed), participants, outbox row (one commit); the directory versions of the user and
    # the company (FOR SHARE), the mirror upsert, mark ready, outbox row done (one commit). On PostgreSQL the three
    # inserts are one statement, and ready and done another: three fewer.
    fewer = 3 if app.state.runtime.engine.dialect.name == "postgresql" else 0
    assert await count(await create(client, user, body)) <= 10 - fewer
    # Existing, settled pair: users and companies (one query), the conversation with its participants; no Stream call.
    calls = emulator.count()
    assert await count(await create(client, user, body)) <= 2
    assert emulator.count() == calls
    # New pair whose identities are mirrored (the company above, the user by their token): users and companies,
    # pair lookup with the cut-over switch, the three inserts (one commit); mark ready, outbox row done (one commit).
    # One Stream call.
    other = await add_user(session, "Mona")
    assert (await client.post("/api/chat/token?profile_type=user", headers=auth(other))).status_code == 200
    await identities_sent(app)
    statements[:] = []
    assert await count(await create(client, other, body)) <= 7 - fewer
    # The company opens it from the other direction: its owner's membership is checked in the directory's query.
    from_company = {"conversation_type": "user_company", "participant_ids": [other], "company_id": company}
    assert await count(await create(client, owner, from_company)) <= 2


async def test_opening_an_existing_pair_holds_no_transaction(client, app, session, emulator):
    """The other side opening a ready pair only reads: it holds no transaction (nothing to commit, no lock taken),
    and it answers the conversation the first create answered."""
    user = await add_user(session, "Amr")
    owner = await add_user(session, "Owner")
    company = await add_company(session, "Lolo Academy", owner=owner)
    first = await create(client, user, {"conversation_type": "user_company", "participant_ids": [company]})
    assert first.status_code == 200 and first.json()["data"]["chat"]["status"] == "ready", first.text
    counters = attach_counters(app.state.runtime.engine)
    opened = await create(
        client, owner, {"conversation_type": "user_company", "participant_ids": [user], "company_id": company}
    )
    assert opened.status_code == 200, opened.text
    assert opened.json()["data"]["id"] == first.json()["data"]["id"]
    assert opened.json()["data"]["participants"] == first.json()["data"]["participants"]
    assert counters.transactions == 0 and counters.commits == 0
