"""POST /api/chat/heartbeat: 200 with a JSON body (never 204), last_seen_at stored
(docs/reference/app-contract.md#heartbeat)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from onecrew_chat.models import User
from tests.factories import add_user
from tests.support import auth, new_id

URL = "/api/chat/heartbeat"


async def test_stores_last_seen_at_and_answers_it(client, session):
    me = await add_user(session)
    before = (await session.get(User, me)).updated_at
    response = await client.post(URL, headers=auth(me))
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    answered = datetime.fromisoformat(body["data"]["last_seen_at"].replace("Z", "+00:00"))
    user = await session.scalar(select(User).where(User.id == me).execution_options(populate_existing=True))
    assert abs((user.last_seen_at - answered).total_seconds()) < 0.001
    assert user.updated_at == before, "presence is not a directory change"


async def test_a_user_unknown_to_the_directory_gets_200(client):
    response = await client.post(URL, headers=auth(new_id()))
    assert response.status_code == 200
    assert response.json()["success"] is True


async def test_invalid_token_is_401_with_the_words_the_app_matches(client):
    response = await client.post(URL, headers={"Authorization": "Bearer invalid"})
    assert response.status_code == 401
    assert response.json() == {"success": False, "error": "Invalid or expired token", "code": "invalid_token"}


async def test_get_is_not_served(client, session):
    me = await add_user(session)
    response = await client.get(URL, headers=auth(me))
    assert response.status_code == 405
    assert response.json()["success"] is False
