"""The outbox on SQLite and PostgreSQL: dedupe, leases, backoff, dead letters, the worker's unit of work."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from onecrew_chat import metrics
from onecrew_chat.db import utcnow
from onecrew_chat.models import OutboxMessage, User
from onecrew_chat.outbox import repository, worker
from onecrew_chat.runtime import build_runtime
from onecrew_chat.stream.errors import StreamRequestError, StreamUnavailable, StreamUsersMissing
from tests.conftest import make_settings
from tests.support import new_id, wait_until

KIND = "test.outbox"


@pytest.fixture
async def runtime(database_url):
    """A runtime on the test database; Stream is never called here (the gateway connects lazily)."""
    rt = build_runtime(make_settings(database_url, "http://127.0.0.1:9", worker_poll_s=30.0))
    yield rt
    await rt.close()


@pytest.fixture
def handled():
    """Register a test handler; it records payloads and does what the payload's "do" says."""
    seen: list[dict] = []

    @worker.register(KIND)
    async def handle(runtime, session, payload):
        seen.append(payload)
        session.add(User(id=payload["user_id"], name="from handler"))
        await session.flush()
        failure = {
            "unavailable": StreamUnavailable("HTTP 503", operation="GetOrCreateChannel", status=503),
            "refused": StreamRequestError("bad request", operation="GetOrCreateChannel", status=400, code=4),
            "missing": StreamUsersMissing("x", operation="GetOrCreateChannel", status=400, missing_ids=["a"]),
            "bug": KeyError("oops"),
        }.get(payload.get("do"))
        if failure is not None:
            raise failure

    yield seen
    worker.HANDLERS.pop(KIND, None)


async def _add(rt, payload=None, **kwargs) -> OutboxMessage:
    async with rt.sessionmaker() as session:
        message = await repository.add(session, KIND, payload or {"n": 1}, **kwargs)
        await session.commit()
        return message


async def _row(rt, message_id: int) -> OutboxMessage:
    async with rt.sessionmaker() as session:
        return await session.get(OutboxMessage, message_id)


async def _expire_leases(rt) -> None:
    async with rt.sessionmaker() as session:
        await session.execute(update(OutboxMessage).values(locked_until=utcnow() - timedelta(seconds=1)))
        await session.commit()


async def test_add_reuses_a_pending_row_with_the_same_dedupe_key(runtime):
    first = await _add(runtime, {"v": 1}, dedupe_key="k1")
    again = await _add(runtime, {"v": 2}, dedupe_key="k1")
    other = await _add(runtime, {"v": 3}, dedupe_key="k2")
    plain_a = await _add(runtime, {"v": 4})
    plain_b = await _add(runtime, {"v": 4})
    assert again.id == first.id
    assert len({first.id, other.id, plain_a.id, plain_b.id}) == 4
    assert (await _row(runtime, first.id)).payload == {"v": 2}


async def test_add_does_not_fold_into_a_claimed_or_finished_row(runtime):
    first = await _add(runtime, dedupe_key="k")
    async with runtime.sessionmaker() as session:
        assert [m.id for m in await repository.claim_due(session, limit=10, lease_s=30)] == [first.id]
        await session.commit()
    while_leased = await _add(runtime, dedupe_key="k")
    assert while_leased.id != first.id
    async with runtime.sessionmaker() as session:
        await repository.mark_done(session, await session.get(OutboxMessage, while_leased.id))
        await session.commit()
    after_done = await _add(runtime, dedupe_key="k")
    assert after_done.id not in (first.id, while_leased.id)


async def test_dedupe_pulls_a_delayed_row_forward(runtime):
    delayed = await _add(runtime, dedupe_key="k", delay_s=600)
    async with runtime.sessionmaker() as session:
        assert await repository.claim_due(session, limit=10, lease_s=30) == []
    await _add(runtime, dedupe_key="k")
    async with runtime.sessionmaker() as session:
        assert [m.id for m in await repository.claim_due(session, limit=10, lease_s=30)] == [delayed.id]


