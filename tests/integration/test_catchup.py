"""The cut-over without a window: catch-up, create-time adoption during a cut-over, the winner rule, pair names.

The old backend acts through the official SDK (`stream-chat`) against the emulator, on both databases.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select
from stream_chat import StreamChatAsync

from onecrew_chat.identity import ConversationType, Identity, pair_channel_id
from onecrew_chat.models import AdoptionChannel, Conversation, OutboxMessage
from onecrew_chat.sync.cutover import names
from onecrew_chat.sync.cutover.catchup import catch_up
from onecrew_chat.sync.cutover.run import import_channels
from onecrew_chat.sync.cutover.switch import read_switch, set_switch
from tests.old_backend import World, build_world, stream_unread_channels
from tests.old_backend_live import OldBackend, WebhookRecorder, old_pair_id
from tests.support import STREAM_KEY, STREAM_SECRET, auth

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture
async def old(emulator_server):
    async with StreamChatAsync(STREAM_KEY, STREAM_SECRET, base_url=emulator_server.base_url, timeout=10.0) as chat:
        yield OldBackend(chat)


async def conversations(runtime) -> dict[str, Conversation]:
    async with runtime.sessionmaker() as session:
        return {c.channel_id: c for c in await session.scalars(select(Conversation))}


async def unread_in_our_records(runtime, stream_id: str) -> int:
    identity = Identity.parse(stream_id)
    async with runtime.sessionmaker() as session:
        rows = await session.scalars(select(Conversation))
        count = 0
        for conversation in rows:
            await session.refresh(conversation, ["participants"])
            for p in conversation.participants:
                if (p.participant_type, p.participant_id) == (identity.kind.value, identity.entity_id) and (
                    conversation.last_message_at is not None
                    and (p.last_read_at is None or conversation.last_message_at > p.last_read_at)
                ):
                    count += 1
        return count


async def imported_world(runtime, emulator) -> World:
    """The old backend's world, its channels imported (`import channels` before the cut-over)."""
    async with runtime.sessionmaker() as session:
        w = await build_world(session, emulator)
    await import_channels(runtime)
    return w


async def test_catch_up_brings_what_happened_since_the_import(runtime, emulator, old):
    w = await imported_world(runtime, emulator)
    amr, mona, nour = (w.stream("user", u) for u in (w.amr, w.mona, w.nour))

    # After the import: a message, a read, a pair the old backend starts.
    await old.post(w.era1, mona, "are you there?")
    await old.read(w.group, amr)
    new_pair = await old.start_pair(old_pair_id("user_user", nour, mona), nour, mona)
    await old.post(new_pair, nour, "hey Mona")

    dry = await catch_up(runtime, dry_run=True)
    assert dry.changed and [a["channel_id"] for a in dry.activity] == [w.era1]
    assert (await conversations(runtime))[w.era1].last_message_preview == "hi Amr", "a dry run writes nothing"

    report = await catch_up(runtime)
    assert [p["channel_id"] for p in report.adoption.pairs] == [new_pair]
    assert [(a["channel_id"], a["preview"]) for a in report.activity] == [(w.era1, "are you there?")]
    assert {(r["channel_id"], r["member"]) for r in report.reads} >= {(w.group, amr)}
    rows = await conversations(runtime)
    assert rows[w.era1].last_message_preview == "are you there?"
    assert rows[new_pair].last_message_preview == "hey Mona"
    for stream_id in (amr, mona, nour):
        assert await unread_in_our_records(runtime, stream_id) == stream_unread_channels(emulator, stream_id)

    emulator.clear_requests()
    again = await catch_up(runtime)
    assert not again.changed, again.lines()
    assert emulator.count("UpdateUsers") + emulator.count("UpdateChannelPartial") == 0


async def test_a_channel_with_history_takes_the_pair_over_from_an_empty_one(app, client, emulator, old):
    runtime = app.state.runtime
    w = await imported_world(runtime, emulator)
    mona, nour = w.stream("user", w.mona), w.stream("user", w.nour)
    old_channel = await old.start_pair(old_pair_id("user_user", nour, mona), nour, mona)
    await old.post(old_channel, nour, "hey Mona")

    # No cut-over in progress: the app's create makes a new, empty channel for the pair.
    created = await client.post(
        "/api/chat/conversations",
        json={"conversation_type": "user_user", "participant_ids": [w.nour]},
        headers=auth(w.mona),
    )
    empty = created.json()["data"]["id"]
    assert empty == pair_channel_id(ConversationType.USER_USER, Identity.parse(mona), Identity.parse(nour))

    report = await import_channels(runtime)
    assert [(p["channel_id"], p["replaces"]) for p in report.pairs] == [(old_channel, empty)]
    again = await client.post(
        "/api/chat/conversations",
        json={"conversation_type": "user_user", "participant_ids": [w.mona]},
        headers=auth(w.nour),
    )
    assert again.json()["data"]["id"] == old_channel
    rows = await conversations(runtime)
    assert rows[empty].pair_key is None and rows[old_channel].pair_key is not None
    assert (await client.get(f"/api/chat/conversations/{empty}", headers=auth(w.mona))).status_code == 200


