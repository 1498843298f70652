"""Switch-over day, live: the runbook of docs/cutover.md while the old backend keeps working.

The old backend (the official SDK against the emulator, Stream's rate limits enforced) posts, reads, starts pairs
under its own ids with generic names, re-upserts companies as `admin` and grows a group to 150 members between the
runbook's steps (deterministically: its actions run between the steps, nothing races on timing). Afterwards every
person's unread count and every conversation's preview equal Stream's, no pair is split, no OneCrew identity is
admin (a ghost the directory does not hold included), no pair keeps a generic name, the old backend's webhook still
gets `reaction.new`, and a second run changes nothing. `-s` prints each step's time (docs/cutover.md).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from stream_chat import StreamChatAsync

from onecrew_chat.identity import Identity, pair_channel_id, pair_key
from onecrew_chat.models import Company, Conversation, ConversationParticipant, OutboxMessage, User
from onecrew_chat.stream.client import StreamGateway
from onecrew_chat.sync.cutover.plan import PAIR_TYPES
from onecrew_chat.sync.cutover.records import preview
from tests.conftest import make_settings
from tests.factories import add_users
from tests.integration.cli_inprocess import cli_env, cli_ok
from tests.integration.test_message_loop import AppServer
from tests.old_backend import World, build_world, stream_unread_channels
from tests.old_backend_live import OldBackend, WebhookRecorder, old_pair_id
from tests.support import STREAM_KEY, STREAM_SECRET, auth, wait_until

pytestmark = [pytest.mark.filterwarnings("ignore::ResourceWarning")]

GROUP_ID = "group-old-big"
FIRST_MEMBERS, GROWTH = 109, 20  # the group: 110 members at `import channels`, 150 before the switch


class Steps:
    """Each runbook step's wall time, printed at the end (the numbers docs/cutover.md quotes)."""

    def __init__(self) -> None:
        self.times: list[tuple[str, float]] = []
        self.outputs: dict[str, str] = {}

    async def run(self, name: str, step: Callable[[], Awaitable[str]]) -> str:
        started = time.perf_counter()
        output = await step()
        self.times.append((name, time.perf_counter() - started))
        self.outputs[name] = output
        return output

    def show(self) -> None:
        for name, seconds in self.times:
            print(f"{seconds:7.2f} s  {name}")
        for name, output in self.outputs.items():
            print(f"\n$ onecrew-chat {name}\n{output}")


def members_of(emulator, channel_id: str) -> set[str]:
    with emulator.lock:
        return set(emulator.state.channels[f"messaging:{channel_id}"].members)


def stream_channels(emulator) -> dict[str, dict[str, Any]]:
    """Every channel: members, last message text and time, name."""
    with emulator.lock:
        found = {}
        for channel in emulator.state.channels.values():
            messages = [m for m in channel.messages if getattr(m, "in_channel", True)]
            last = messages[-1] if messages else None
            found[channel.id] = {
                "members": set(channel.members),
                "text": last.text if last else None,
                "at": last.created_at if last else None,
                "name": channel.custom.get("name"),
            }
        return found


async def test_a_live_switch_loses_nothing(database_url, emulator_server, emulator, runtime):
    emulator.rate_limiter.enabled = True
    try:
        await live_switch(database_url, emulator_server, emulator, runtime)
    finally:
        emulator.rate_limiter.enabled = False