async def test_claim_takes_due_rows_in_order_and_leases_them(runtime):
    later = await _add(runtime, {"n": "later"}, delay_s=600)
    a = await _add(runtime, {"n": "a"})
    b = await _add(runtime, {"n": "b"})
    c = await _add(runtime, {"n": "c"})
    async with runtime.sessionmaker() as session:
        claimed = await repository.claim_due(session, limit=2, lease_s=30)
        await session.commit()
    assert [m.id for m in claimed] == [a.id, b.id]
    assert all(m.locked_until > utcnow() + timedelta(seconds=25) for m in claimed)
    async with runtime.sessionmaker() as session:
        assert [m.id for m in await repository.claim_due(session, limit=10, lease_s=30)] == [c.id]
        await session.commit()
    async with runtime.sessionmaker() as session:
        assert await repository.claim_due(session, limit=10, lease_s=30) == []
    await _expire_leases(runtime)
    async with runtime.sessionmaker() as session:
        retaken = await repository.claim_due(session, limit=10, lease_s=30)
    assert [m.id for m in retaken] == [a.id, b.id, c.id]
    assert later.id not in [m.id for m in retaken]


async def test_retry_counts_and_postpones(runtime):
    message = await _add(runtime)
    async with runtime.sessionmaker() as session:
        row = await session.get(OutboxMessage, message.id)
        await repository.mark_retry(session, row, "StreamUnavailable: HTTP 503", 120)
        await session.commit()
    row = await _row(runtime, message.id)
    assert (row.status, row.attempts, row.last_error, row.locked_until) == (
        "pending", 1, "StreamUnavailable: HTTP 503", None
    )
    assert utcnow() + timedelta(seconds=110) < row.next_attempt_at < utcnow() + timedelta(seconds=121)
    async with runtime.sessionmaker() as session:
        assert await repository.claim_due(session, limit=10, lease_s=30) == []


def test_retry_delay_grows_exponentially_with_jitter_and_caps_at_five_minutes():
    ceilings = [repository.retry_delay(n, rng=lambda: 1.0) for n in range(1, 12)]
    floors = [repository.retry_delay(n, rng=lambda: 0.0) for n in range(1, 12)]
    assert ceilings[:6] == [1, 2, 4, 8, 16, 32]
    assert ceilings[-1] == 300 and max(ceilings) == 300
    assert floors == [c / 2 for c in ceilings]


async def test_dead_letters_are_never_claimed_and_can_be_requeued(runtime):
    message = await _add(runtime)
    before = metrics.OUTBOX_DEAD.labels(KIND)._value.get()
    async with runtime.sessionmaker() as session:
        await repository.mark_dead(session, await session.get(OutboxMessage, message.id), "refused")
        await session.commit()
    assert metrics.OUTBOX_DEAD.labels(KIND)._value.get() - before == 1
    row = await _row(runtime, message.id)
    assert (row.status, row.attempts, row.last_error) == ("dead", 1, "refused")
    async with runtime.sessionmaker() as session:
        assert await repository.claim_due(session, limit=10, lease_s=30) == []
        assert [m.id for m in await repository.list_messages(session, status="dead")] == [message.id]
        assert await repository.requeue(session) == 1
        await session.commit()
    async with runtime.sessionmaker() as session:
        assert [m.id for m in await repository.claim_due(session, limit=10, lease_s=30)] == [message.id]


async def test_run_once_commits_the_handlers_work_with_done(runtime, handled):
    user_id = new_id()
    message = await _add(runtime, {"user_id": user_id})
    assert await worker.run_once(runtime) == 1
    assert handled == [{"user_id": user_id}]
    row = await _row(runtime, message.id)
    assert (row.status, row.attempts, row.locked_until) == ("done", 1, None)
    async with runtime.sessionmaker() as session:
        assert (await session.get(User, user_id)).name == "from handler"
    assert await worker.run_once(runtime) == 0


@pytest.mark.parametrize(
    ("do", "status", "error_prefix"),
    [
        ("unavailable", "pending", "StreamUnavailable"),
        ("missing", "pending", "StreamUsersMissing"),
        ("bug", "pending", "KeyError"),
        ("refused", "dead", "StreamRequestError"),
    ],
)
async def test_a_failing_handler_rolls_back_and_is_retried_or_dead_lettered(runtime, handled, do, status, error_prefix):
    user_id = new_id()
    message = await _add(runtime, {"user_id": user_id, "do": do})
    assert await worker.run_once(runtime) == 1
    row = await _row(runtime, message.id)
    assert (row.status, row.attempts, row.locked_until) == (status, 1, None)
    assert row.last_error.startswith(error_prefix)
    if status == "pending":
        assert row.next_attempt_at > utcnow()
    async with runtime.sessionmaker() as session:
        assert await session.get(User, user_id) is None  # the handler's write was rolled back
    assert await worker.run_once(runtime) == 0


