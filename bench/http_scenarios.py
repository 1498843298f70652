"""The scenarios measured over HTTP: their data (written straight into the database) and their prepared requests."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import text

from bench.harness import STREAM_SECRET, bearer
from bench.load import Call
from bench.seed import add_company, add_conversations, add_users
from onecrew_chat.db import make_engine, make_sessionmaker
from onecrew_chat.identity import Identity, pair_channel_id
from onecrew_chat.webhooks.body import sign

CONCURRENCY = (1, 16, 64)
LIST_SMALL, LIST_LARGE, UNREAD_SIZE = 500, 50_000, 10_000
LOGIN_WAVE, LOGIN_WAVE_CONCURRENCY = 10_000, 64  # new users asking for their first token (PostgreSQL only)
# Creates of pairs of people Stream has never seen (both identities need an upsert), Stream's limits enforced.
NEW_PEOPLE_PAIRS, NEW_PEOPLE_CONCURRENCY = 160, 16
# Creates with Stream a realistic distance away (each call held 80 ms by the emulator), so that many Stream calls
# are in flight at once: what the API's connection pool to Stream costs as concurrency grows.
DISTANT_LATENCY_MS, DISTANT_CONCURRENCY = 80.0, (16, 64, 256)


def requests_for(concurrency: int, base: int) -> int:
    """Requests of a cheap scenario at this concurrency: `base`, and at least 4 per connection."""
    return max(base, concurrency * 4)


# The cheapest scenarios (the floor, a cached unread count: well under a millisecond) send this many times more:
# the kernel counts a process's CPU in 10 ms ticks, so 100 requests could not tell 0.3 ms from 0.4.
CHEAPEST = 10


# Stream allows UpdateChannel (add members, 100 per call) 300 times a minute and 10 times a second, and the emulator
# enforces it: a 1,000-member group needs 9 of them, so within the 3 s provisioning deadline Stream lets about 3
# such groups finish, whatever the service does. More at once all answer 408 provisioning_timeout (the worker,
# off in the bench, would finish them): a measure of Stream's limit, not of the service. Two at every concurrency.
LARGE_GROUPS_AT_ONCE = 2


def group_requests(concurrency: int, size: int) -> int:
    """Groups created at this concurrency (1,000-member groups: as many as Stream's UpdateChannel limit lets
    finish within the deadline)."""
    return LARGE_GROUPS_AT_ONCE if size >= 1000 else max(4, concurrency // 2)


@dataclass
class Data:
    """The rows the scenarios use, by role."""

    owner: str = ""
    company: str = ""
    pair_users: list[str] = field(default_factory=list)
    group_users: list[str] = field(default_factory=list)
    listers: dict[int, str] = field(default_factory=dict)
    reader: str = ""
    reader_peers: list[str] = field(default_factory=list)
    wave_users: list[str] = field(default_factory=list)
    new_people: list[str] = field(default_factory=list)
    distant: list[str] = field(default_factory=list)


async def seed(database_url: str, base: int) -> Data:
    """Every scenario's rows, then ANALYZE (and VACUUM on PostgreSQL) as a production database would have."""
    engine = make_engine(url=database_url)
    data = Data()
    pairs_needed = sum(requests_for(c, base) for c in CONCURRENCY)
    try:
        async with make_sessionmaker(engine)() as session:
            data.owner = (await add_users(session, 1, "Owner"))[0]
            data.company = await add_company(session, data.owner)
            data.pair_users = await add_users(session, pairs_needed, "Pair")
            data.group_users = await add_users(session, 999, "Member")
            data.new_people = await add_users(session, 2 * NEW_PEOPLE_PAIRS, "Newcomer")
            distant = sum(requests_for(c, base) for c in DISTANT_CONCURRENCY)
            data.distant = await add_users(session, 2 * distant, "Distant")
            for size in (LIST_SMALL, LIST_LARGE):
                data.listers[size] = (await add_users(session, 1, "Lister"))[0]
                await add_conversations(session, data.listers[size], await add_users(session, size, "Peer"))
                await session.commit()
            if engine.dialect.name == "postgresql":
                data.wave_users = await add_users(session, LOGIN_WAVE, "Wave")
            data.reader = (await add_users(session, 1, "Reader"))[0]
            data.reader_peers = await add_users(session, UNREAD_SIZE, "Sender")
            await add_conversations(session, data.reader, data.reader_peers)
            await session.commit()
        if engine.dialect.name == "postgresql":
            async with engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text("VACUUM ANALYZE"))
        else:
            async with engine.begin() as conn:
                await conn.execute(text("ANALYZE"))
    finally:
        await engine.dispose()
    return data