async def live_switch(database_url, emulator_server, emulator, runtime) -> None:
    async with runtime.sessionmaker() as session:
        w: World = await build_world(session, emulator)
        crew = await add_users(session, FIRST_MEMBERS + 2 * GROWTH, "Crew")
    amr, mona, nour = (w.stream("user", u) for u in (w.amr, w.mona, w.nour))
    sat, lolo = w.stream("company", w.sat), w.stream("company", w.lolo)
    crew_ids = [w.stream("user", c) for c in crew]
    env = cli_env(database_url, emulator_server)
    steps = Steps()

    async def cli(*args: str) -> str:
        return await cli_ok(env, *args)

    with WebhookRecorder() as old_webhook:
        gateway = StreamGateway(STREAM_KEY, STREAM_SECRET, emulator_server.base_url)
        try:
            await gateway.update_app_settings(webhook_url=old_webhook.url)  # what the old backend had
        finally:
            await gateway.close()
        async with StreamChatAsync(STREAM_KEY, STREAM_SECRET, base_url=emulator_server.base_url, timeout=10.0) as chat:
            old = OldBackend(chat)
            await old.upsert([{"id": c, "name": f"Crew {i}", "role": "user"} for i, c in enumerate(crew_ids)])
            # The old backend's guess: Amr's uuid as a company, an app-wide admin the directory does not hold.
            ghost = w.stream("company", w.amr)
            await old.upsert([{"id": ghost, "name": "Amr", "role": "admin"}])
            await old.start_group(GROUP_ID, "Big crew", [amr, *crew_ids[:FIRST_MEMBERS]])
            await old.post(GROUP_ID, crew_ids[0], "Welcome, crew")

            # Steps 1-3 (the directory is in place): mirror identities, adopt channels.
            await steps.run("sync identities", lambda: cli("sync", "identities"))
            await steps.run("stream demote-admins", lambda: cli("stream", "demote-admins"))
            await steps.run("import channels", lambda: cli("import", "channels"))

            # The old backend goes on: a message, a read, a new pair (generic name), the group grows.
            await old.post(w.era1, mona, "are you there?")
            await old.read(w.group, amr)
            p1 = await old.start_pair(old_pair_id("user_user", nour, mona), nour, mona)
            await old.post(p1, nour, "hey Mona")
            await old.add_members(GROUP_ID, crew_ids[FIRST_MEMBERS : FIRST_MEMBERS + GROWTH])
            await old.post(GROUP_ID, crew_ids[1], "call at 10")

            # Step 4: the service runs (API and worker); step 5: the cut-over switch; step 6: webhooks move to it.
            settings = make_settings(database_url, emulator_server.base_url, run_worker=True, unread_cache_ttl_s=0)
            with AppServer(settings) as served:
                async with httpx.AsyncClient(base_url=served.base_url, timeout=30) as http:
                    await steps.run("cutover begin", lambda: cli("cutover", "begin"))
                    hook = f"{served.base_url}/api/chat/webhooks/stream"
                    await steps.run("stream configure", lambda: cli("stream", "configure", "--webhook-url", hook))

                    # The old backend: reads and messages now reach the service by webhook; companies are
                    # upserted as admin again (its token call); the group reaches 150.
                    await old.read(w.era1, amr)
                    await old.post(w.era3, sat, "See you Monday")
                    await old.upsert([{"id": sat, "name": "Sat Education", "role": "admin"}])
                    await old.add_members(GROUP_ID, crew_ids[FIRST_MEMBERS + GROWTH :])
                    for reader in crew_ids[:10]:
                        await old.read(GROUP_ID, reader)

                    # Step 7: the catch-up before the switch.
                    before = await steps.run("cutover catch-up (before the switch)", lambda: cli("cutover", "catch-up"))
                    assert "Nothing to catch up" not in before
                    print(await steps.run("reconcile", lambda: cli("reconcile")))

                    # The old backend starts a pair no catch-up has seen; then the app switches (step 8).
                    p2 = await old.start_pair(old_pair_id("user_company", lolo, amr), lolo, amr)
                    welcome = await old.post(p2, lolo, "Welcome to Lolo Academy")
                    await old.post(w.group, nour, "Shooting moved to 10")

                    async def create(user, other, conversation_type, company_id=None) -> str:
                        body = {"conversation_type": conversation_type, "participant_ids": [other]}
                        if company_id:
                            body["company_id"] = company_id
                        answer = await http.post("/api/chat/conversations", json=body, headers=auth(user))
                        assert answer.status_code == 200, answer.text
                        return answer.json()["data"]["id"]

                    # The app, on the service: old pairs answer their old channels, from either side.
                    assert await create(w.amr, w.lolo, "user_company") == p2, "adopted at create: no split"
                    assert await create(w.nour, w.amr, "user_company", company_id=w.lolo) == p2
                    assert await create(w.mona, w.nour, "user_user") == p1, "adopted by the catch-up"
                    assert await create(w.amr, w.mona, "user_user") == w.era1
                    fresh = await create(w.mona, w.sat, "user_company")  # a pair with no channel anywhere
                    await old.post(fresh, mona, "Hello Sat")  # the app sends through Stream
                    await old.read(p2, amr)

                    # Old clients still on the old backend after the switch: a pair, messages, reads, an admin upsert.
                    p3 = await old.start_pair(old_pair_id("user_company", sat, nour), sat, nour)
                    await old.post(p3, sat, "Your certificate is ready")
                    await old.upsert(
                        [{"id": lolo, "name": "Lolo Academy", "role": "admin"}, {"id": ghost, "role": "admin"}]
                    )
                    await old.react(p2, welcome, amr)  # the old backend's webhook still gets reaction.new
                    await old.post(GROUP_ID, crew_ids[5], "wrap at 6")
                    for reader in crew_ids[10:30]:
                        await old.read(GROUP_ID, reader)
                    await emulator.webhooks.wait_idle_async(timeout=30)

                    # Step 9: the catch-up after the switch, the admin repair, then the switch off.
                    after = await steps.run("cutover catch-up (after the switch)", lambda: cli("cutover", "catch-up"))
                    assert p3 in after
                    await steps.run("stream demote-admins (last)", lambda: cli("stream", "demote-admins"))
                    await steps.run("reconcile --repair", lambda: cli("reconcile", "--repair"))
                    await wait_until(lambda: outbox_drained(runtime), timeout=60, what="the outbox worker")
                    await steps.run("cutover end", lambda: cli("cutover", "end"))

                    await check_everything(http, runtime, emulator, w, crew, [p1, p2, p3], fresh)
                    assert old_webhook.received("reaction.new") == 1, "the old backend keeps its events"

                    # A second run changes nothing.
                    again = json.loads(await cli("cutover", "catch-up", "--json"))
                    assert again["changed"] is False, again
                    assert "Nothing new" in await cli("import", "channels")
                    assert "No drift" in await cli("reconcile")
                    assert "No change" in await cli("stream", "configure", "--webhook-url", hook)
                    await steps.run("cutover catch-up (second run)", lambda: cli("cutover", "catch-up"))
    print(f"\nold backend: {old.calls} SDK calls, {old.waited_s:.1f} s waiting out Stream's rate limits")
    steps.show()


