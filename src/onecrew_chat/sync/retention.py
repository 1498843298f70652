"""Retention: delete done outbox rows, applied webhook events and resolved drift once they are old enough.

Each table is purged in batches of ONECREW_RETENTION_BATCH rows, one short transaction per batch, so a purge
never holds many locks for long. The webhook events kept (ONECREW_RETENTION_WEBHOOK_EVENTS_H, at least 24 h)
cover Stream's redelivery window by far, so a retried webhook is still recognised as a duplicate.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from onecrew_chat.config import Settings
from onecrew_chat.db import unit_of_work, utcnow
from onecrew_chat.logging import get_logger
from onecrew_chat.metrics import RETENTION_PURGED
from onecrew_chat.models import ChannelDrift, WebhookEvent
from onecrew_chat.outbox import maintenance
from onecrew_chat.outbox.repository import rowcount
from onecrew_chat.runtime import Runtime

log = get_logger(__name__)

# Batches per table and run: a run stops there and the next one goes on (a big backlog never blocks a worker).
MAX_BATCHES_PER_RUN = 100

PurgeBatch = Callable[[AsyncSession, datetime, int], Awaitable[int]]


async def purge_webhook_events(session: AsyncSession, older_than: datetime, batch: int) -> int:
    """Delete up to `batch` webhook events received before `older_than`."""
    doomed = select(WebhookEvent.id).where(WebhookEvent.received_at < older_than).limit(batch)
    result = await session.execute(delete(WebhookEvent).where(WebhookEvent.id.in_(doomed)))
    return rowcount(result)


async def purge_resolved_drift(session: AsyncSession, older_than: datetime, batch: int) -> int:
    """Delete up to `batch` drift rows resolved before `older_than` (open drift is never deleted)."""
    doomed = (
        select(ChannelDrift.id)
        .where(ChannelDrift.resolved_at.is_not(None), ChannelDrift.resolved_at < older_than)
        .limit(batch)
    )
    result = await session.execute(delete(ChannelDrift).where(ChannelDrift.id.in_(doomed)))
    return rowcount(result)


async def purge_done_outbox(session: AsyncSession, older_than: datetime, batch: int) -> int:
    """Delete up to `batch` outbox rows done before `older_than` (pending and dead rows stay)."""
    return await maintenance.purge_done(session, older_than=older_than, batch=batch)


@dataclass(frozen=True)
class Purge:
    """One table's purge: rows older than `keep_h` hours go (0 keeps them for good)."""

    table: str
    keep_h: float
    batch_delete: PurgeBatch


def purges(settings: Settings) -> list[Purge]:
    """The three purges with their settings."""
    return [
        Purge("outbox_message", float(settings.retention_outbox_done_h), purge_done_outbox),
        Purge("webhook_event", float(settings.retention_webhook_events_h), purge_webhook_events),
        Purge("channel_drift", float(settings.retention_drift_resolved_h), purge_resolved_drift),
    ]


async def run_purge(runtime: Runtime, purge: Purge, *, now: datetime | None = None) -> int:
    """Delete the table's old rows in batches, each in its own short transaction; returns how many went."""
    if purge.keep_h <= 0:
        return 0
    older_than = (now or utcnow()) - timedelta(hours=purge.keep_h)
    batch = int(runtime.settings.retention_batch)
    total = 0
    for _ in range(MAX_BATCHES_PER_RUN):
        async with unit_of_work(runtime.sessionmaker) as session:
            deleted = await purge.batch_delete(session, older_than, batch)
        total += deleted
        if deleted < batch:
            break
    if total:
        RETENTION_PURGED.labels(purge.table).inc(total)
        log.info("retention.purged", table=purge.table, count=total, keep_h=purge.keep_h)
    return total


async def purge_all(runtime: Runtime, *, now: datetime | None = None) -> dict[str, int]:
    """Every purge once: rows deleted per table."""
    return {purge.table: await run_purge(runtime, purge, now=now) for purge in purges(runtime.settings)}
