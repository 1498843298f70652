"""What a create holds while it waits on Stream: no write lock another writer would queue behind."""

from __future__ import annotations

import asyncio

from sqlalchemy.exc import DBAPIError

from onecrew_chat.identity import Identity
from tests.factories import add_company, add_user
from tests.support import auth, wait_until

URL = "/api/chat/conversations"


async def another_writer_gets_through(engine, company: str) -> bool:
    """Whether a write touching the rows a create writes succeeds at once (no waiting for the lock's holder)."""
    stream_id = Identity.company(company).stream_id
    async with engine.connect() as conn:
        try:
            if engine.dialect.name == "sqlite":
                await conn.exec_driver_sql("PRAGMA busy_timeout = 0")  # SQLite: one writer for the whole file
                await conn.exec_driver_sql("UPDATE company SET name = name WHERE id = ?", (company,))
            else:
                await conn.exec_driver_sql("SET LOCAL lock_timeout = '200ms'")  # PostgreSQL: a written row stays locked
                await conn.exec_driver_sql(
                    "INSERT INTO stream_identity (stream_id, kind, entity_id, profile_hash, placeholder, synced_at) "
                    "VALUES ($1, 'company', $2, 'probe', false, now()) ON CONFLICT (stream_id) DO NOTHING",
                    (stream_id, company),
                )
            return True
        except DBAPIError as exc:
            assert "locked" in str(exc) or "lock timeout" in str(exc), exc
            return False
        finally:
            await conn.rollback()
            await conn.invalidate()  # do not hand a connection with a changed timeout back to the pool


async def test_no_lock_is_held_while_a_create_waits_for_stream(client, app, session, emulator):
    user = await add_user(session, "Amr")
    company = await add_company(session, "Lolo Academy", owner=await add_user(session, "Owner"))
    # The upserts go through, then the channel call meets a 429 and the create waits for the reset.
    emulator.faults.rate_limit_burst("GetOrCreateChannel", count=1, reset_in_s=0.5)
    create = asyncio.create_task(
        client.post(URL, json={"conversation_type": "user_company", "participant_ids": [company]}, headers=auth(user))
    )
    await wait_until(
        lambda: any(r.operation == "GetOrCreateChannel" and r.status == 429 for r in emulator.requests),
        what="the create waiting for the rate limit's reset",
    )
    assert emulator.count("UpdateUsers") == 1, "the identities were upserted before the channel call"

    gets_through = await another_writer_gets_through(app.state.runtime.engine, company)

    response = await create
    assert response.status_code == 200, response.text
    assert response.json()["data"]["chat"]["status"] == "ready"
    assert gets_through, "a write waited on a create that was waiting on Stream"