async def outbox_drained(runtime) -> bool:
    async with runtime.sessionmaker() as session:
        pending = await session.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == "pending")
        )
    return pending == 0


async def check_everything(http, runtime, emulator, w: World, crew: list[str], old_pairs: list[str], fresh: str):
    channels = stream_channels(emulator)
    async with runtime.sessionmaker() as session:
        conversations = list(await session.scalars(select(Conversation).where(Conversation.deleted_at.is_(None))))
        users = list(await session.scalars(select(User.id)))
        companies = list(await session.scalars(select(Company.id)))

    # Every conversation's preview is Stream's last message.
    for conversation in conversations:
        stream = channels[conversation.channel_id]
        assert conversation.last_message_preview == preview(stream["text"]), conversation.channel_id

    # No pair is split: each pair's conversation is its channel with the newest message, and the service made no
    # channel of its own for a pair the old backend had started.
    by_pair: dict[str, list[str]] = defaultdict(list)
    for channel_id, stream in channels.items():
        try:
            first, second = (Identity.parse(m) for m in stream["members"])
        except ValueError:
            continue
        by_pair[pair_key(first, second)].append(channel_id)
    holders = {c.pair_key: c.channel_id for c in conversations if c.pair_key}
    for key, channel_ids in by_pair.items():
        if key not in holders:
            continue  # a pair the directory does not hold (skipped with the reason)
        newest = max(channel_ids, key=lambda c: channels[c]["at"] or 0)
        assert channels[holders[key]]["at"] == channels[newest]["at"], (key, holders[key], channel_ids)
    for channel_id in old_pairs:
        members = [Identity.parse(m) for m in channels[channel_id]["members"]]
        assert holders[pair_key(*members)] == channel_id
        kinds = tuple(sorted((m.kind for m in members), key=lambda k: k.value))
        ours = pair_channel_id(PAIR_TYPES[kinds], *members)
        assert ours not in channels, f"the service made a second channel for {channel_id}'s pair"
        assert channels[channel_id]["name"] is None, "the old backend's generic name is gone from Stream"
    assert fresh in channels and fresh in holders.values()

    # The group: 150 members in our records as in Stream.
    group = next(c for c in conversations if c.channel_id == GROUP_ID)
    async with runtime.sessionmaker() as session:
        participants = await session.scalar(
            select(func.count())
            .select_from(ConversationParticipant)
            .where(ConversationParticipant.conversation_id == group.id)
        )
    assert participants == len(channels[GROUP_ID]["members"]) == 1 + len(crew)

    # Every person's and company's unread count is Stream's.
    async def unread(user: str, company: str | None = None) -> int:
        query = f"profile_type=company&company_id={company}" if company else "profile_type=user"
        answer = await http.get(f"/api/chat/conversations/unread-count?{query}", headers=auth(user))
        return answer.json()["data"]["unread_count"]

    owners = {w.sat: w.amr, w.lolo: w.nour}
    for user in users:
        assert await unread(user) == stream_unread_channels(emulator, f"onecrew_user_{user}"), user
    for company in companies:
        expected = stream_unread_channels(emulator, f"onecrew_company_{company}")
        assert await unread(owners[company], company) == expected, company

    # No OneCrew identity is an app-wide admin.
    with emulator.lock:
        admins = [u.id for u in emulator.state.users.values() if u.id.startswith("onecrew_") and u.role != "user"]
    assert admins == []
