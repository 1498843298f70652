"""The cut-over runbook end to end: Stream as the old backend left it, the directory filled, the commands run.

Then: every old pair's create answers its old channel id from both sides, unread counts equal Stream's, roles are
user and names real, and reconcile finds no drift; a second run changes nothing, a dry run nothing at all.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from onecrew_chat.models import Conversation
from tests.integration.cli_inprocess import cli_env, cli_ok
from tests.old_backend import World, build_world, stream_unread_channels
from tests.support import auth, service_auth

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


async def create(client, user, other, conversation_type, company_id=None):
    body = {"conversation_type": conversation_type, "participant_ids": [other]}
    if company_id:
        body["company_id"] = company_id
    response = await client.post("/api/chat/conversations", json=body, headers=auth(user))
    assert response.status_code == 200, response.text
    return response.json()["data"]["id"]


async def unread(client, user, company_id=None):
    query = f"profile_type=company&company_id={company_id}" if company_id else "profile_type=user"
    response = await client.get(f"/api/chat/conversations/unread-count?{query}", headers=auth(user))
    return response.json()["data"]["unread_count"]


async def conversation_count(session) -> int:
    return await session.scalar(select(func.count()).select_from(Conversation))


async def test_the_runbook_adopts_every_old_channel(database_url, emulator_server, emulator, client, session):
    w: World = await build_world(session, emulator)
    env = cli_env(database_url, emulator_server)

    async def cli(*args: str) -> str:
        return await cli_ok(env, *args)

    # Dry runs first: they change nothing.
    assert "Dry run" in await cli("sync", "identities", "--dry-run")
    dry = await cli("import", "channels", "--dry-run")
    assert "Pairs would adopt: 3; groups would adopt: 1; duplicates left untouched: 1; skipped: 2." in dry
    assert await conversation_count(session) == 0
    assert emulator.get_user(f"onecrew_company_{w.sat}")["role"] == "admin"

    await cli("sync", "identities")
    report = json.loads(await cli("import", "channels", "--json"))
    assert {p["channel_id"] for p in report["adopted_pairs"]} == {w.era1, w.era3, w.company_pair}
    assert [g["channel_id"] for g in report["groups"]] == [w.group]
    assert [entry["others"] for entry in report["duplicates"].values()] == [[w.era2]]
    assert {s["channel_id"] for s in report["skipped"]} == {w.stranger, w.broken}
    assert "Applied 1 change(s)." in await cli(
        "stream", "configure", "--webhook-url", "https://chat.example.com/api/chat/webhooks/stream"
    )
    assert "No drift" in await cli("reconcile")

    # Every old pair's create answers its old channel, from both sides.
    assert await create(client, w.amr, w.mona, "user_user") == w.era1
    assert await create(client, w.mona, w.amr, "user_user") == w.era1
    assert await create(client, w.amr, w.sat, "user_company") == w.era3
    assert await create(client, w.amr, w.amr, "user_company", company_id=w.sat) == w.era3
    assert await create(client, w.amr, w.lolo, "company_company", company_id=w.sat) == w.company_pair
    assert await create(client, w.nour, w.sat, "company_company", company_id=w.lolo) == w.company_pair
    ensured = await client.post(
        "/api/internal/conversations",
        json={
            "conversation_type": "user_company",
            "participant_ids": [w.amr],
            "acting": {"type": "company", "id": w.sat},
        },
        headers=service_auth(),
    )
    assert ensured.json()["data"]["id"] == w.era3
    # GET and prepare treat adopted channels like any other: the era-1 id as the app strips it, prepare ready at once.
    stripped = w.era1.removeprefix("onecrew_")
    assert (await client.get(f"/api/chat/conversations/{stripped}", headers=auth(w.mona))).json()["data"][
        "id"
    ] == w.era1
    prepared = await client.post(f"/api/chat/conversations/{w.era3}/prepare", headers=auth(w.amr))
    assert prepared.json()["data"]["chat_status"] == "ready"
    # The duplicate stays readable by id; the group is there with its name.
    assert (await client.get(f"/api/chat/conversations/{w.era2}", headers=auth(w.amr))).status_code == 200
    group = (await client.get(f"/api/chat/conversations/{w.group}", headers=auth(w.nour))).json()["data"]
    assert group["name"] == "Crew" and len(group["participants"]) == 3

    # Unread counts equal Stream's from the first minute.
    for user, company in ((w.amr, None), (w.mona, None), (w.nour, None), (w.amr, w.sat), (w.nour, w.lolo)):
        stream_id = f"onecrew_company_{company}" if company else f"onecrew_user_{user}"
        assert await unread(client, user, company) == stream_unread_channels(emulator, stream_id), stream_id

    # The old backend's damage is gone: roles user, names real.
    for stream_id, name in (
        (f"onecrew_company_{w.sat}", "Sat Education"),
        (f"onecrew_company_{w.lolo}", "Lolo Academy"),
        (f"onecrew_user_{w.mona}", "Mona"),
        (f"onecrew_user_{w.amr}", "Amr"),
    ):
        user = emulator.get_user(stream_id)
        assert (user["role"], user["name"]) == ("user", name)

    # A second run changes nothing.
    before = await conversation_count(session)
    again = json.loads(await cli("import", "channels", "--json"))
    assert (again["adopted_pairs"], again["groups"], again["skipped"]) == ([], [], [])
    assert again["already_decided"] == {"pair": 3, "group": 1, "duplicate": 1, "skipped": 2}
    assert await conversation_count(session) == before
    assert "No change" in await cli(
        "stream", "configure", "--webhook-url", "https://chat.example.com/api/chat/webhooks/stream"
    )
    assert "No drift" in await cli("reconcile")
