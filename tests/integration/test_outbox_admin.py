"""`onecrew-chat outbox list|retry` (cli/outbox.py): unfinished and requeue over the repository's list_messages and requeue."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from onecrew_chat.cli import outbox as outbox_admin
from onecrew_chat.db import make_engine, make_sessionmaker, utcnow
from onecrew_chat.models import OutboxMessage
from onecrew_chat.outbox import maintenance
from tests.conftest import make_settings


@pytest.fixture
def settings(database_url):
    """No Stream involved: the emulator's address is never called."""
    return make_settings(database_url, "http://127.0.0.1:9")


async def write(settings, *messages: OutboxMessage) -> list[int]:
    """Insert the messages (committed); their ids in order."""
    engine = make_engine(settings)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            session.add_all(messages)
            await session.flush()
            return [m.id for m in messages]
    finally:
        await engine.dispose()


async def read(settings) -> dict[int, tuple[str, int, bool]]:
    """id -> (status, attempts, due now)."""
    engine = make_engine(settings)
    try:
        async with make_sessionmaker(engine)() as session:
            rows = (await session.scalars(select(OutboxMessage))).all()
            soon = utcnow() + timedelta(seconds=60)
            return {r.id: (r.status, r.attempts, r.next_attempt_at < soon) for r in rows}
    finally:
        await engine.dispose()


def message(status: str, attempts: int = 3, due_in_s: float = 3600) -> OutboxMessage:
    """A provisioning row of this status, due later."""
    return OutboxMessage(
        kind="conversation.provision",
        payload={"conversation_id": "c"},
        status=status,
        attempts=attempts,
        next_attempt_at=utcnow() + timedelta(seconds=due_in_s),
    )


async def test_unfinished_lists_dead_first_then_oldest_first_without_done_rows(settings):
    pending_1, dead_1, done, pending_2, dead_2 = await write(
        settings, message("pending"), message("dead"), message("done"), message("pending"), message("dead")
    )
    assert [m.id for m in await outbox_admin.unfinished(settings)] == [dead_1, dead_2, pending_1, pending_2]
    assert [m.id for m in await outbox_admin.unfinished(settings, limit=3)] == [dead_1, dead_2, pending_1]


async def test_requeue_one_message_dead_or_pending_and_refuse_done_or_missing(settings):
    dead, pending, done, other_dead = await write(
        settings, message("dead"), message("pending"), message("done"), message("dead")
    )
    assert await outbox_admin.requeue(settings, message_id=pending) == 1  # a row backing off: due now, fresh budget
    assert await outbox_admin.requeue(settings, message_id=dead) == 1
    with pytest.raises(LookupError, match=f"outbox message {done} is already done"):
        await outbox_admin.requeue(settings, message_id=done)
    with pytest.raises(LookupError, match="no outbox message with id 999999"):
        await outbox_admin.requeue(settings, message_id=999999)
    assert await read(settings) == {
        dead: ("pending", 0, True),
        pending: ("pending", 0, True),
        done: ("done", 3, False),
        other_dead: ("dead", 3, False),
    }


async def test_requeue_without_an_id_takes_every_dead_message_only(settings):
    dead_1, pending, done, dead_2 = await write(
        settings, message("dead"), message("pending"), message("done"), message("dead")
    )
    assert await outbox_admin.requeue(settings, message_id=None) == 2
    assert await read(settings) == {
        dead_1: ("pending", 0, True),
        pending: ("pending", 3, False),
        done: ("done", 3, False),
        dead_2: ("pending", 0, True),
    }


async def test_requeue_never_touches_a_row_a_worker_holds(settings):
    leased = message("pending", attempts=2, due_in_s=-5)
    leased.lease_token, leased.locked_until = "a-worker", utcnow() + timedelta(seconds=60)
    expired = message("pending", attempts=2, due_in_s=-5)
    expired.lease_token, expired.locked_until = "a-dead-worker", utcnow() - timedelta(seconds=1)
    running, stale = await write(settings, leased, expired)
    with pytest.raises(
        maintenance.MessageInProgress, match=f"outbox message {running} is being run by a worker right now"
    ):
        await outbox_admin.requeue(settings, message_id=running)
    assert await outbox_admin.requeue(settings, message_id=stale) == 1  # its lease ran out: nobody holds it
    assert await read(settings) == {running: ("pending", 2, True), stale: ("pending", 0, True)}
    engine = make_engine(settings)
    try:
        async with make_sessionmaker(engine)() as session:
            row = await session.get(OutboxMessage, running)
            assert row.lease_token == "a-worker"  # the worker's lease is intact: it records its outcome
    finally:
        await engine.dispose()
