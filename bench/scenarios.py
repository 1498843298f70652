"""The measured scenarios: create (new and existing pair), token, list and unread count."""

from __future__ import annotations

from sqlalchemy import text

from bench.harness import Bench, Sample
from bench.seed import add_company, add_conversations, add_users


async def create_pairs(bench: Bench, n: int) -> list[Sample]:
    """New pairs (identities unknown to Stream, then already mirrored) and the same pairs again."""
    async with bench.runtime.sessionmaker() as session:
        owner = (await add_users(session, 1, "Owner"))[0]
        company = await add_company(session, owner)
        cold_users = await add_users(session, n, "Cold")
        warm_users = await add_users(session, n, "Warm")
        await session.commit()

    warmup = Sample("warm-up", bench.database)
    await bench.request(warmup, "POST", "/api/chat/token?profile_type=company&company_id=" + company, sub=owner)

    cold = Sample("create: new pair, user unknown to Stream", bench.database, target_ms=30)
    for user in cold_users:
        body = {"conversation_type": "user_company", "participant_ids": [company]}
        await bench.request(cold, "POST", "/api/chat/conversations", sub=user, json=body)

    for user in warm_users:  # the app always fetches a token first, which mirrors the identity
        await bench.request(warmup, "POST", "/api/chat/token?profile_type=user", sub=user)
    warm = Sample("create: new pair, identities mirrored", bench.database, target_ms=30)
    for user in warm_users:
        body = {"conversation_type": "user_company", "participant_ids": [company]}
        await bench.request(warm, "POST", "/api/chat/conversations", sub=user, json=body)

    existing = Sample("create: existing pair (other direction)", bench.database, target_ms=10)
    for user in warm_users:
        body = {"conversation_type": "user_company", "participant_ids": [user], "company_id": company}
        await bench.request(existing, "POST", "/api/chat/conversations", sub=owner, json=body)
    return [cold, warm, existing]


async def tokens(bench: Bench, n: int) -> list[Sample]:
    """Token for an identity Stream has not seen, and for one the mirror says is fresh."""
    async with bench.runtime.sessionmaker() as session:
        users = await add_users(session, n, "Token")
        await session.commit()
    first = Sample("token: first time (one upsert)", bench.database)
    for user in users:
        await bench.request(first, "POST", "/api/chat/token?profile_type=user", sub=user)
    fresh = Sample("token: identity fresh in mirror", bench.database, target_ms=5)
    for user in users:
        await bench.request(fresh, "POST", "/api/chat/token?profile_type=user", sub=user)
    return [first, fresh]


async def listing(bench: Bench, n: int, conversations: int = 500) -> list[Sample]:
    """List of a profile with `conversations` conversations."""
    async with bench.runtime.sessionmaker() as session:
        owner = (await add_users(session, 1, "Lister"))[0]
        others = await add_users(session, conversations, "Peer")
        await add_conversations(session, owner, others)
        await session.commit()
        await session.execute(text("ANALYZE"))  # as autovacuum would after a bulk load: the planner needs stats
        await session.commit()
    sample = Sample(f"list: page of 20 of {conversations}", bench.database, target_ms=20)
    for _ in range(n):
        await bench.request(sample, "GET", "/api/chat/conversations?profile_type=user&page=1&limit=20", sub=owner)
    full = Sample(f"list: page of 100 of {conversations}", bench.database, target_ms=20)
    for _ in range(n):
        await bench.request(full, "GET", "/api/chat/conversations?profile_type=user&page=2&limit=100", sub=owner)
    return [sample, full]


async def seed_unread(bench: Bench, conversations: int = 10_000) -> str:
    """A profile with `conversations` conversations, half of them unread; returns its user id."""
    async with bench.runtime.sessionmaker() as session:
        owner = (await add_users(session, 1, "Reader"))[0]
        others = await add_users(session, conversations, "Sender")
        await add_conversations(session, owner, others)
        await session.commit()
    return owner


async def unread(bench: Bench, n: int, owner: str, *, label: str, target_ms: float | None) -> list[Sample]:
    """Unread count for the seeded profile."""
    sample = Sample(f"unread-count: 10,000 conversations ({label})", bench.database, target_ms=target_ms)
    for _ in range(n):
        await bench.request(sample, "GET", "/api/chat/conversations/unread-count?profile_type=user", sub=owner)
    return [sample]
