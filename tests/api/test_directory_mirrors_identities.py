"""Identities are mirrored when the directory learns of them: the PUT queues `identity.sync`, the worker sends the
queued identities 100 per call, and a new pair between them is then one Stream call."""

from __future__ import annotations

from onecrew_chat.composition import build_jobs
from onecrew_chat.identity import Identity
from onecrew_chat.outbox import worker
from tests.support import auth, new_id, service_auth

USERS = 150


async def test_users_the_directory_learns_of_are_mirrored_in_batches_and_a_new_pair_is_one_call(app, client, emulator):
    ids = [new_id() for _ in range(USERS)]
    bulk = await client.put(
        "/api/internal/users",
        json=[{"id": i, "name": f"User {n}"} for n, i in enumerate(ids[:-1])],
        headers=service_auth(),
    )
    assert bulk.status_code == 200 and bulk.json()["data"]["created"] == USERS - 1
    assert all(r["identity_sync_queued"] for r in bulk.json()["data"]["results"])
    single = await client.put(f"/api/internal/users/{ids[-1]}", json={"name": "Late"}, headers=service_auth())
    assert single.status_code == 200
    assert emulator.count() == 0  # a PUT never calls Stream itself

    runtime = app.state.runtime
    assert await worker.run_once(runtime, build_jobs(runtime.settings), limit=1000) == USERS

    assert emulator.count("UpdateUsers") == 2  # 150 identities, 100 per call
    assert emulator.get_user(Identity.user(ids[-1]).stream_id)["name"] == "Late"
    assert all(emulator.get_user(Identity.user(i).stream_id) is not None for i in ids)
    emulator.clear_requests()
    created = await client.post(
        "/api/chat/conversations",
        json={"conversation_type": "user_user", "participant_ids": [ids[1]]},
        headers=auth(ids[0]),
    )
    assert created.status_code == 200, created.text
    assert created.headers["X-Stream-Calls"] == "1"
    assert emulator.count() == emulator.count("GetOrCreateChannel") == 1