def slices(
    items: list[str], base: int, concurrencies: tuple[int, ...] = CONCURRENCY, per_request: int = 1
) -> dict[int, list[str]]:
    """Disjoint slices of `items` for each concurrency (a "new" request uses each item once)."""
    out, start = {}, 0
    for concurrency in concurrencies:
        n = requests_for(concurrency, base) * per_request
        out[concurrency] = items[start : start + n]
        start += n
    return out


def token(users: list[str]) -> list[Call]:
    """POST /api/chat/token for each user."""
    return [Call("POST", "/api/chat/token?profile_type=user", bearer(user)) for user in users]


def create_pair(data: Data, users: list[str]) -> list[Call]:
    """A user starts a conversation with the company."""
    body = {"conversation_type": "user_company", "participant_ids": [data.company]}
    return [Call("POST", "/api/chat/conversations", bearer(user), json=body) for user in users]


def user_pairs(users: list[str]) -> list[Call]:
    """Each of two people starts a conversation with the other (pairs that share no participant)."""
    return [
        Call(
            "POST",
            "/api/chat/conversations",
            bearer(a),
            json={"conversation_type": "user_user", "participant_ids": [b]},
        )
        for a, b in zip(users[::2], users[1::2], strict=True)
    ]


def new_people_pairs(data: Data) -> list[Call]:
    """Each of two people nobody has mirrored yet starts a conversation with the other."""
    return user_pairs(data.new_people)


def existing_pair(data: Data, users: list[str]) -> list[Call]:
    """The company (acting through its owner) opens the pairs the users started: the other direction."""
    return [
        Call(
            "POST",
            "/api/chat/conversations",
            bearer(data.owner),
            json={"conversation_type": "user_company", "participant_ids": [user], "company_id": data.company},
        )
        for user in users
    ]


def group(data: Data, size: int, count: int) -> list[Call]:
    """`count` new groups of `size` members (the owner and size - 1 users, all mirrored by a warm-up)."""
    body = {"conversation_type": "group", "participant_ids": data.group_users[: size - 1], "name": f"Crew of {size}"}
    return [Call("POST", "/api/chat/conversations", bearer(data.owner), json=body) for _ in range(count)]


def listing(lister: str, count: int) -> list[Call]:
    """The app's first page (20) of the lister's conversations."""
    return [Call("GET", "/api/chat/conversations?profile_type=user&page=1&limit=20", bearer(lister))] * count


FLOOR = "floor: bare route of the same app and server"


def floor(count: int) -> list[Call]:
    """The stack's floor: a route with no authentication and no work (GET /_debug/floor), same app, same server."""
    return [Call("GET", "/_debug/floor", {"Content-Type": "application/json"})] * count


def unread(data: Data, count: int) -> list[Call]:
    """The reader's unread count (the app polls it)."""
    return [Call("GET", "/api/chat/conversations/unread-count?profile_type=user", bearer(data.reader))] * count


def webhooks(data: Data, senders: list[str]) -> list[Call]:
    """A signed message.new from each sender into their conversation with the reader."""
    reader = Identity.user(data.reader)
    calls = []
    for sender in senders:
        channel_id = pair_channel_id("user_user", reader, Identity.user(sender))
        at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"
        sender_id = Identity.user(sender).stream_id
        event = {
            "type": "message.new",
            "cid": f"messaging:{channel_id}",
            "channel_id": channel_id,
            "channel_type": "messaging",
            "created_at": at,
            "user": {"id": sender_id},
            "message": {
                "id": str(uuid.uuid4()),
                "text": "bench",
                "type": "regular",
                "created_at": at,
                "user": {"id": sender_id},
            },
        }
        body = json.dumps(event).encode()
        headers = {
            "X-Signature": sign(body, STREAM_SECRET),
            "X-Webhook-Id": str(uuid.uuid4()),
            "Content-Type": "application/json",
        }
        calls.append(Call("POST", "/api/chat/webhooks/stream", headers, content=body))
    return calls