async def test_a_pair_with_history_keeps_its_conversation(runtime, emulator, old):
    """The winner rule only takes a pair over from an empty conversation: one with messages keeps the pair."""
    w = await imported_world(runtime, emulator)
    amr, mona = w.stream("user", w.amr), w.stream("user", w.mona)
    newer = await old.start_pair(old_pair_id("user_user", mona, amr), mona, amr)
    await old.post(newer, mona, "a newer thread")
    report = await import_channels(runtime)
    assert report.pairs == [] and report.duplicate_pairs()[f"{amr}|{mona}" if amr < mona else f"{mona}|{amr}"] == {
        "adopted": w.era1,
        "others": [newer],
    }


async def test_during_a_cutover_a_create_adopts_the_pairs_old_channel(app, client, emulator, old):
    runtime = app.state.runtime
    w = await imported_world(runtime, emulator)
    amr, lolo = w.stream("user", w.amr), w.stream("company", w.lolo)
    assert not (await read_switch(runtime.sessionmaker)).in_progress
    _, changed = await set_switch(runtime.sessionmaker, on=True)
    assert changed and (await set_switch(runtime.sessionmaker, on=True))[1] is False

    old_channel = await old.start_pair(old_pair_id("user_company", lolo, amr), lolo, amr)
    await old.post(old_channel, lolo, "Welcome to Lolo Academy")
    emulator.clear_requests()
    for user, body in (
        (w.amr, {"conversation_type": "user_company", "participant_ids": [w.lolo]}),
        (w.nour, {"conversation_type": "user_company", "participant_ids": [w.amr], "company_id": w.lolo}),
    ):
        answer = await client.post("/api/chat/conversations", json=body, headers=auth(user))
        assert answer.status_code == 200, answer.text
        assert answer.json()["data"]["id"] == old_channel
        assert answer.json()["data"]["last_message_preview"] == "Welcome to Lolo Academy"
    assert emulator.count("QueryChannels") == 1, "one lookup: the second create finds the adopted pair"
    assert emulator.count("GetOrCreateChannel") == 0, "no second channel for the pair"

    # The ledger holds it like any adopted channel (an import leaves it alone); its generic name goes via the outbox.
    async with runtime.sessionmaker() as session:
        ledger = await session.get(AdoptionChannel, f"messaging:{old_channel}")
        row = await session.scalar(select(OutboxMessage).where(OutboxMessage.kind == names.UNSET_NAME))
    assert ledger.outcome == "pair"
    assert (await import_channels(runtime)).pairs == []
    assert emulator.get_channel("messaging", old_channel)["name"].startswith("Conversation ")
    await names.unset_name(runtime, row.payload)
    assert "name" not in emulator.get_channel("messaging", old_channel)

    # After `cutover end`, a pair the service does not know gets a new channel without a lookup.
    await set_switch(runtime.sessionmaker, on=False)
    emulator.clear_requests()
    fresh = await client.post(
        "/api/chat/conversations",
        json={"conversation_type": "user_user", "participant_ids": [w.nour]},
        headers=auth(w.mona),
    )
    assert fresh.status_code == 200 and emulator.count("QueryChannels") == 0


async def test_removing_the_name_of_a_channel_stream_no_longer_has_is_done(runtime, emulator):
    await names.unset_name(runtime, {"channel_type": "messaging", "channel_id": "user_user-gone"})
    assert emulator.count("UpdateChannelPartial") == 1


def test_generic_names_are_the_old_backends_only():
    assert names.is_generic("Conversation 1f0c8a9e-3b7d-4c55-9e0a-2b1d7e6f4a10")
    assert names.is_generic("Conversation user_company-3565728146948a62810a0ae483151108")
    assert not names.is_generic("Conversation about the shoot")
    assert not names.is_generic("Crew")
    assert not names.is_generic(None)


async def test_the_old_webhook_keeps_reaction_new(runtime, emulator, emulator_server, old):
    """`stream configure` must leave the old backend's webhook its events (Stream's event_hooks)."""
    from tests.integration.cli_inprocess import cli_env, cli_ok

    async with runtime.sessionmaker() as session:
        w: World = await build_world(session, emulator)
    with WebhookRecorder() as old_webhook:
        await runtime.stream.update_app_settings(webhook_url=old_webhook.url)
        env = cli_env(runtime.settings.database_url, emulator_server)
        await cli_ok(env, "stream", "configure", "--webhook-url", "http://127.0.0.1:9/api/chat/webhooks/stream")
        message = await old.post(w.era3, w.stream("company", w.sat), "Welcome")
        await old.react(w.era3, message, w.stream("user", w.amr))
        await emulator.webhooks.wait_idle_async(timeout=10)
        assert old_webhook.received("reaction.new") == 1
