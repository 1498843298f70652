"""The internal directory API: service-token auth, upserts, deletes, validation and the Stream sync it enqueues."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import func, select, update

from onecrew_chat.api.routes.internal import CompanyIn, UserIn
from onecrew_chat.db import utcnow
from onecrew_chat.identity import Identity
from onecrew_chat.models import Company, CompanyMember, OutboxMessage, StreamIdentity, User
from onecrew_chat.sync.queue import PROFILE_SETTLE_S
from tests.conftest import make_settings
from tests.support import new_id, service_auth

# These routes never call Stream; a closed port proves it.
NO_STREAM = "http://127.0.0.1:9"


@pytest.fixture
def settings(request):
    """SQLite unless a test is parametrized with db="postgres" (persistence semantics run on both)."""
    db = getattr(getattr(request.node, "callspec", None), "params", {}).get("db", "sqlite")
    return make_settings(request.getfixturevalue(f"{db}_only_url"), NO_STREAM)


both_databases = pytest.mark.parametrize("db", ["sqlite", "postgres"])


async def put(client, path: str, body: dict, headers: dict | None = None) -> httpx.Response:
    return await client.put(f"/api/internal{path}", json=body, headers=service_auth() if headers is None else headers)


async def outbox_rows(session) -> list[OutboxMessage]:
    session.expire_all()
    return list((await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all())


@both_databases
async def test_put_user_creates_then_updates_the_same_row(client, session, db):
    user_id = new_id()
    first = await put(
        client, f"/users/{user_id}", {"name": "Amr", "image_url": "https://x/a.png", "category": "talent"}
    )
    assert first.status_code == 200, first.text
    assert first.json()["success"] is True
    data = first.json()["data"]
    assert data | {"created_at": None, "updated_at": None} == {
        "id": user_id,
        "name": "Amr",
        "image_url": "https://x/a.png",
        "category": "talent",
        "kind": "user",
        "created": True,
        "created_at": None,
        "updated_at": None,
    }

    second = await put(client, f"/users/{user_id.upper()}", {"name": "Amr Hassan", "category": "crew"})
    assert second.status_code == 200, second.text
    assert second.json()["data"]["created"] is False
    assert second.json()["data"]["id"] == user_id

    session.expire_all()
    stored = (await session.scalars(select(User))).all()
    assert [(u.id, u.name, u.image_url, u.category) for u in stored] == [(user_id, "Amr Hassan", None, "crew")]


@both_databases
async def test_company_and_member_upserts_and_deletes(client, session, db):
    company_id, user_id = new_id(), new_id()
    assert (
        await put(client, f"/companies/{company_id}", {"name": "Sat Education", "subcategory": "academy"})
    ).status_code == 200
    assert (await put(client, f"/users/{user_id}", {"name": "Mona"})).status_code == 200

    member = await put(
        client, f"/companies/{company_id}/members/{user_id}", {"role": "admin", "invitation_status": "pending"}
    )
    assert member.status_code == 200, member.text
    assert member.json()["data"]["role"] == "admin" and member.json()["data"]["created"] is True
    member = await put(
        client, f"/companies/{company_id}/members/{user_id}", {"role": "owner", "invitation_status": "accepted"}
    )
    assert member.json()["data"] | {"created_at": None, "updated_at": None} == {
        "company_id": company_id,
        "user_id": user_id,
        "role": "owner",
        "invitation_status": "accepted",
        "created": False,
        "created_at": None,
        "updated_at": None,
    }

    gone = await client.delete(f"/api/internal/companies/{company_id}/members/{user_id}", headers=service_auth())
    assert gone.status_code == 200 and gone.json()["data"]["deleted"] is True
    again = await client.delete(f"/api/internal/companies/{company_id}/members/{user_id}", headers=service_auth())
    assert again.status_code == 200 and again.json()["data"]["deleted"] is False

    await put(client, f"/companies/{company_id}/members/{user_id}", {"role": "owner", "invitation_status": "accepted"})
    deleted = await client.delete(f"/api/internal/companies/{company_id}", headers=service_auth())
    assert deleted.status_code == 200 and deleted.json()["data"] == {"id": company_id, "deleted": True}
    session.expire_all()
    assert await session.get(Company, company_id) is None
    assert (await session.scalar(select(func.count()).select_from(CompanyMember))) == 0
    assert await session.get(User, user_id) is not None


async def test_deleting_a_user_removes_their_memberships_and_is_idempotent(client, session):
    company_id, user_id = new_id(), new_id()
    await put(client, f"/companies/{company_id}", {"name": "Lolo Academy"})
    await put(client, f"/users/{user_id}", {"name": "Karim"})
    await put(client, f"/companies/{company_id}/members/{user_id}", {"role": "owner", "invitation_status": "accepted"})

    first = await client.delete(f"/api/internal/users/{user_id}", headers=service_auth())
    second = await client.delete(f"/api/internal/users/{user_id}", headers=service_auth())
    assert (first.status_code, first.json()["data"]["deleted"]) == (200, True)
    assert (second.status_code, second.json()["data"]["deleted"]) == (200, False)
    session.expire_all()
    assert await session.get(User, user_id) is None
    assert await session.get(CompanyMember, (company_id, user_id)) is None
    assert await session.get(Company, company_id) is not None


async def test_member_of_unknown_company_or_user_is_404(client):
    company_id, user_id = new_id(), new_id()
    body = {"role": "owner", "invitation_status": "accepted"}
    no_company = await put(client, f"/companies/{company_id}/members/{user_id}", body)
    assert no_company.status_code == 404
    assert no_company.json() == {
        "success": False,
        "error": f"Company not found: {company_id}",
        "code": "company_not_found",
    }

    await put(client, f"/companies/{company_id}", {"name": "Sat Education"})
    no_user = await put(client, f"/companies/{company_id}/members/{user_id}", body)
    assert no_user.status_code == 404
    assert no_user.json()["error"] == f"User not found: {user_id}"


@pytest.mark.parametrize(
    ("path", "body", "words"),
    [
        ("/users/not-a-uuid", {"name": "Amr"}, "user id must be a uuid"),
        ("/companies/123", {"name": "Sat"}, "company id must be a uuid"),
        ("/users/{id}", {}, "name is required"),
        ("/users/{id}", {"name": "   "}, "name String should have at least 1 character"),
        ("/users/{id}", {"name": "x" * 256}, "name String should have at most 255 characters"),
        ("/users/{id}", {"name": "Amr", "image_url": "h" * 2049}, "image_url String should have at most 2048"),
        ("/users/{id}", {"name": "Amr", "category": "c" * 33}, "category String should have at most 32"),
        ("/companies/{id}", {"name": 7}, "name Input should be a valid string"),
        ("/companies/{id}", {"name": "Sat", "subcategory": "s" * 65}, "subcategory String should have at most 64"),
        (
            "/companies/{id}/members/{id}",
            {"role": "boss", "invitation_status": "accepted"},
            "role Input should be 'owner', 'admin', 'manager' or 'member'",
        ),
        (
            "/companies/{id}/members/{id}",
            {"role": "owner", "invitation_status": "maybe"},
            "invitation_status Input should be",
        ),
        ("/companies/{id}/members/nope", {"role": "owner", "invitation_status": "accepted"}, "user id must be a uuid"),
    ],
)
async def test_bad_input_is_422_with_words(client, path, body, words):
    response = await put(client, path.replace("{id}", new_id()), body)
    assert response.status_code == 422, response.text
    assert response.json()["success"] is False
    assert words in response.json()["error"]


@both_databases
@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/users/{id}", b'{"name": "A\\u0000b"}', "name"),
        ("/users/{id}", b'{"name": "Amr", "category": "\\u0000"}', "category"),
        ("/companies/{id}", b'{"name": "Sat", "logo_url": "https://x/\\u0000.png"}', "logo_url"),
    ],
)
async def test_text_postgresql_cannot_store_is_refused_with_words_on_both_databases(
    client, session, db, path, body, field
):
    response = await client.put(
        "/api/internal" + path.replace("{id}", new_id()),
        content=body,
        headers={**service_auth(), "Content-Type": "application/json"},
    )
    # 422 from the body model, or 400 when a guard in front of every route refuses the text first.
    assert response.status_code in (400, 422), response.text
    assert f"{field} must not contain the NUL character" in response.json()["error"]
    assert (await session.scalar(select(func.count()).select_from(User))) == 0
    assert (await session.scalar(select(func.count()).select_from(Company))) == 0


@pytest.mark.parametrize(
    ("model", "body", "field"),
    [
        (UserIn, {"name": "A\x00b"}, "name"),
        (UserIn, {"name": "A", "image_url": "\x00"}, "image_url"),
        (CompanyIn, {"name": "S", "subcategory": "a\x00"}, "subcategory"),
    ],
)
def test_the_body_models_refuse_nul_themselves(model, body, field):
    with pytest.raises(ValidationError) as refused:
        model.model_validate(body)
    [error] = refused.value.errors()
    assert error["loc"] == (field,) and "must not contain the NUL character" in error["msg"]


async def test_delete_with_bad_uuid_is_422(client):
    response = await client.delete("/api/internal/companies/xyz/members/abc", headers=service_auth())
    assert response.status_code == 422
    assert response.json()["error"] == "company id must be a uuid, got 'xyz'"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-token"}, {"Authorization": "Basic dGVzdA=="}, {"Authorization": "Bearer "}],
)
async def test_calls_without_the_service_token_are_401(client, session, headers):
    user_id = new_id()
    response = await put(client, f"/users/{user_id}", {"name": "Mallory"}, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"success": False, "error": "Invalid service token", "code": "invalid_service_token"}
    assert (await client.delete(f"/api/internal/users/{user_id}", headers=headers)).status_code == 401
    assert await session.get(User, user_id) is None


async def test_without_a_configured_service_token_every_call_is_401(sqlite_only_url):
    from onecrew_chat.api.app import create_app

    application = create_app(make_settings(sqlite_only_url, NO_STREAM, service_token=None, mode="development"))
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        response = await http.put(f"/api/internal/users/{new_id()}", json={"name": "A"}, headers=service_auth())
    assert response.status_code == 401
    assert response.json()["error"] == "Invalid service token"


async def pending_syncs(session) -> list[tuple]:
    """The deduplicated `identity.sync` rows (the later resends of a changed profile are `settles`)."""
    rows = await outbox_rows(session)
    return [(r.kind, r.payload, r.dedupe_key) for r in rows if r.status == "pending" and r.dedupe_key is not None]


async def settles(session) -> list:
    """The resends of a changed profile queued PROFILE_SETTLE_S after the change (no dedupe key, not due yet)."""
    return [r for r in await outbox_rows(session) if r.status == "pending" and r.dedupe_key is None]


@both_databases
async def test_a_new_identity_and_each_profile_change_enqueue_one_deduplicated_sync(client, session, db):
    user_id = new_id()
    stream_id = Identity.user(user_id).stream_id
    sync = ("identity.sync", {"stream_id": stream_id}, f"identity.sync:{stream_id}")
    # New to the directory: mirrored into Stream by the worker, before a token or conversation needs it.
    await put(client, f"/users/{user_id}", {"name": "Amr", "image_url": "https://x/1.png"})
    assert await pending_syncs(session) == [sync]
    await put(client, f"/users/{user_id}", {"name": "Amr", "image_url": "https://x/1.png"})
    assert await pending_syncs(session) == [sync]  # unchanged: nothing more

    # The worker ran it: Stream holds the profile.
    await session.execute(update(OutboxMessage).values(status="done"))
    session.add(StreamIdentity(stream_id=stream_id, kind="user", entity_id=user_id, profile_hash="h"))
    await session.commit()

    await put(client, f"/users/{user_id}", {"name": "Amr", "image_url": "https://x/1.png", "category": "crew"})
    assert await pending_syncs(session) == []  # category is not part of the Stream profile
    assert await settles(session) == []

    await put(client, f"/users/{user_id}", {"name": "Amr Hassan", "image_url": "https://x/1.png"})
    await put(client, f"/users/{user_id}", {"name": "Amr Hassan", "image_url": "https://x/2.png"})
    assert await pending_syncs(session) == [sync]
    # And each change is sent once more later, after any sender that read the older profile is done with Stream.
    later = await settles(session)
    assert [(r.kind, r.payload) for r in later] == [("identity.sync", {"stream_id": stream_id})] * 2
    assert all(r.next_attempt_at > utcnow() + timedelta(seconds=PROFILE_SETTLE_S - 5) for r in later)


async def test_company_logo_change_and_placeholder_heal_enqueue_a_sync(client, session):
    mirrored, placeholder = new_id(), new_id()
    await put(client, f"/companies/{mirrored}", {"name": "Sat Education"})
    session.add_all(
        [
            StreamIdentity(
                stream_id=Identity.company(mirrored).stream_id, kind="company", entity_id=mirrored, profile_hash="h"
            ),
            # An unknown id that the placeholder policy put into Stream before the backend told us about it.
            StreamIdentity(
                stream_id=Identity.user(placeholder).stream_id,
                kind="user",
                entity_id=placeholder,
                profile_hash="p",
                placeholder=True,
            ),
        ]
    )
    await session.commit()

    await put(client, f"/companies/{mirrored}", {"name": "Sat Education", "logo_url": "https://x/logo.png"})
    await put(client, f"/users/{placeholder}", {"name": "Real Name"})
    rows = [r for r in await outbox_rows(session) if r.dedupe_key is not None]
    assert sorted(r.payload["stream_id"] for r in rows) == sorted(
        [Identity.company(mirrored).stream_id, Identity.user(placeholder).stream_id]
    )
    # The logo change is also sent once more later (settle); the placeholder's PUT created the directory row.
    assert [r.payload["stream_id"] for r in await settles(session)] == [Identity.company(mirrored).stream_id]


@both_databases
async def test_concurrent_first_puts_of_one_user_store_one_row(client, session, db):
    user_id = new_id()
    responses = await asyncio.gather(*(put(client, f"/users/{user_id}", {"name": f"Name {i}"}) for i in range(8)))
    assert [r.status_code for r in responses] == [200] * 8
    assert sum(r.json()["data"]["created"] for r in responses) == 1
    assert (await session.scalar(select(func.count()).select_from(User))) == 1


async def test_deleting_a_party_keeps_its_conversation_readable_and_blocks_new_ones(
    sqlite_only_url, emulator, emulator_server
):
    from onecrew_chat.api.app import create_app
    from tests.support import auth

    application = create_app(make_settings(sqlite_only_url, emulator_server.base_url))
    user_id, company_id = new_id(), new_id()
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            await put(http, f"/users/{user_id}", {"name": "Amr"})
            await put(http, f"/companies/{company_id}", {"name": "Sat Education"})
            body = {"conversation_type": "user_company", "participant_ids": [company_id]}
            created = await http.post("/api/chat/conversations", json=body, headers=auth(user_id))
            assert created.status_code == 200, created.text

            assert (
                await http.delete(f"/api/internal/companies/{company_id}", headers=service_auth())
            ).status_code == 200
            shown = await http.get(f"/api/chat/conversations/{created.json()['data']['id']}", headers=auth(user_id))
            again = await http.post("/api/chat/conversations", json=body, headers=auth(user_id))
    assert shown.status_code == 200, shown.text
    assert {p["participant_id"] for p in shown.json()["data"]["participants"]} == {user_id, company_id}
    assert again.status_code == 404
    assert again.json()["error"] == f"Other participant not found: {company_id}"