async def test_the_twentieth_failure_is_a_dead_letter(runtime, handled):
    message = await _add(runtime, {"user_id": new_id(), "do": "unavailable"})
    async with runtime.sessionmaker() as session:
        await session.execute(update(OutboxMessage).values(attempts=worker.MAX_ATTEMPTS - 1))
        await session.commit()
    await worker.run_once(runtime)
    row = await _row(runtime, message.id)
    assert (row.status, row.attempts) == ("dead", worker.MAX_ATTEMPTS)



async def test_a_dead_letter_runs_the_kinds_dead_letter_handler_in_the_same_transaction(runtime, handled):
    noted: list[tuple[dict, str]] = []

    @worker.register_dead_letter(KIND)
    async def gave_up(runtime, session, payload, error):
        noted.append((payload, error))
        session.add(User(id=payload["note_id"], name="dead letter noted"))

    try:
        retried = await _add(runtime, {"user_id": new_id(), "note_id": new_id(), "do": "unavailable"})
        dead = await _add(runtime, {"user_id": new_id(), "note_id": new_id(), "do": "refused"})
        assert await worker.run_once(runtime) == 2
    finally:
        worker.DEAD_LETTER_HANDLERS.pop(KIND, None)

    assert [payload["note_id"] for payload, _ in noted] == [dead.payload["note_id"]], "only the dead letter"
    assert noted[0][1].startswith("StreamRequestError")
    async with runtime.sessionmaker() as session:
        assert (await session.get(User, dead.payload["note_id"])).name == "dead letter noted"
        assert await session.get(User, retried.payload["note_id"]) is None
    assert (await _row(runtime, dead.id)).status == "dead"

async def test_an_unknown_kind_waits_for_a_handler(runtime):
    async with runtime.sessionmaker() as session:
        message = await repository.add(session, "nobody.handles.this", {})
        await session.commit()
    assert await worker.run_once(runtime) == 1
    row = await _row(runtime, message.id)
    assert (row.status, row.attempts) == ("pending", 1)
    assert "no handler" in row.last_error


async def test_run_forever_wakes_on_a_kick_and_stops_on_request(runtime, handled):
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run_forever(runtime, stop))
    try:
        user_id = new_id()
        message = await _add(runtime, {"user_id": user_id})
        worker.kick(runtime)  # the poll interval is 30 s: only the kick can make this quick

        async def done() -> bool:
            return (await _row(runtime, message.id)).status == "done"

        await wait_until(done, timeout=5, what="the kicked worker to finish the row")
    finally:
        stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert handled and handled[0]["user_id"] == user_id


async def test_run_once_stops_mid_batch_and_gives_the_rest_back(runtime, handled):
    stop = asyncio.Event()
    ids = [(await _add(runtime, {"user_id": new_id()})).id for _ in range(3)]

    @worker.register(KIND)
    async def stop_after_first(rt, session, payload):
        stop.set()

    assert await worker.run_once(runtime, stop=stop) == 3
    rows = [await _row(runtime, message_id) for message_id in ids]
    assert [r.status for r in rows] == ["done", "pending", "pending"]
    assert rows[1].locked_until is None and rows[2].locked_until is None


async def test_concurrent_claimers_never_share_a_row(postgres_only_url):
    rt = build_runtime(make_settings(postgres_only_url, "http://127.0.0.1:9"))
    try:
        async with rt.sessionmaker() as session:
            for n in range(40):
                await repository.add(session, KIND, {"n": n})
            await session.commit()
        # Two open transactions at once: without SKIP LOCKED the second would block on the first's row locks.
        async with rt.sessionmaker() as first, rt.sessionmaker() as second:
            a = await repository.claim_due(first, limit=25, lease_s=30)
            b = await asyncio.wait_for(repository.claim_due(second, limit=25, lease_s=30), timeout=5)
            await first.commit()
            await second.commit()
        assert len(a) == 25 and len(b) == 15
        assert not {m.id for m in a} & {m.id for m in b}

        # And many claimers racing: every row goes to exactly one of them.
        async with rt.sessionmaker() as session:
            await session.execute(update(OutboxMessage).values(locked_until=None))
            await session.commit()

        async def claim() -> list[int]:
            async with rt.sessionmaker() as session:
                rows = await repository.claim_due(session, limit=7, lease_s=30)
                await session.commit()
                return [m.id for m in rows]

        batches = await asyncio.gather(*(claim() for _ in range(8)))
        taken = [message_id for batch in batches for message_id in batch]
        assert len(taken) == len(set(taken)) == 40
        async with rt.sessionmaker() as session:
            locked = (await session.execute(select(OutboxMessage).where(OutboxMessage.locked_until.is_(None)))).all()
        assert locked == []
    finally:
        await rt.close()
