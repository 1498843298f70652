"""A measured live cut-over: ~2,000 users, 100 companies and ~5,000 old channels, Stream's rate limits enforced.

`python -m bench.cutover_live [--db sqlite|postgres] [--users 2000] [--channels 5000]`

The old backend's Stream is written straight into the emulator (three id schemes, duplicates, groups, generic pair
names, companies as `admin`, "User" placeholders, messages and read state); the directory straight into the
database. Then the runbook's commands run as functions, timed, while the old backend (the official SDK over HTTP,
subject to the same rate limits) keeps posting, reading and starting pairs between them, with no webhook reaching
the service (the worst case: everything must come from the catch-up). Afterwards every identity's unread count and
every conversation's preview are compared with Stream's, and the catch-up runs again. Writes
bench/results/cutover_live.json.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select
from stream_chat import StreamChatAsync

from bench.harness import SERVICE_TOKEN, STREAM_KEY, STREAM_SECRET, prepare_database, start_emulator
from onecrew_chat.config import Settings
from onecrew_chat.conversations.create import create_conversation
from onecrew_chat.conversations.request import CreateConversationRequest
from onecrew_chat.logging import configure_logging
from onecrew_chat.models import Company, CompanyMember, Conversation, ConversationParticipant, User
from onecrew_chat.runtime import build_runtime
from onecrew_chat.sync.cutover.catchup import catch_up
from onecrew_chat.sync.cutover.records import preview
from onecrew_chat.sync.cutover.run import import_channels
from onecrew_chat.sync.cutover.switch import set_switch
from onecrew_chat.sync.reconcile.backfill import backfill_identities
from stream_emulator.state import Channel, Member, Message, Read
from stream_emulator.state import User as StreamUser

RESULTS = Path(__file__).parent / "results"
S = 1_000_000_000
SEED = 15


def settings_for(url: str, base_url: str) -> Settings:
    return Settings(
        database_url=url,
        stream_api_key=STREAM_KEY,
        stream_api_secret=STREAM_SECRET,
        stream_base_url=base_url,
        jwt_secret="bench-jwt-secret-0123456789abcdef0123",
        service_token=SERVICE_TOKEN,
        run_worker=False,
        stream_timeout_s=10.0,
        log_level="warning",
    )


def sid(kind: str, entity_id: str) -> str:
    return f"onecrew_{kind}_{entity_id}"


class OldWorld:
    """The old backend's Stream, built in the emulator's state, and the directory's rows."""

    def __init__(self, users: int, companies: int, channels: int, rng: random.Random):
        self.rng = rng
        self.users = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(users)]
        self.companies = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(companies)]
        self.target = channels
        self.channels: list[str] = []
        self.members: dict[str, list[str]] = {}
        self.pairs: list[tuple[str, str]] = []

    async def directory(self, runtime) -> None:
        async with runtime.sessionmaker() as session:
            now = datetime.now(UTC)
            await session.execute(
                insert(User),
                [
                    {"id": u, "name": f"Person {n}", "image_url": None, "category": "crew", "updated_at": now}
                    for n, u in enumerate(self.users)
                ],
            )
            await session.execute(
                insert(Company),
                [
                    {"id": c, "name": f"Company {n}", "logo_url": None, "subcategory": "academy", "updated_at": now}
                    for n, c in enumerate(self.companies)
                ],
            )
            await session.execute(
                insert(CompanyMember),
                [
                    {"company_id": c, "user_id": self.users[n], "role": "owner", "invitation_status": "accepted"}
                    for n, c in enumerate(self.companies)
                ],
            )
            await session.commit()

    def stream(self, emulator) -> dict[str, int]:
        rng, now = self.rng, time.time_ns()
        messages = 0
        with emulator.lock:
            state = emulator.state
            for n, u in enumerate(self.users):
                user = StreamUser(sid("user", u), now - 90 * 86400 * S)
                user.name, user.role = ("User" if n % 20 == 0 else f"Person {n}"), "user"
                state.add_user(user)
            for n, c in enumerate(self.companies):
                user = StreamUser(sid("company", c), now - 90 * 86400 * S)
                user.name, user.role = f"Company {n}", "admin"
                state.add_user(user)
            made = 0
            while made < self.target:
                roll = rng.random()
                age = rng.randint(3600, 60 * 86400)
                if roll < 0.05:  # a group
                    members = [sid("user", u) for u in rng.sample(self.users, rng.randint(3, 60))]
                    channel_id, name = f"group-{uuid.UUID(int=rng.getrandbits(128)).hex}", f"Group {made}"
                elif roll < 0.11 and self.pairs:  # a second channel for a pair (older scheme)
                    a, b = rng.choice(self.pairs)
                    members, name = [a, b], f"Conversation {uuid.UUID(int=rng.getrandbits(128))}"
                    channel_id = f"user_user-{hashlib.md5(f'{b}{a}{made}'.encode()).hexdigest()}"
                else:
                    a = sid("user", rng.choice(self.users))
                    if rng.random() < 0.3:
                        b = sid("company", rng.choice(self.companies))
                        kind = "user_company"
                    else:
                        b = sid("user", rng.choice(self.users))
                        kind = "user_user"
                    if a == b:
                        continue
                    self.pairs.append((a, b))
                    members, name = [a, b], f"Conversation {uuid.UUID(int=rng.getrandbits(128))}"
                    scheme = rng.random()
                    if scheme < 0.2 and kind == "user_user":
                        channel_id = f"onecrew_{uuid.UUID(int=rng.getrandbits(128), version=4)}"
                    elif scheme < 0.6:
                        channel_id = f"{kind}-{hashlib.md5(f'{a}{b}'.encode()).hexdigest()}"
                    else:
                        channel_id = f"{kind}-{a}-{b}"
                cid = f"messaging:{channel_id}"
                if cid in state.channels:
                    continue
                created = now - age * S
                channel = Channel("messaging", channel_id, members[0], created)
                channel.custom["name"] = name
                for member in members:
                    channel.members[member] = Member(
                        member, created, role="owner" if member == members[0] else "member"
                    )
                for k in range(rng.randint(0, 8)):
                    at = created + (k + 1) * rng.randint(1, max(1, age // 10)) * S
                    if at >= now:
                        break
                    channel.messages.append(Message(f"{channel_id[:40]}-{k}", f"message {k}", rng.choice(members), at))
                    channel.last_message_at = at
                    messages += 1
                for member in members:
                    read_at = rng.choice([created, *(m.created_at for m in channel.messages)])
                    unread = [m for m in channel.messages if m.created_at > read_at and m.user_id != member]
                    channel.reads[member] = Read(read_at, None, len(unread))
                state.channels[cid] = channel
                self.channels.append(channel_id)
                self.members[channel_id] = members
                made += 1
        return {"channels": made, "messages": messages}


async def retried(make, counts: dict[str, int]):
    """An SDK call; a 429 waits for the rate-limit window to pass (the next second) and tries again."""
    while True:
        try:
            return await make()
        except Exception as exc:
            if getattr(exc, "status_code", None) != 429:
                raise
            counts["waits"] = counts.get("waits", 0) + 1
            await asyncio.sleep(1.0 - time.time() % 1.0 + 0.01)


async def live_activity(chat: StreamChatAsync, world: OldWorld, rounds: int) -> dict[str, int]:
    """The old backend between steps: messages, reads and new pairs (generic names) through the SDK."""
    rng, done = world.rng, {"messages": 0, "reads": 0, "pairs": 0, "waits": 0}

    async def call(make):
        return await retried(make, done)

    for _ in range(rounds):
        channel_id = rng.choice(world.channels)
        channel = chat.channel("messaging", channel_id)
        who = rng.choice(world.members[channel_id])
        if rng.random() < 0.5:
            text = f"live {done['messages']}"
            await call(lambda channel=channel, text=text, who=who: channel.send_message({"text": text}, who))
            done["messages"] += 1
        else:
            await call(lambda channel=channel, who=who: channel.mark_read(who))
            done["reads"] += 1
        if rng.random() < 0.1:
            a, b = sid("user", rng.choice(world.users)), sid("user", rng.choice(world.users))
            if a != b:
                new_id = f"user_user-{hashlib.md5(f'live{a}{b}'.encode()).hexdigest()}"
                new = chat.channel("messaging", new_id, {"members": [a, b], "name": f"Conversation {uuid.uuid4()}"})
                await call(lambda new=new, a=a: new.create(a))
                await call(lambda new=new, a=a: new.send_message({"text": "new pair"}, a))
                world.channels.append(new_id)
                world.members[new_id] = [a, b]
                done["pairs"] += 1
    return done


async def compare(runtime, emulator) -> dict[str, int]:
    """Identities whose unread count differs from Stream's, conversations whose preview differs."""
    with emulator.lock:
        stream_unread: dict[str, int] = {}
        last_text: dict[str, str | None] = {}
        for channel in emulator.state.channels.values():
            messages = [m for m in channel.messages if m.in_channel]
            last_text[channel.id] = messages[-1].text if messages else None
            for member, read in channel.reads.items():
                if member in channel.members and read.unread_messages:
                    stream_unread[member] = stream_unread.get(member, 0) + 1
    async with runtime.sessionmaker() as session:
        conversations = {
            c.id: c for c in await session.scalars(select(Conversation).where(Conversation.deleted_at.is_(None)))
        }
        ours: dict[str, int] = {}
        for p in await session.scalars(select(ConversationParticipant)):
            c = conversations.get(p.conversation_id)
            if c and c.last_message_at and (p.last_read_at is None or c.last_message_at > p.last_read_at):
                key = sid(p.participant_type, p.participant_id)
                ours[key] = ours.get(key, 0) + 1
        users = [sid("user", u) for u in await session.scalars(select(User.id))]
        users += [sid("company", c) for c in await session.scalars(select(Company.id))]
    unread_off = sum(1 for u in users if ours.get(u, 0) != stream_unread.get(u, 0))
    preview_off = sum(
        1 for c in conversations.values() if c.last_message_preview != preview(last_text.get(c.channel_id))
    )
    return {"identities": len(users), "unread_differs": unread_off, "preview_differs": preview_off}


async def creates_during_cutover(runtime, base_url: str, world: OldWorld, pairs: int = 50) -> dict[str, Any]:
    """The old backend starts pairs no catch-up has seen; the app's creates for them, with the cut-over on, answer
    the old channels: each create's time (one QueryChannels lookup, the adoption, the answer)."""
    rng, counts = world.rng, {"waits": 0}
    started: list[tuple[str, str, str]] = []
    async with StreamChatAsync(STREAM_KEY, STREAM_SECRET, base_url=base_url, timeout=10.0) as chat:
        while len(started) < pairs:
            a, b = rng.sample(world.users, 2)
            channel_id = f"user_user-{hashlib.md5(f'late{a}{b}'.encode()).hexdigest()}"
            data = {"members": [sid("user", a), sid("user", b)], "name": f"Conversation {uuid.uuid4()}"}
            channel = chat.channel("messaging", channel_id, data)
            sender = sid("user", a)
            await retried(lambda channel=channel, sender=sender: channel.create(sender), counts)
            await retried(
                lambda channel=channel, sender=sender: channel.send_message({"text": "from the old backend"}, sender),
                counts,
            )
            started.append((a, b, channel_id))
    await set_switch(runtime.sessionmaker, on=True)
    times, answered_old = [], 0
    for a, b, channel_id in started:
        request = CreateConversationRequest(conversation_type="user_user", participant_ids=[a])
        begun = time.perf_counter()
        answer = await create_conversation(runtime, b, request)
        times.append((time.perf_counter() - begun) * 1000)
        answered_old += answer["id"] == channel_id
    await set_switch(runtime.sessionmaker, on=False)
    times.sort()
    return {
        "creates": len(times),
        "answered_the_old_channel": answered_old,
        "p50_ms": round(times[len(times) // 2], 1),
        "p95_ms": round(times[int(len(times) * 0.95) - 1], 1),
    }


async def run(kind: str, url: str, users: int, companies: int, channels: int, rounds: int) -> dict[str, Any]:
    emulator, server = start_emulator()
    emulator.rate_limiter.enabled = True
    runtime = build_runtime(settings_for(url, server.base_url))
    waited = {"s": 0.0}
    query = runtime.stream.query_channels_page

    async def timed_query(*args: Any, **kwargs: Any) -> Any:  # how much of a step is Stream (the emulator) answering
        started = time.perf_counter()
        try:
            return await query(*args, **kwargs)
        finally:
            waited["s"] += time.perf_counter() - started

    runtime.stream.query_channels_page = timed_query  # type: ignore[method-assign]
    timings: dict[str, float] = {}
    out: dict[str, Any] = {"database": kind}

    async def timed(name: str, step):
        started, before = time.perf_counter(), waited["s"]
        result = await step
        timings[name] = round(time.perf_counter() - started, 2)
        if waited["s"] > before:
            timings[f"{name}: of which QueryChannels answers"] = round(waited["s"] - before, 2)
        return result

    try:
        world = OldWorld(users, companies, channels, random.Random(SEED))
        await world.directory(runtime)
        out["world"] = world.stream(emulator)
        backfill_report = await timed("sync identities", backfill_identities(runtime))
        out["sync_identities"] = {"upserted": backfill_report.upserted, "stream_calls": backfill_report.stream_calls}
        adoption = await timed("import channels", import_channels(runtime))
        out["import_channels"] = {
            "pairs": len(adoption.pairs),
            "groups": len(adoption.groups),
            "duplicates": sum(len(v["others"]) for v in adoption.duplicate_pairs().values()),
            "skipped": len(adoption.skipped),
            "stream_calls": adoption.stream_calls,
        }
        async with StreamChatAsync(STREAM_KEY, STREAM_SECRET, base_url=server.base_url, timeout=10.0) as chat:
            out["old_backend_after_import"] = await timed("old backend activity", live_activity(chat, world, rounds))
        out["before_catch_up"] = await compare(runtime, emulator)
        report = await timed("cutover catch-up", catch_up(runtime))
        out["catch_up"] = {
            "adopted": report.adopted,
            "checked": report.conversations_checked,
            "activity": len(report.activity),
            "reads": len(report.reads),
            "names_queued": len(report.names_queued),
            "stream_calls": report.stream_calls,
        }
        out["after_catch_up"] = await compare(runtime, emulator)
        again = await timed("cutover catch-up (second run)", catch_up(runtime))
        out["second_run"] = {"changed": again.changed, "stream_calls": again.stream_calls}
        out["creates_during_cutover"] = await timed(
            "50 creates during the cut-over", creates_during_cutover(runtime, server.base_url, world)
        )
        out["timings_s"] = timings
    finally:
        await runtime.close()
        server.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--companies", type=int, default=100)
    parser.add_argument("--channels", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=600, help="old-backend actions between import and catch-up")
    args = parser.parse_args()
    configure_logging("console", "error")
    admin_url = os.environ.get("ONECREW_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    url, drop = prepare_database(args.db, admin_url)
    try:
        result = asyncio.run(run(args.db, url, args.users, args.companies, args.channels, args.rounds))
    finally:
        drop()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"cutover_live_{args.db}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
