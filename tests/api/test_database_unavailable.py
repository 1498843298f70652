"""A database that does not answer is a 503 the client may retry, never a 500."""

from __future__ import annotations

import httpx

from onecrew_chat.api.app import create_app
from tests.conftest import make_settings
from tests.support import auth, new_id


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
