"""POST /api/internal/conversations and /api/internal/conversations/{id}/messages (the old backend's server duties)."""

from __future__ import annotations

import pytest

from onecrew_chat.composition import build_jobs
from onecrew_chat.outbox import worker
from tests.conftest import deadline_for, make_settings
from tests.factories import add_company, add_user, add_users
from tests.support import auth, new_id, service_auth, wait_until

ENSURE = "/api/internal/conversations"
MESSAGES = "/api/internal/conversations/{}/messages"


@pytest.fixture
def settings(database_url, emulator, emulator_server, request):
    return make_settings(database_url, emulator_server.base_url, provision_deadline_s=deadline_for(request))


async def academy_and_student(session):
    owner = await add_user(session, "Owner")
    academy = await add_company(session, "Sat Education", owner=owner)
    (student,) = await add_users(session, 1)
    return owner, academy, student


async def ensure(client, acting_type, acting_id, other, **extra):
    body = {
        "conversation_type": "user_company",
        "participant_ids": [other],
        "acting": {"type": acting_type, "id": acting_id},
    }
    return await client.post(ENSURE, json=body | extra, headers=service_auth())


async def test_ensure_as_a_user_or_the_company_is_the_pairs_one_conversation(client, session, emulator):
    owner, academy, student = await academy_and_student(session)
    first = await ensure(client, "user", student, academy)
    assert first.status_code == 200, first.text
    channel_id = first.json()["data"]["id"]
    assert set(emulator.get_channel("messaging", channel_id)["members"]) == {
        f"onecrew_user_{student}",
        f"onecrew_company_{academy}",
    }
    again = await ensure(client, "company", academy, student)
    assert again.json()["data"]["id"] == channel_id
    app_side = await client.post(
        "/api/chat/conversations",
        json={"conversation_type": "user_company", "participant_ids": [academy]},
        headers=auth(student),
    )
    assert app_side.json()["data"]["id"] == channel_id


async def test_ensure_with_an_idempotency_key_answers_and_replays(client, session, emulator):
    _owner, academy, student = await academy_and_student(session)
    body = {
        "conversation_type": "user_company",
        "participant_ids": [academy],
        "acting": {"type": "user", "id": student},
    }
    headers = service_auth() | {"Idempotency-Key": "ensure-1"}
    first = await client.post(ENSURE, json=body, headers=headers)
    assert first.status_code == 200, first.text
    again = await client.post(ENSURE, json=body, headers=headers)
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true"


async def test_ensure_refuses_without_the_service_token_and_a_company_nobody_manages(client, session):
    _owner, academy, student = await academy_and_student(session)
    body = {
        "conversation_type": "user_company",
        "participant_ids": [student],
        "acting": {"type": "company", "id": academy},
    }
    assert (await client.post(ENSURE, json=body, headers=auth(student))).status_code == 401
    orphan = await add_company(session, "Nobody's Academy")
    response = await ensure(client, "company", orphan, student)
    assert response.status_code == 422 and response.json()["code"] == "company_without_manager"
    missing = await ensure(client, "company", new_id(), student)
    assert missing.status_code == 404 and missing.json()["code"] == "company_not_found"


async def registered(client, session):
    _owner, academy, student = await academy_and_student(session)
    channel_id = (await ensure(client, "user", student, academy)).json()["data"]["id"]
    custom = {
        "course_id": "c-1",
        "course_title": "Acting 101",
        "user_id": student,
        "user_name": "User 0",
        "registered_at": "2026-11-30T12:00:00Z",
    }
    body = {
        "id": f"course-registration-{student}",
        "sender": {"type": "company", "id": academy},
        "text": "Welcome to Acting 101",
        "custom_data": custom,
    }
    return channel_id, body


async def test_a_server_message_is_sent_once_whatever_the_retries(client, session, emulator):
    channel_id, body = await registered(client, session)
    response = await client.post(MESSAGES.format(channel_id), json=body, headers=service_auth())
    assert response.status_code == 200, response.text
    assert response.json()["data"]["status"] == "sent"
    messages = emulator.get_channel("messaging", channel_id)["messages"]
    assert [(m["id"], m["text"]) for m in messages] == [(body["id"], "Welcome to Acting 101")]
    sent = emulator.count("SendMessage")
    again = await client.post(MESSAGES.format(channel_id), json=body, headers=service_auth())
    assert again.json()["data"]["status"] == "sent" and emulator.count("SendMessage") == sent
    other = await client.post(
        MESSAGES.format(channel_id), json=body | {"text": "Something else"}, headers=service_auth()
    )
    assert other.status_code == 409 and other.json()["code"] == "message_id_reused"


async def test_the_custom_data_reaches_stream(client, session, emulator):
    channel_id, body = await registered(client, session)
    await client.post(MESSAGES.format(channel_id), json=body, headers=service_auth())
    with emulator.lock:
        stored = emulator.state.channels[f"messaging:{channel_id}"].messages[-1]
    assert stored.custom == {"custom_data": body["custom_data"]}
    assert stored.user_id == f"onecrew_company_{body['sender']['id']}"


async def test_a_sender_outside_the_conversation_is_refused(client, session):
    channel_id, body = await registered(client, session)
    stranger = await add_user(session, "Stranger")
    response = await client.post(
        MESSAGES.format(channel_id), json=body | {"sender": {"type": "user", "id": stranger}}, headers=service_auth()
    )
    assert response.status_code == 422 and response.json()["code"] == "sender_not_participant"
    unknown = await client.post(MESSAGES.format("user_user-" + "0" * 32), json=body, headers=service_auth())
    assert unknown.status_code == 404


@pytest.mark.short_deadline
async def test_stream_down_queues_the_message_and_the_worker_delivers_it(client, session, emulator, app):
    channel_id, body = await registered(client, session)
    student = body["custom_data"]["user_id"]
    # A loaded machine may leave the 0.3 s create "provisioning": prepare (as the app does) until it is ready.
    await wait_until(lambda: _ready(client, channel_id, student), timeout=30, what="the channel to be provisioned")
    emulator.faults.set_error_rate("SendMessage", 1.0, status=503)
    response = await client.post(MESSAGES.format(channel_id), json=body, headers=service_auth())
    assert response.json()["data"]["status"] == "queued"
    assert emulator.get_channel("messaging", channel_id)["messages"] == []
    emulator.faults.reset()
    while await worker.run_once(app.state.runtime, build_jobs(app.state.runtime.settings)):
        pass
    assert [m["id"] for m in emulator.get_channel("messaging", channel_id)["messages"]] == [body["id"]]
    replay = await client.post(MESSAGES.format(channel_id), json=body, headers=service_auth())
    assert replay.json()["data"]["status"] == "sent"


async def _ready(client, channel_id, student) -> bool:
    response = await client.post(f"/api/chat/conversations/{channel_id}/prepare", headers=auth(student))
    return response.status_code == 200 and response.json()["data"]["chat_status"] == "ready"


async def test_a_message_stream_already_has_counts_as_sent(client, session, emulator, app):
    channel_id, body = await registered(client, session)
    # The write landed but the answer was lost: Stream has the id, our outbox does not know.
    await app.state.runtime.stream.send_message(
        "messaging",
        channel_id,
        message_id=body["id"],
        user_id=f"onecrew_company_{body['sender']['id']}",
        text=body["text"],
    )
    response = await client.post(MESSAGES.format(channel_id), json=body, headers=service_auth())
    assert response.json()["data"]["status"] == "sent"
    assert len(emulator.get_channel("messaging", channel_id)["messages"]) == 1
