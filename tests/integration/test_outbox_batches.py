"""Batch kinds of the outbox (SQLite and PostgreSQL): due rows of one kind claimed together, each under its own
lease token, run in one handler call, every row's outcome recorded under its own token."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from onecrew_chat.db import unit_of_work, utcnow
from onecrew_chat.models import OutboxMessage
from onecrew_chat.outbox import lease, repository, worker
from onecrew_chat.outbox.jobs import Batch, Failure, Jobs, Verdict
from onecrew_chat.runtime import build_runtime
from tests.conftest import make_settings

KIND = "test.batch"
OTHER = "test.single"


class Limited(Exception):
    """A rate limit: retry no earlier than its reset."""

    retry_after_s = 42.0


class Refused(Exception):
    """No retry fixes it."""


def classify(error: BaseException) -> Failure:
    if isinstance(error, Refused):
        return Failure(Verdict.PERMANENT)
    return Failure(Verdict.RETRY, getattr(error, "retry_after_s", None))


@pytest.fixture
async def runtime(database_url):
    rt = build_runtime(make_settings(database_url, "http://127.0.0.1:9", worker_poll_s=30.0))
    yield rt
    await rt.close()


async def _add(rt, kind: str, count: int, *, start: int = 0) -> list[int]:
    async with unit_of_work(rt.sessionmaker) as session:
        rows = [
            await repository.add(session, kind, {"n": n}, dedupe_key=f"{kind}:{n}") for n in range(start, start + count)
        ]
        return [row.id for row in rows]


async def _rows(rt) -> dict[int, OutboxMessage]:
    async with rt.sessionmaker() as session:
        return {row.id: row for row in (await session.scalars(select(OutboxMessage))).all()}


def _jobs(run, size: int = 100, single=None) -> Jobs:
    handlers = {OTHER: single} if single is not None else {}
    return Jobs(handlers=handlers, batches={KIND: Batch(run, size)}, classify=classify)


async def test_rows_of_a_batch_kind_run_together_up_to_the_batch_size(runtime):
    ids = await _add(runtime, KIND, 250)
    calls: list[list[int]] = []

    async def run(rt, payloads):
        calls.append([p["n"] for p in payloads])
        return [None] * len(payloads)

    claimed = await worker.run_once(runtime, _jobs(run), limit=1000)

    assert claimed == 250
    assert [len(call) for call in calls] == [100, 100, 50]
    assert sorted(n for call in calls for n in call) == list(range(250))
    rows = await _rows(runtime)
    assert {rows[i].status for i in ids} == {"done"}
    assert {rows[i].attempts for i in ids} == {1}
    assert {rows[i].lease_token for i in ids} == {None}


async def test_each_claimed_row_has_a_lease_token_of_its_own(runtime):
    await _add(runtime, KIND, 5)
    await _add(runtime, OTHER, 2)
    async with unit_of_work(runtime.sessionmaker) as session:
        first = await lease.claim_one(session, lease_s=30)
        more = await lease.claim_more(session, KIND, limit=10, lease_s=30, exclude=[first.id])
    assert first.kind == KIND and len(more) == 4
    assert all(claim.kind == KIND for claim in more)
    assert len({claim.token for claim in [first, *more]}) == 5
    rows = await _rows(runtime)
    assert all(rows[claim.id].lease_token == claim.token for claim in more)
    # Rows leased now are not claimed again; the other kind's rows were never touched.
    async with unit_of_work(runtime.sessionmaker) as session:
        assert await lease.claim_more(session, KIND, limit=10, lease_s=30) == []
    assert {row.lease_token for row in rows.values() if row.kind == OTHER} == {None}


async def test_a_failure_of_the_whole_batch_retries_every_row_after_the_reset(runtime):
    ids = await _add(runtime, KIND, 30)

    async def run(rt, payloads):
        raise Limited("429 Too many requests")

    before = utcnow()
    assert await worker.run_one(runtime, _jobs(run), config=worker.WorkerConfig()) == "retry"

    rows = await _rows(runtime)
    assert {rows[i].status for i in ids} == {"pending"}
    assert {rows[i].attempts for i in ids} == {1}
    assert {rows[i].lease_token for i in ids} == {None}
    # One delay for the batch, at least the rate limit's reset.
    assert len({rows[i].next_attempt_at for i in ids}) == 1
    assert rows[ids[0]].next_attempt_at >= before + timedelta(seconds=41.9)
    assert "Limited: 429" in rows[ids[0]].last_error


async def test_each_row_gets_its_own_outcome(runtime):
    ids = await _add(runtime, KIND, 4)
    limited, refused = Limited("429"), Refused("bad id")

    async def run(rt, payloads):
        return [None, limited, refused, limited]

    await worker.run_once(runtime, _jobs(run))

    rows = await _rows(runtime)
    assert [rows[i].status for i in ids] == ["done", "pending", "dead", "pending"]
    assert rows[ids[1]].next_attempt_at == rows[ids[3]].next_attempt_at


async def test_a_row_that_received_work_during_the_run_runs_again_and_a_lost_lease_records_nothing(runtime):
    ids = await _add(runtime, KIND, 3)

    async def run(rt, payloads):
        async with unit_of_work(rt.sessionmaker) as session:
            await repository.add(session, KIND, {"n": 0, "again": True}, dedupe_key=f"{KIND}:0")  # folded into row 0
            await session.execute(update(OutboxMessage).where(OutboxMessage.id == ids[1]).values(lease_token="stolen"))
        return [None] * len(payloads)

    await worker.run_one(runtime, _jobs(run), config=worker.WorkerConfig())

    rows = await _rows(runtime)
    assert rows[ids[0]].status == "pending" and rows[ids[0]].lease_token is None  # rerun
    assert rows[ids[1]].status == "pending" and rows[ids[1]].lease_token == "stolen"  # not ours: untouched
    assert rows[ids[2]].status == "done"


async def test_a_handler_answering_the_wrong_number_of_outcomes_fails_every_row(runtime):
    ids = await _add(runtime, KIND, 3)

    async def run(rt, payloads):
        return [None]

    await worker.run_once(runtime, _jobs(run))

    rows = await _rows(runtime)
    assert {rows[i].status for i in ids} == {"pending"}
    assert "answered 1 outcomes for 3 rows" in rows[ids[0]].last_error


async def test_rows_of_other_kinds_still_run_one_at_a_time(runtime):
    await _add(runtime, OTHER, 3)
    singles: list[dict] = []

    async def single(rt, payload):
        singles.append(payload)

    async def run(rt, payloads):
        raise AssertionError("not a batch kind")

    assert await worker.run_once(runtime, _jobs(run, single=single)) == 3
    assert len(singles) == 3


async def test_add_many_keeps_one_pending_row_per_key(runtime):
    async with unit_of_work(runtime.sessionmaker) as session:
        await repository.add(session, KIND, {"n": 1, "old": True}, dedupe_key="k1", delay_s=600)
        queued = await repository.add_many(session, KIND, [({"n": 1}, "k1"), ({"n": 2}, "k2"), ({"n": 2}, "k2")])
    assert queued == 2
    rows = sorted((await _rows(runtime)).values(), key=lambda row: row.dedupe_key)
    assert [(row.dedupe_key, row.payload, row.version) for row in rows] == [("k1", {"n": 1}, 1), ("k2", {"n": 2}, 0)]
    assert rows[0].next_attempt_at <= utcnow()  # pulled forward: due now


async def test_concurrent_batch_claimers_never_share_a_row(postgres_only_url):
    rt = build_runtime(make_settings(postgres_only_url, "http://127.0.0.1:9"))
    try:
        await _add(rt, KIND, 100)
        # Two open transactions at once: without SKIP LOCKED the second would wait for the first's row locks.
        async with rt.sessionmaker() as first, rt.sessionmaker() as second:
            a = await lease.claim_more(first, KIND, limit=30, lease_s=30)
            b = await asyncio.wait_for(lease.claim_more(second, KIND, limit=30, lease_s=30), timeout=30)
            await first.commit()
            await second.commit()
        assert len(a) == len(b) == 30
        assert not {c.id for c in a} & {c.id for c in b}

        async def claim_all() -> list[int]:
            taken: list[int] = []
            while True:
                async with unit_of_work(rt.sessionmaker) as session:
                    claims = await lease.claim_more(session, KIND, limit=7, lease_s=30)
                if not claims:
                    return taken
                taken += [c.id for c in claims]

        batches = await asyncio.gather(*(claim_all() for _ in range(6)))
        taken = [message_id for batch in batches for message_id in batch]
        assert len(taken) == len(set(taken)) == 40
    finally:
        await rt.close()
