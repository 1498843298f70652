"""Idempotency-Key on create: replay with Idempotent-Replayed, 422 for another body, 409 while running, 24 h expiry."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from onecrew_chat.composition import run_worker
from onecrew_chat.db import utcnow
from onecrew_chat.models import Conversation, IdempotencyKey
from tests.factories import add_company, add_user
from tests.support import auth, new_id, wait_until

URL = "/api/chat/conversations"


@pytest.fixture
async def people(session):
    """Two users and a company the first one owns."""
    me = await add_user(session, "Me")
    other = await add_user(session, "Other")
    company = await add_company(session, "Mine", owner=me)
    return me, other, company


def with_key(sub: str, key: str) -> dict:
    """Auth headers plus an Idempotency-Key."""
    return {**auth(sub), "Idempotency-Key": key}


async def test_a_repeated_key_replays_the_stored_answer(client, session, emulator, people):
    me, other, _company = people
    key = new_id()
    body = {"conversation_type": "user_user", "participant_ids": [other]}
    first = await client.post(URL, json=body, headers=with_key(me, key))
    calls = emulator.count()
    # the same request in another spelling: upper-case uuid, reordered keys
    second = await client.post(
        URL, json={"participant_ids": [other.upper()], "conversation_type": "user_user"}, headers=with_key(me, key)
    )
    assert first.status_code == second.status_code == 200
    assert "Idempotent-Replayed" not in first.headers
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert emulator.count() == calls, "a replay does no work"


async def test_the_same_key_with_another_body_is_422(client, session, people):
    me, other, company = people
    key = new_id()
    await client.post(
        URL, json={"conversation_type": "user_user", "participant_ids": [other]}, headers=with_key(me, key)
    )
    response = await client.post(
        URL, json={"conversation_type": "user_company", "participant_ids": [company]}, headers=with_key(me, key)
    )
    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert "different request body" in response.json()["error"]


async def test_keys_are_scoped_per_caller(client, session, people):
    me, other, _company = people
    key = new_id()
    one = await client.post(
        URL, json={"conversation_type": "user_user", "participant_ids": [other]}, headers=with_key(me, key)
    )
    two = await client.post(
        URL, json={"conversation_type": "user_user", "participant_ids": [me]}, headers=with_key(other, key)
    )
    assert one.status_code == two.status_code == 200
    assert "Idempotent-Replayed" not in two.headers
    assert await session.scalar(select(func.count()).select_from(IdempotencyKey)) == 2


# Stream is slow (2 s a call) so that the first request is still running when the second comes, however loaded the
# machine; the deadline leaves it room to finish.
@pytest.mark.app_settings(provision_deadline_s=30.0)
async def test_a_key_still_running_is_409(client, session, emulator, people):
    me, other, _company = people
    key = new_id()
    body = {"conversation_type": "user_user", "participant_ids": [other]}
    emulator.faults.set_latency(2000)
    first = asyncio.create_task(client.post(URL, json=body, headers=with_key(me, key)))

    async def running() -> bool:
        return await session.scalar(select(func.count()).select_from(IdempotencyKey)) == 1

    await wait_until(running, timeout=30, what="the first request to claim the key")
    second = await client.post(URL, json=body, headers=with_key(me, key))
    assert second.status_code == 409
    assert second.json()["code"] == "idempotency_key_in_use"
    assert (await first).status_code == 200


async def test_client_errors_are_replayed_and_server_errors_release_the_key(client, session, emulator, people):
    me, _other, _company = people
    key = new_id()
    ghost = {"conversation_type": "user_user", "participant_ids": [new_id()]}
    first = await client.post(URL, json=ghost, headers=with_key(me, key))
    second = await client.post(URL, json=ghost, headers=with_key(me, key))
    assert first.status_code == second.status_code == 404
    assert second.headers["Idempotent-Replayed"] == "true" and second.json() == first.json()

    other = await add_user(session, "Late")
    emulator.faults.set_error_rate("UpdateUsers", 1.0, status=400)
    key = new_id()
    body = {"conversation_type": "user_user", "participant_ids": [other]}
    refused = await client.post(URL, json=body, headers=with_key(me, key))
    assert refused.status_code == 502
    emulator.faults.reset()
    retried = await client.post(URL, json=body, headers=with_key(me, key))
    assert retried.status_code == 200 and "Idempotent-Replayed" not in retried.headers


async def test_expired_keys_run_the_request_again(client, session, people):
    me, other, _company = people
    key = new_id()
    body = {"conversation_type": "user_user", "participant_ids": [other]}
    assert (await client.post(URL, json=body, headers=with_key(me, key))).status_code == 200
    row = await session.scalar(select(IdempotencyKey))
    assert timedelta(hours=23, minutes=59) < row.expires_at - row.created_at <= timedelta(hours=24)
    await session.execute(update(IdempotencyKey).values(expires_at=utcnow() - timedelta(seconds=1)))
    await session.commit()
    again = await client.post(URL, json=body, headers=with_key(me, key))
    assert again.status_code == 200 and "Idempotent-Replayed" not in again.headers
    assert await session.scalar(select(func.count()).select_from(Conversation)) == 1, "the pair is still deduplicated"


async def test_the_worker_deletes_keys_past_their_expiry(app, session, people):
    me = people[0]
    now = utcnow()
    for key, expires_at in (("old", now - timedelta(seconds=1)), ("live", now + timedelta(hours=23))):
        session.add(
            IdempotencyKey(caller=f"onecrew_user_{me}", key=key, fingerprint="f", created_at=now, expires_at=expires_at)
        )
    await session.commit()
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(app.state.runtime, stop))  # its first round does the upkeep

    async def only_the_live_key_is_left() -> bool:
        return list(await session.scalars(select(IdempotencyKey.key).execution_options(populate_existing=True))) == [
            "live"
        ]

    try:
        await wait_until(only_the_live_key_is_left, timeout=30, what="the expired key to be purged")
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


async def test_an_answer_stored_before_replays_byte_for_byte(client, session, people):
    """A key's stored row is replayed as it is, whichever version of the service rendered and stored it."""
    me, other, _company = people
    key = new_id()
    request = {"conversation_type": "user_user", "participant_ids": [other]}
    first = await client.post(URL, json=request, headers=with_key(me, key))
    assert first.status_code == 200
    # What the row holds is what is sent: an answer stored with other data (as an older version may have) included.
    stored = {"success": True, "data": {**first.json()["data"], "name": "stored earlier", "extra": [1, "two", None]}}
    await session.execute(update(IdempotencyKey).values(response_body=stored))
    await session.commit()
    replayed = await client.post(URL, json=request, headers=with_key(me, key))
    assert replayed.status_code == 200 and replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.content == json.dumps(stored, ensure_ascii=False, separators=(",", ":")).encode()
    # A stored client error too, with its status.
    refusal = {"success": False, "error": "Some words stored earlier", "code": "validation_error"}
    await session.execute(update(IdempotencyKey).values(response_status=422, response_body=refusal))
    await session.commit()
    again = await client.post(URL, json=request, headers=with_key(me, key))
    assert again.status_code == 422 and again.json() == refusal
