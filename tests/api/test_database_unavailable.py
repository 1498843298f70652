"""A database that does not answer is a 503 the client may retry, never a 500."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from onecrew_chat import dbadmin
from onecrew_chat.api.app import create_app
from tests.conftest import PG_ADMIN_URL, make_settings
from tests.support import auth, new_id, service_auth


async def test_unreachable_database_is_a_retryable_503(emulator, emulator_server):
    # Port 1 on loopback: nothing listens there, so every connection attempt is refused at once.
    settings = make_settings("postgresql://postgres@127.0.0.1:1/nothing", emulator_server.base_url)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.post("/api/chat/token?profile_type=user", headers=auth(new_id()))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    body = response.json()
    assert body["success"] is False
    assert body["code"] == "database_unavailable"
    assert "retry" in body["error"]


@pytest.fixture(params=["refusing connections", "missing"])
def unusable_database(request, postgres_url):
    """A PostgreSQL database of this test's own that refuses every connection (ALLOW_CONNECTIONS false), or one
    that does not exist (dropped, or DATABASE_URL names the wrong one)."""
    name = f"onecrew_unusable_{uuid.uuid4().hex[:12]}"
    if request.param == "missing":
        yield dbadmin.sibling_database_url(PG_ADMIN_URL, name)
        return
    url = asyncio.run(dbadmin.create_database(PG_ADMIN_URL, name))
    asyncio.run(dbadmin.admin_execute(PG_ADMIN_URL, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
    try:
        yield url
    finally:
        asyncio.run(dbadmin.drop_database(PG_ADMIN_URL, name))


async def test_a_database_that_refuses_us_is_a_retryable_503_on_every_path(unusable_database, emulator_server):
    app = create_app(make_settings(unusable_database, emulator_server.base_url))
    user = new_id()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            responses = [
                await client.post("/api/chat/token?profile_type=user", headers=auth(user)),
                await client.get("/api/chat/conversations", headers=auth(user)),
                await client.get("/api/chat/conversations/unread-count?profile_type=user", headers=auth(user)),
                await client.post(
                    "/api/chat/conversations",
                    json={"conversation_type": "user_user", "participant_ids": [new_id()]},
                    headers=auth(user),
                ),
                await client.put(f"/api/internal/users/{user}", json={"name": "Amr"}, headers=service_auth()),
            ]
    for response in responses:
        assert response.status_code == 503, (response.request.url, response.text)
        assert response.headers["retry-after"] == "1"
        assert response.json()["code"] == "database_unavailable" and "retry" in response.json()["error"]
