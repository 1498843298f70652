"""Concurrent bulk PUTs naming the same new rows in different orders, on PostgreSQL: every one answers 2xx.

Rows are written in key order, so two batches that overlap wait for each other instead of each holding a row the
other needs next (a deadlock, which PostgreSQL breaks by failing one of them: a 503 for a request that did nothing
wrong).
"""

from __future__ import annotations

import asyncio
import random

import pytest
from sqlalchemy import select

from onecrew_chat.models import Company, CompanyMember, User
from tests.conftest import make_settings
from tests.support import new_id, service_auth

NO_STREAM = "http://127.0.0.1:9"  # these routes never call Stream; a closed port proves it
WRITERS = 8
ROWS = 150
ROUNDS = 3


@pytest.fixture
def settings(postgres_only_url):
    return make_settings(postgres_only_url, NO_STREAM, db_pool_size=WRITERS, db_max_overflow=0)


async def put_shuffled(client, path: str, rows: list[dict], shuffle: random.Random) -> list:
    """WRITERS concurrent PUTs of the same rows, each in its own order."""
    orders = [shuffle.sample(rows, len(rows)) for _ in range(WRITERS)]
    answers = await asyncio.gather(
        *(client.put(f"/api/internal{path}", json=order, headers=service_auth()) for order in orders)
    )
    assert [a.status_code for a in answers] == [200] * WRITERS, {a.text[:200] for a in answers if a.status_code != 200}
    for answer in answers:
        assert answer.json()["data"]["rejected"] == 0, answer.text[:300]
    return answers


async def test_overlapping_batches_in_shuffled_orders_all_succeed_and_store_each_row_once(client, session):
    shuffle = random.Random(14)  # seeded: a failure replays with the same orders
    for _ in range(ROUNDS):
        users = [{"id": new_id(), "name": f"User {n}", "category": "crew"} for n in range(ROWS)]
        companies = [{"id": new_id(), "name": f"Company {n}"} for n in range(ROWS // 3)]
        members = [
            {"company_id": c["id"], "user_id": u["id"], "role": "member", "invitation_status": "accepted"}
            for c in companies
            for u in users[:3]
        ]
        await put_shuffled(client, "/users", users, shuffle)
        await put_shuffled(client, "/companies", companies, shuffle)
        await put_shuffled(client, "/members", members, shuffle)
        # existing and new rows mixed: half the users renamed, as many new ones
        renamed = [{**u, "name": f"{u['name']} renamed"} for u in users[: ROWS // 2]]
        more = [{"id": new_id(), "name": f"Later {n}", "category": "crew"} for n in range(ROWS // 2)]
        await put_shuffled(client, "/users", renamed + more, shuffle)

        expected_users = {u["id"]: u["name"] for u in [*renamed, *users[ROWS // 2 :], *more]}
        stored = (await session.execute(select(User.id, User.name).where(User.id.in_(expected_users)))).all()
        assert dict(stored) == expected_users
        stored_companies = await session.scalars(select(Company.id).where(Company.id.in_(c["id"] for c in companies)))
        assert sorted(stored_companies) == sorted(c["id"] for c in companies)
        pairs = (
            await session.execute(
                select(CompanyMember.company_id, CompanyMember.user_id).where(
                    CompanyMember.company_id.in_(c["id"] for c in companies)
                )
            )
        ).all()
        assert sorted(map(tuple, pairs)) == sorted((m["company_id"], m["user_id"]) for m in members)
