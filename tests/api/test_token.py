"""POST/GET /api/chat/token: the Stream token for the user or a company they own or administer
(docs/reference/app-contract.md#token)."""

from __future__ import annotations

import jwt
import pytest
from sqlalchemy import select

from onecrew_chat.models import OutboxMessage, StreamIdentity
from onecrew_chat.sync.coalescer import coalescer
from tests.conftest import SHORT_DEADLINE_S, make_settings
from tests.factories import add_company, add_user
from tests.support import STREAM_KEY, STREAM_SECRET, auth, in_stream, make_jwt, new_id, wait_until

URL = "/api/chat/token"


@pytest.fixture
def settings(sqlite_only_url, emulator, emulator_server):
    """SQLite is enough here except where a test asks for both databases (token_stream_down)."""
    return make_settings(sqlite_only_url, emulator_server.base_url, stream_token_ttl_s=3600)


def claims(token: str) -> dict:
    """The Stream token's claims, checked against the Stream secret."""
    return jwt.decode(token, STREAM_SECRET, algorithms=["HS256"])


async def test_user_token_has_the_fields_the_app_reads_and_reaches_stream(client, session, emulator):
    me = await add_user(session, "Amr", image_url="https://img.example/amr.png")
    response = await client.post(URL + "?profile_type=user", headers=auth(me))
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    data = body["data"]
    assert data == {
        "token": data["token"],
        "user_id": f"onecrew_user_{me}",
        "api_key": STREAM_KEY,
        "profile_type": "user",
        "company_id": None,
    }
    token = claims(data["token"])
    assert token["user_id"] == f"onecrew_user_{me}"
    assert token["exp"] - token["iat"] == pytest.approx(3600, abs=10)
    # The answer does not wait for Stream (the app's connectUser creates the user): the identity follows in a batch.
    stream_user = await in_stream(emulator, f"onecrew_user_{me}", name="Amr")
    assert stream_user["role"] == "user"


async def test_fresh_identity_makes_no_stream_call(client, session, emulator):
    me = await add_user(session)
    assert (await client.post(URL, headers=auth(me))).status_code == 200
    await in_stream(emulator, f"onecrew_user_{me}")

    async def mirrored() -> bool:
        await session.commit()  # a new snapshot
        return await session.get(StreamIdentity, f"onecrew_user_{me}") is not None

    await wait_until(mirrored, what="the mirror row")
    calls = emulator.count()
    again = await client.post(URL, headers=auth(me))
    assert again.status_code == 200
    assert emulator.count() == calls


async def test_get_is_an_alias_and_no_profile_means_the_user(client, session):
    me = await add_user(session)
    response = await client.get(URL, headers=auth(me))
    assert response.status_code == 200
    assert response.json()["data"]["user_id"] == f"onecrew_user_{me}"


async def test_empty_body_with_json_content_type_is_fine(client, session):
    me = await add_user(session)
    response = await client.post(URL + "?profile_type=user", headers=auth(me), content=b"")
    assert response.status_code == 200


@pytest.mark.parametrize("how", ["query", "body", "body_without_profile_type", "header"])
async def test_company_token_from_query_body_or_header(client, session, emulator, how):
    me = await add_user(session)
    company = await add_company(session, "Lolo Academy", owner=me)
    kwargs: dict = {"headers": auth(me)}
    url = URL
    if how == "query":
        url += f"?profile_type=company&company_id={company}"
    elif how == "body":
        kwargs["json"] = {"profile_type": "company", "company_id": company}
    elif how == "body_without_profile_type":
        kwargs["json"] = {"company_id": company}
    else:
        kwargs["headers"] = {**auth(me), "X-Company-Id": company}
    response = await client.post(url, **kwargs)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["user_id"] == f"onecrew_company_{company}"
    assert data["profile_type"] == "company" and data["company_id"] == company
    assert claims(data["token"])["user_id"] == f"onecrew_company_{company}"
    await in_stream(emulator, f"onecrew_company_{company}", name="Lolo Academy")


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[1, 2]", b'"company"', b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"],
    ids=["broken", "array", "string", "nested-too-deep"],
)
async def test_a_body_that_is_not_a_json_object_is_400(client, session, body):
    me = await add_user(session)
    response = await client.post(URL, headers=auth(me), content=body)
    assert response.status_code == 400
    assert response.json()["success"] is False


@pytest.mark.parametrize(
    ("role", "status"), [("member", "accepted"), ("manager", "accepted"), ("owner", "pending"), ("admin", "rejected")]
)
async def test_not_an_accepted_owner_or_admin_is_403(client, session, emulator, role, status):
    me = await add_user(session)
    company = await add_company(session, owner=me, role=role, status=status)
    response = await client.post(URL + f"?profile_type=company&company_id={company}", headers=auth(me))
    assert response.status_code == 403
    assert response.json()["error"] == "User must be a member of this company"
    assert emulator.count() == 0


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer nonsense"},
        {"Authorization": f"Bearer {make_jwt(new_id(), exp_in=-60)}"},
        {"Authorization": f"Bearer {make_jwt(new_id(), secret='another-secret-0123456789abcdef0123')}"},
    ],
)
async def test_bad_credentials_are_401(client, headers):
    response = await client.post(URL, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "Invalid or expired token"


async def test_a_user_the_directory_does_not_know_yet_still_logs_in(client, emulator):
    stranger = new_id()
    response = await client.post(URL, headers=auth(stranger))
    assert response.status_code == 200
    await in_stream(emulator, f"onecrew_user_{stranger}")


async def test_admin_companies_get_tokens_too(client, session):
    me = await add_user(session)
    company = await add_company(session, owner=me, role="admin")
    response = await client.get(URL + f"?profile_type=company&company_id={company}", headers=auth(me))
    assert response.status_code == 200
    assert response.json()["data"]["user_id"] == f"onecrew_company_{company}"


class TestStreamDown:
    """Tokens are signed locally: the app logs in and the identity is queued for the outbox worker."""

    @pytest.fixture
    def settings(self, database_url, emulator, emulator_server):
        return make_settings(
            database_url, emulator_server.base_url, provision_deadline_s=SHORT_DEADLINE_S
        )  # Stream down

    async def test_token_is_issued_and_identity_sync_is_queued(self, app, client, session, emulator):
        me = await add_user(session)
        emulator.faults.set_error_rate("UpdateUsers", 1.0, status=503)
        batches = coalescer(app.state.runtime)
        response = await client.post(URL + "?profile_type=user", headers=auth(me))
        assert response.status_code == 200
        assert claims(response.json()["data"]["token"])["user_id"] == f"onecrew_user_{me}"
        await wait_until(lambda: batches.batches_sent == 1 and batches.idle, what="the batch Stream refuses")
        rows = (await session.scalars(select(OutboxMessage))).all()
        assert [(r.kind, r.payload, r.status) for r in rows] == [
            ("identity.sync", {"stream_id": f"onecrew_user_{me}"}, "pending")
        ]
        assert await session.get(StreamIdentity, f"onecrew_user_{me}") is None

        again = await client.post(URL + "?profile_type=user", headers=auth(me))
        assert again.status_code == 200
        await wait_until(lambda: batches.batches_sent == 2 and batches.idle, what="the second refused batch")
        await session.commit()
        assert len((await session.scalars(select(OutboxMessage))).all()) == 1, "the pending row is reused"
