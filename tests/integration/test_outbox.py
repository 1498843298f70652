"""The outbox on SQLite and PostgreSQL: one pending row per dedupe key, one-row claims under a lease token,
guarded outcomes, backoff, dead letters, and the worker running handlers with no transaction open."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update
from structlog.testing import capture_logs

from onecrew_chat import metrics
from onecrew_chat.db import unit_of_work, utcnow
from onecrew_chat.models import OutboxMessage, User
from onecrew_chat.outbox import lease, maintenance, repository, worker
from onecrew_chat.outbox.jobs import Failure, Jobs, Verdict
from onecrew_chat.outbox.repository import Outcome
from onecrew_chat.runtime import build_runtime
from tests.conftest import make_settings
from tests.support import new_id, wait_until

KIND = "test.outbox"


class Refused(Exception):
    """A failure the test classifier calls permanent."""


def classify(error: BaseException) -> Failure:
    return Failure(Verdict.PERMANENT if isinstance(error, Refused) else Verdict.RETRY)


@pytest.fixture
async def runtime(database_url):
    """A runtime on the test database; Stream is never called here (the gateway connects lazily)."""
    rt = build_runtime(make_settings(database_url, "http://127.0.0.1:9", worker_poll_s=30.0))
    yield rt
    await rt.close()


@pytest.fixture
def handled():
    """Jobs with a test handler: it records payloads, writes a user in its own transaction, then does "do"."""
    seen: list[dict] = []

    async def handle(runtime, payload):
        seen.append(payload)
        async with unit_of_work(runtime.sessionmaker) as session:
            session.add(User(id=payload["user_id"], name="from handler"))
            await session.flush()
            if payload.get("do") == "unavailable":
                raise ConnectionError("Stream is down")
            if payload.get("do") == "refused":
                raise Refused("bad request")

    return seen, Jobs(handlers={KIND: handle}, classify=classify)


async def _add(rt, payload=None, **kwargs) -> OutboxMessage:
    async with unit_of_work(rt.sessionmaker) as session:
        return await repository.add(session, KIND, payload or {"n": 1}, **kwargs)


async def _row(rt, message_id: int) -> OutboxMessage:
    async with rt.sessionmaker() as session:
        return await session.get(OutboxMessage, message_id)


async def _claim(rt, lease_s: float = 30) -> lease.Claim | None:
    async with unit_of_work(rt.sessionmaker) as session:
        return await lease.claim_one(session, lease_s=lease_s)


async def _expire_leases(rt) -> None:
    async with unit_of_work(rt.sessionmaker) as session:
        await session.execute(update(OutboxMessage).values(locked_until=utcnow() - timedelta(seconds=1)))


async def test_add_reuses_a_pending_row_with_the_same_dedupe_key(runtime):
    first = await _add(runtime, {"v": 1}, dedupe_key="k1")
    again = await _add(runtime, {"v": 2}, dedupe_key="k1")
    other = await _add(runtime, {"v": 3}, dedupe_key="k2")
    plain_a = await _add(runtime, {"v": 4})
    plain_b = await _add(runtime, {"v": 4})
    assert again.id == first.id
    assert len({first.id, other.id, plain_a.id, plain_b.id}) == 4
    row = await _row(runtime, first.id)
    assert (row.payload, row.version) == ({"v": 2}, 1)


async def test_concurrent_adds_of_one_dedupe_key_make_one_row(runtime):
    async def add(n: int) -> int:
        async with unit_of_work(runtime.sessionmaker) as session:
            return (await repository.add(session, KIND, {"n": n}, dedupe_key="same")).id

    ids = await asyncio.gather(*(add(n) for n in range(12)))
    assert len(set(ids)) == 1
    async with runtime.sessionmaker() as session:
        rows = (await session.scalars(select(OutboxMessage).where(OutboxMessage.dedupe_key == "same"))).all()
    assert len(rows) == 1 and rows[0].status == "pending"


async def test_work_folded_into_a_running_row_gets_a_run_of_its_own(runtime):
    """The worker finished version 0 while version 1 arrived: the row is due again, not done."""
    first = await _add(runtime, {"v": 1}, dedupe_key="k")
    claim = await _claim(runtime)
    assert claim.id == first.id and claim.payload == {"v": 1}
    folded = await _add(runtime, {"v": 2}, dedupe_key="k")  # while the worker runs version 0
    assert folded.id == first.id
    async with unit_of_work(runtime.sessionmaker) as session:
        assert await lease.record_done(session, claim) == Outcome.RERUN
    row = await _row(runtime, first.id)
    assert (row.status, row.lease_token, row.payload) == ("pending", None, {"v": 2})
    again = await _claim(runtime)
    assert again.id == first.id and again.payload == {"v": 2}
    async with unit_of_work(runtime.sessionmaker) as session:
        assert await lease.record_done(session, again) == Outcome.DONE
    assert (await _row(runtime, first.id)).status == "done"
    assert (await _add(runtime, dedupe_key="k")).id != first.id  # a done row is never reused


async def test_the_worker_reruns_a_row_that_received_work_during_its_run(runtime):
    seen: list[dict] = []
    first = await _add(runtime, {"v": 1}, dedupe_key="k")

    async def handle(rt, payload):
        seen.append(payload)
        if payload["v"] == 1:
            await _add(rt, {"v": 2}, dedupe_key="k")  # e.g. a PUT arriving while Stream is being called

    assert await worker.run_once(runtime, Jobs(handlers={KIND: handle})) == 2
    assert seen == [{"v": 1}, {"v": 2}]
    assert (await _row(runtime, first.id)).status == "done"


async def test_a_kind_this_worker_cannot_run_waits_for_one_that_can(runtime):
    # A rolling upgrade: the newer version queued a kind this (older) worker has no handler for.
    async with unit_of_work(runtime.sessionmaker) as session:
        newer = await repository.add(session, "newer.kind", {"n": 1})
    ours = await _add(runtime, {"n": 2})
    seen: list[dict] = []

    async def handle(rt, payload):
        seen.append(payload)

    assert await worker.run_once(runtime, Jobs(handlers={KIND: handle})) == 1
    assert seen == [{"n": 2}] and (await _row(runtime, ours.id)).status == "done"
    waiting = await _row(runtime, newer.id)
    assert (waiting.status, waiting.attempts, waiting.last_error) == ("pending", 0, None)


async def test_dedupe_pulls_a_delayed_row_forward(runtime):
    delayed = await _add(runtime, dedupe_key="k", delay_s=600)
    assert await _claim(runtime) is None
    await _add(runtime, dedupe_key="k")
    assert (await _claim(runtime)).id == delayed.id


async def test_claim_takes_one_due_row_at_a_time_in_order_under_a_fresh_token(runtime):
    later = await _add(runtime, {"n": "later"}, delay_s=600)
    a, b = await _add(runtime, {"n": "a"}), await _add(runtime, {"n": "b"})
    first, second = await _claim(runtime), await _claim(runtime)
    assert (first.id, second.id) == (a.id, b.id) and first.token != second.token
    row = await _row(runtime, a.id)
    assert row.lease_token == first.token and row.locked_until > utcnow() + timedelta(seconds=25)
    assert await _claim(runtime) is None
    await _expire_leases(runtime)
    retaken = [await _claim(runtime), await _claim(runtime), await _claim(runtime)]
    assert [c.id for c in retaken[:2]] == [a.id, b.id] and retaken[2] is None
    assert later.id not in [c.id for c in retaken[:2]]


async def test_an_outcome_is_recorded_only_under_the_current_lease(runtime):
    """A worker whose lease ran out cannot dead-letter (or finish) a row another worker finished."""
    message = await _add(runtime)
    stale = await _claim(runtime)
    await _expire_leases(runtime)
    current = await _claim(runtime)
    assert current.id == stale.id and current.token != stale.token
    async with unit_of_work(runtime.sessionmaker) as session:
        assert await lease.record_done(session, current) == Outcome.DONE
    async with unit_of_work(runtime.sessionmaker) as session:
        assert await lease.record_dead(session, stale, "too late") == Outcome.LOST
        assert await lease.record_retry(session, stale, "too late", 1) == Outcome.LOST
        assert await lease.record_done(session, stale) == Outcome.LOST
    row = await _row(runtime, message.id)
    assert (row.status, row.attempts, row.last_error) == ("done", 1, None)


async def test_retry_counts_and_postpones(runtime):
    message = await _add(runtime)
    claim = await _claim(runtime)
    async with unit_of_work(runtime.sessionmaker) as session:
        assert await lease.record_retry(session, claim, "StreamUnavailable: HTTP 503", 120) == "retry"
    row = await _row(runtime, message.id)
    assert (row.status, row.attempts, row.last_error, row.locked_until, row.lease_token) == (
        "pending",
        1,
        "StreamUnavailable: HTTP 503",
        None,
        None,
    )
    assert utcnow() + timedelta(seconds=110) < row.next_attempt_at < utcnow() + timedelta(seconds=121)
    assert await _claim(runtime) is None


def test_retry_delay_grows_exponentially_with_jitter_and_caps_at_five_minutes():
    ceilings = [lease.retry_delay(n, rng=lambda: 1.0) for n in range(1, 12)]
    floors = [lease.retry_delay(n, rng=lambda: 0.0) for n in range(1, 12)]
    assert ceilings[:6] == [1, 2, 4, 8, 16, 32]
    assert ceilings[-1] == 300 and max(ceilings) == 300
    assert floors == [c / 2 for c in ceilings]


async def test_dead_letters_are_never_claimed_and_can_be_requeued(runtime):
    message = await _add(runtime)
    before = metrics.OUTBOX_DEAD.labels(KIND)._value.get()
    claim = await _claim(runtime)
    async with unit_of_work(runtime.sessionmaker) as session:
        assert await lease.record_dead(session, claim, "refused") == Outcome.DEAD
    assert metrics.OUTBOX_DEAD.labels(KIND)._value.get() - before == 1
    row = await _row(runtime, message.id)
    assert (row.status, row.attempts, row.last_error) == ("dead", 1, "refused")
    assert await _claim(runtime) is None
    async with unit_of_work(runtime.sessionmaker) as session:
        assert [m.id for m in await maintenance.list_messages(session, status="dead")] == [message.id]
        assert await maintenance.requeue(session) == 1
    assert (await _claim(runtime)).id == message.id


async def test_run_once_runs_the_handler_and_records_done(runtime, handled):
    seen, jobs = handled
    user_id = new_id()
    message = await _add(runtime, {"user_id": user_id})
    assert await worker.run_once(runtime, jobs) == 1
    assert seen == [{"user_id": user_id}]
    row = await _row(runtime, message.id)
    assert (row.status, row.attempts, row.locked_until, row.lease_token) == ("done", 1, None, None)
    async with runtime.sessionmaker() as session:
        assert (await session.get(User, user_id)).name == "from handler"
    assert await worker.run_once(runtime, jobs) == 0


async def test_the_handler_runs_with_no_connection_of_the_worker_checked_out(database_url, handled):
    """The worker holds no transaction (nor pooled connection) while the handler waits on Stream."""
    rt = build_runtime(make_settings(database_url, "http://127.0.0.1:9"))
    checked_out: list[int] = []

    async def handle(runtime, payload):
        checked_out.append(runtime.engine.pool.checkedout())

    try:
        await _add(rt)
        assert await worker.run_once(rt, Jobs(handlers={KIND: handle})) == 1
    finally:
        await rt.close()
    assert checked_out == [0]


@pytest.mark.parametrize(("do", "status"), [("unavailable", "pending"), ("refused", "dead")])
async def test_a_failing_handler_is_retried_or_dead_lettered_as_classified(runtime, handled, do, status):
    seen, jobs = handled
    user_id = new_id()
    message = await _add(runtime, {"user_id": user_id, "do": do})
    assert await worker.run_once(runtime, jobs) == 1
    row = await _row(runtime, message.id)
    assert (row.status, row.attempts, row.locked_until) == (status, 1, None)
    assert row.last_error.startswith("ConnectionError" if do == "unavailable" else "Refused")
    if status == "pending":
        assert row.next_attempt_at > utcnow()
    async with runtime.sessionmaker() as session:
        assert await session.get(User, user_id) is None  # the handler's own transaction was rolled back
    assert await worker.run_once(runtime, jobs) == 0


async def test_the_twentieth_failure_is_a_dead_letter(runtime, handled):
    _, jobs = handled
    message = await _add(runtime, {"user_id": new_id(), "do": "unavailable"})
    async with unit_of_work(runtime.sessionmaker) as session:
        await session.execute(update(OutboxMessage).values(attempts=worker.MAX_ATTEMPTS - 1))
    await worker.run_once(runtime, jobs)
    row = await _row(runtime, message.id)
    assert (row.status, row.attempts) == ("dead", worker.MAX_ATTEMPTS)


async def test_a_dead_letter_runs_the_kinds_dead_letter_handler_in_the_same_transaction(runtime, handled):
    _, jobs = handled
    noted: list[tuple[dict, str]] = []

    async def gave_up(session, payload, error):
        noted.append((payload, error))
        session.add(User(id=payload["note_id"], name="dead letter noted"))

    jobs = Jobs(handlers=jobs.handlers, dead_letter={KIND: gave_up}, classify=classify)
    retried = await _add(runtime, {"user_id": new_id(), "note_id": new_id(), "do": "unavailable"})
    dead = await _add(runtime, {"user_id": new_id(), "note_id": new_id(), "do": "refused"})
    assert await worker.run_once(runtime, jobs) == 2

    assert [payload["note_id"] for payload, _ in noted] == [dead.payload["note_id"]], "only the dead letter"
    assert noted[0][1].startswith("Refused")
    async with runtime.sessionmaker() as session:
        assert (await session.get(User, dead.payload["note_id"])).name == "dead letter noted"
        assert await session.get(User, retried.payload["note_id"]) is None
    assert (await _row(runtime, dead.id)).status == "dead"


async def test_run_forever_wakes_on_a_kick_and_stops_on_request(runtime, handled):
    seen, jobs = handled
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run_forever(runtime, stop, jobs))
    try:
        user_id = new_id()
        message = await _add(runtime, {"user_id": user_id})
        repository.kick(runtime)  # the poll interval is 30 s: only the kick can make this quick

        async def done() -> bool:
            return (await _row(runtime, message.id)).status == "done"

        await wait_until(done, timeout=30, what="the kicked worker to finish the row")
    finally:
        stop.set()
    await asyncio.wait_for(task, timeout=30)
    assert seen and seen[0]["user_id"] == user_id


async def test_run_once_stops_mid_batch_and_leaves_the_rest_unclaimed(runtime):
    stop = asyncio.Event()
    ids = [(await _add(runtime, {"n": n})).id for n in range(3)]

    async def stop_after_first(rt, payload):
        stop.set()

    assert await worker.run_once(runtime, Jobs(handlers={KIND: stop_after_first}), stop=stop) == 1
    rows = [await _row(runtime, message_id) for message_id in ids]
    assert [r.status for r in rows] == ["done", "pending", "pending"]
    assert rows[1].locked_until is None and rows[2].locked_until is None


async def test_concurrent_claimers_never_share_a_row(postgres_only_url):
    rt = build_runtime(make_settings(postgres_only_url, "http://127.0.0.1:9"))
    try:
        async with unit_of_work(rt.sessionmaker) as session:
            for n in range(40):
                await repository.add(session, KIND, {"n": n})
        # Two open transactions at once: without SKIP LOCKED the second would block on the first's row lock.
        async with rt.sessionmaker() as first, rt.sessionmaker() as second:
            a = await lease.claim_one(first, lease_s=30)
            b = await asyncio.wait_for(lease.claim_one(second, lease_s=30), timeout=30)
            await first.commit()
            await second.commit()
        assert a.id != b.id

        async def claim_all() -> list[int]:
            taken = []
            while (claim := await _claim(rt)) is not None:
                taken.append(claim.id)
            return taken

        batches = await asyncio.gather(*(claim_all() for _ in range(8)))
        taken = [message_id for batch in batches for message_id in batch]
        assert len(taken) == len(set(taken)) == 38
        async with rt.sessionmaker() as session:
            unleased = await session.scalar(
                select(func.count()).select_from(OutboxMessage).where(OutboxMessage.lease_token.is_(None))
            )
        assert unleased == 0
    finally:
        await rt.close()


async def test_a_lease_lost_is_logged_and_records_nothing(runtime):
    message = await _add(runtime)

    async def slow_handler(rt, payload):
        await _expire_leases(rt)  # the lease ran out while Stream was being called...
        assert (await _claim(rt)).id == message.id  # ...and another worker took the row

    with capture_logs() as logs:
        assert await worker.run_once(runtime, Jobs(handlers={KIND: slow_handler})) == 1
    assert [entry["id"] for entry in logs if entry["event"] == "outbox.lease_lost"] == [message.id]
    row = await _row(runtime, message.id)
    assert (row.status, row.attempts) == ("pending", 0)  # left to the worker that holds it now


async def test_a_worker_stopped_mid_run_gives_the_row_back_at_once(runtime):
    message = await _add(runtime)
    started, never = asyncio.Event(), asyncio.Event()

    async def hangs(rt, payload):
        started.set()
        await never.wait()  # Stream never answers

    task = asyncio.create_task(worker.run_once(runtime, Jobs(handlers={KIND: hangs})))
    await asyncio.wait_for(started.wait(), timeout=30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    row = await _row(runtime, message.id)
    assert (row.status, row.attempts, row.lease_token, row.locked_until) == ("pending", 0, None, None)
    assert (await _claim(runtime)).id == message.id  # another worker can take it now, not after the lease


async def test_a_handler_past_its_share_of_the_lease_is_cut_off_and_retried(runtime):
    message = await _add(runtime)
    never = asyncio.Event()

    async def hangs(rt, payload):
        await never.wait()

    config = worker.WorkerConfig(lease_s=0.2)
    assert await worker.run_once(runtime, Jobs(handlers={KIND: hangs}), config=config) == 1
    row = await _row(runtime, message.id)
    assert (row.status, row.attempts, row.lease_token) == ("pending", 1, None)
    assert row.last_error.startswith("HandlerTimeout: the handler ran longer than 0.16 s")
