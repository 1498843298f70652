"""Several outbox workers on one queue: a lease shorter than the batch never runs a row twice."""

from __future__ import annotations

import asyncio
import collections

from sqlalchemy import func, select
from structlog.testing import capture_logs

from onecrew_chat.db import unit_of_work
from onecrew_chat.models import OutboxMessage
from onecrew_chat.outbox import repository, worker
from onecrew_chat.outbox.jobs import Jobs
from onecrew_chat.runtime import build_runtime
from tests.conftest import make_settings
from tests.support import wait_until

KIND = "test.workers"
ROWS = 24
# Each run makes one Stream call this slow: the batch takes ~9.6 s, about twice the lease. The lease itself is
# ten times one run (claim, call, record), so a loaded machine's slow commit never outlasts it.
LATENCY_MS = 400
LEASE_S = 5.0


async def test_two_workers_with_a_lease_shorter_than_the_batch_run_each_row_once(
    database_url, emulator, emulator_server
):
    settings = make_settings(database_url, emulator_server.base_url, worker_poll_s=0.05)
    runtimes = [build_runtime(settings), build_runtime(settings)]  # two processes: own engines, own state
    for rt in runtimes:
        await rt.stream.ping()  # connections made: every run below costs one call of LATENCY_MS
    emulator.clear_requests()
    emulator.faults.set_latency(LATENCY_MS)
    runs: collections.Counter[int] = collections.Counter()

    async def handle(runtime, payload):
        runs[payload["n"]] += 1
        await runtime.stream.ping()  # Stream is slow; the worker holds nothing meanwhile

    jobs = Jobs(handlers={KIND: handle})
    config = worker.WorkerConfig(lease_s=LEASE_S, poll_s=0.05)
    async with unit_of_work(runtimes[0].sessionmaker) as session:
        for n in range(ROWS):
            await repository.add(session, KIND, {"n": n})
    stop = asyncio.Event()
    with capture_logs() as logs:
        tasks = [asyncio.create_task(worker.run_forever(rt, stop, jobs, config=config)) for rt in runtimes]
        try:

            async def all_done() -> bool:
                async with runtimes[0].sessionmaker() as session:
                    done = await session.scalar(
                        select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == "done")
                    )
                return done == ROWS

            await wait_until(all_done, timeout=120, what="both workers to finish the batch")
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
            for rt in runtimes:
                await rt.close()
    assert sorted(runs) == list(range(ROWS))
    assert max(runs.values()) == 1, f"rows run more than once: {[n for n, c in runs.items() if c > 1]}"
    assert not [entry for entry in logs if entry["event"] in ("outbox.lease_lost", "outbox.dead", "outbox.retry")]
    assert emulator.count("GetApp") == ROWS
