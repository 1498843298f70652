"""What the database says about the service's health, read at scrape time.

`read_snapshot` is one short read (no Stream call, no lock): outbox depth and oldest age, dead letters, the last
reconcile run and its drift, open webhook drift, worker heartbeats. `refresh_metrics` copies it into the
"(database)" gauges of onecrew_chat.metrics before /metrics answers, at most once per CACHE_S per process and
within TIMEOUT_S, so a scrape never waits long on a slow database and scrapes do not hammer it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from onecrew_chat import metrics
from onecrew_chat.config import Settings
from onecrew_chat.db import utcnow
from onecrew_chat.logging import get_logger
from onecrew_chat.models import ChannelDrift, OutboxMessage, ReconcileRun, WorkerHeartbeat
from onecrew_chat.runtime import Runtime, Shared

log = get_logger(__name__)

CACHE_S = 5.0  # a scrape within this long of the last read reuses it
TIMEOUT_S = 1.0  # a scrape waits at most this long for the database
PENDING, DEAD = "pending", "dead"  # outbox_message.status values (the outbox repository's)


@dataclass(frozen=True)
class WorkerSeen:
    """One worker_heartbeat row."""

    worker_id: str
    hostname: str
    pid: int
    started_at: datetime
    last_seen_at: datetime


@dataclass
class Snapshot:
    """The database's view of the service at `taken_at`."""

    taken_at: datetime
    pending: int = 0
    oldest_pending_at: datetime | None = None
    dead: int = 0
    last_reconcile_at: datetime | None = None
    reconcile_drift: dict[str, int] = field(default_factory=dict)
    open_drift: dict[str, int] = field(default_factory=dict)
    workers: list[WorkerSeen] = field(default_factory=list)

    @property
    def oldest_pending_age_s(self) -> float | None:
        """Seconds the oldest waiting outbox row has waited (None when nothing waits)."""
        if self.oldest_pending_at is None:
            return None
        return max(0.0, (self.taken_at - self.oldest_pending_at).total_seconds())

    def recent_workers(self, within_s: float) -> list[WorkerSeen]:
        """Workers whose heartbeat is at most `within_s` old."""
        since = self.taken_at - timedelta(seconds=within_s)
        return [w for w in self.workers if w.last_seen_at >= since]


async def read_snapshot(session: AsyncSession) -> Snapshot:
    """Read everything /metrics and `status` show from the database (a handful of small aggregate queries)."""
    snapshot = Snapshot(taken_at=utcnow())
    by_status = await session.execute(
        select(OutboxMessage.status, func.count(), func.min(OutboxMessage.created_at))
        .where(OutboxMessage.status.in_((PENDING, DEAD)))
        .group_by(OutboxMessage.status)
    )
    for status, count, oldest in by_status:
        if status == PENDING:
            snapshot.pending, snapshot.oldest_pending_at = int(count), oldest  # min() keeps UTCDateTime
        else:
            snapshot.dead = int(count)
    last = (await session.execute(select(ReconcileRun).order_by(ReconcileRun.finished_at.desc()).limit(1))).scalar()
    if last is not None:
        snapshot.last_reconcile_at = last.finished_at
        snapshot.reconcile_drift = {str(kind): int(count) for kind, count in (last.drift or {}).items()}
    open_drift = await session.execute(
        select(ChannelDrift.kind, func.count()).where(ChannelDrift.resolved_at.is_(None)).group_by(ChannelDrift.kind)
    )
    snapshot.open_drift = {kind: int(count) for kind, count in open_drift}
    rows = await session.scalars(select(WorkerHeartbeat).order_by(WorkerHeartbeat.last_seen_at.desc()))
    snapshot.workers = [
        WorkerSeen(row.worker_id, row.hostname, row.pid, row.started_at, row.last_seen_at) for row in rows
    ]
    return snapshot


def publish(snapshot: Snapshot, *, worker_fresh_s: float) -> None:
    """Copy a snapshot into the database gauges (label sets replaced as a whole, so vanished kinds go to absent)."""
    metrics.OUTBOX_PENDING.set(snapshot.pending)
    metrics.OUTBOX_OLDEST_PENDING_AGE.set(snapshot.oldest_pending_age_s or 0.0)
    metrics.OUTBOX_DEAD_LETTERS.set(snapshot.dead)
    metrics.RECONCILE_LAST_RUN.set(snapshot.last_reconcile_at.timestamp() if snapshot.last_reconcile_at else 0)
    metrics.RECONCILE_DRIFT.clear()
    for kind, count in snapshot.reconcile_drift.items():
        metrics.RECONCILE_DRIFT.labels(kind).set(count)
    metrics.CHANNEL_DRIFT_OPEN.clear()
    for kind, count in snapshot.open_drift.items():
        metrics.CHANNEL_DRIFT_OPEN.labels(kind).set(count)
    metrics.WORKERS_SEEN.set(len(snapshot.recent_workers(worker_fresh_s)))


def worker_fresh_s(settings: Settings) -> float:
    """A worker counts as seen recently when its heartbeat is at most three intervals old."""
    return 3 * float(settings.worker_heartbeat_s)


class _ScrapeCache:
    """Per runtime: when the gauges were last read, and a lock so concurrent scrapes share one read."""

    def __init__(self) -> None:
        self.read_at = float("-inf")
        self.lock = asyncio.Lock()


_SCRAPE_CACHE = Shared("metrics scrape cache", lambda _runtime: _ScrapeCache())


async def refresh_metrics(runtime: Runtime, *, cache_s: float = CACHE_S, timeout_s: float = TIMEOUT_S) -> None:
    """Bring the database gauges up to date unless they were read less than `cache_s` ago; never raises.

    A database that fails or takes longer than `timeout_s` leaves the previous values and sets
    onecrew_database_metrics_up to 0 (and is asked again after `cache_s`).
    """
    cache = runtime.shared(_SCRAPE_CACHE)
    if time.monotonic() - cache.read_at < cache_s:
        return
    async with cache.lock:
        if time.monotonic() - cache.read_at < cache_s:
            return  # another scrape read it while this one waited
        try:
            snapshot = await asyncio.wait_for(_read(runtime), timeout=timeout_s)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a scrape must answer; the gauge says the values are stale
            metrics.DATABASE_METRICS_UP.set(0)
            log.warning("metrics.database_read_failed", error=f"{type(exc).__name__}: {str(exc)[:200]}")
        else:
            publish(snapshot, worker_fresh_s=worker_fresh_s(runtime.settings))
            metrics.DATABASE_METRICS_UP.set(1)
        cache.read_at = time.monotonic()


async def _read(runtime: Runtime) -> Snapshot:
    async with runtime.sessionmaker() as session:
        return await read_snapshot(session)
