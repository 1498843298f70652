"""Retention: done outbox rows, applied webhook events and resolved drift are purged in batches once old enough;
everything still needed (pending and dead rows, recent webhook ids, open drift) stays."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import insert, select

from onecrew_chat.composition import build_jobs
from onecrew_chat.db import unit_of_work, utcnow
from onecrew_chat.models import ChannelDrift, OutboxMessage, WebhookEvent
from onecrew_chat.outbox import worker
from onecrew_chat.runtime import build_runtime
from onecrew_chat.sync import retention
from tests.conftest import make_settings
from tests.support import wait_until

HOUR = timedelta(hours=1)


@pytest.fixture
async def runtime(database_url):
    rt = build_runtime(
        make_settings(database_url, "http://127.0.0.1:9", retention_batch=2, worker_poll_s=30.0, reconcile_interval_s=0)
    )
    yield rt
    await rt.close()


async def _seed(rt) -> None:
    now = utcnow()
    old_done, new_done = now - 169 * HOUR, now - 167 * HOUR
    outbox = [
        {
            "kind": "k",
            "payload": {},
            "status": status,
            "attempts": 1,
            "next_attempt_at": at,
            "created_at": at,
            "updated_at": at,
        }
        for status, at in [("done", old_done)] * 5 + [("done", new_done), ("pending", old_done), ("dead", old_done)]
    ]
    webhooks = [{"id": f"old-{n}", "event_type": "message.new", "received_at": now - 169 * HOUR} for n in range(3)] + [
        {"id": "recent", "event_type": "message.new", "received_at": now - 2 * HOUR}
    ]
    drift = [
        {
            "channel_type": "messaging",
            "channel_id": f"c{n}",
            "kind": "member_removed",
            "detail": {},
            "detected_at": now - 800 * HOUR,
            "resolved_at": resolved,
        }
        for n, resolved in enumerate([now - 721 * HOUR, now - 721 * HOUR, now - 700 * HOUR, None])
    ]
    async with unit_of_work(rt.sessionmaker) as session:
        await session.execute(insert(OutboxMessage), outbox)
        await session.execute(insert(WebhookEvent), webhooks)
        await session.execute(insert(ChannelDrift), drift)


async def _left(rt) -> tuple[list[str], list[str], list[str]]:
    async with rt.sessionmaker() as session:
        outbox = sorted((await session.scalars(select(OutboxMessage.status))).all())
        webhooks = sorted((await session.scalars(select(WebhookEvent.id))).all())
        drift = sorted((await session.scalars(select(ChannelDrift.channel_id))).all())
    return outbox, webhooks, drift


async def test_old_rows_are_purged_in_batches_and_what_is_still_needed_stays(runtime):
    await _seed(runtime)
    assert await retention.purge_all(runtime) == {"outbox_message": 5, "webhook_event": 3, "channel_drift": 2}
    outbox, webhooks, drift = await _left(runtime)
    assert outbox == ["dead", "done", "pending"]  # the recent done row, and every unfinished one
    assert webhooks == ["recent"]  # a redelivery of a recent webhook is still recognised as a duplicate
    assert drift == ["c2", "c3"]  # resolved recently, and still open
    assert await retention.purge_all(runtime) == {"outbox_message": 0, "webhook_event": 0, "channel_drift": 0}


async def test_zero_hours_keeps_a_table_for_good(database_url):
    rt = build_runtime(
        make_settings(database_url, "http://127.0.0.1:9", retention_outbox_done_h=0, retention_drift_resolved_h=0)
    )
    try:
        await _seed(rt)
        assert await retention.purge_all(rt) == {"outbox_message": 0, "webhook_event": 3, "channel_drift": 0}
    finally:
        await rt.close()


def test_webhook_events_are_kept_at_least_a_day():
    with pytest.raises(ValueError, match="retention_webhook_events_h|ONECREW_RETENTION_WEBHOOK_EVENTS_H"):
        make_settings("sqlite://", "http://127.0.0.1:9", retention_webhook_events_h=1)


async def test_the_worker_runs_the_purges_as_a_periodic_job(runtime):
    await _seed(runtime)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run_forever(runtime, stop, build_jobs(runtime.settings)))
    try:

        async def purged() -> bool:
            return (await _left(runtime))[1] == ["recent"] and len((await _left(runtime))[2]) == 2

        await wait_until(purged, timeout=30, what="the worker's retention job to run")
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)
