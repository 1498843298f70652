"""One report of the service's state, for `onecrew-chat status` and GET /api/internal/status (the same function).

Database reachable and at the head migration, Stream reachable with accepted credentials (one GetApp call),
outbox depth and oldest age, dead letters, the last reconcile and its drift, open webhook drift, and the workers
seen recently. `problems` lists, in words, what an operator must act on; an empty list means all is well.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from onecrew_chat import version
from onecrew_chat.config import Settings
from onecrew_chat.config_checks import shown_url
from onecrew_chat.db import head_revision, utcnow
from onecrew_chat.observability.collector import Snapshot, read_snapshot, worker_fresh_s
from onecrew_chat.observability.stream_probe import probe_stream
from onecrew_chat.runtime import Runtime
from onecrew_chat.schema_status import SchemaStatus, read_position, schema_status

TIMEOUT_S = 3.0  # each part (database, Stream) answers within this or is reported as not answering
EMBEDDED_ELSEWHERE = "embedded emulator (inside `onecrew-chat serve`; not checked from this process)"
OUTBOX_AGE_PROBLEM_S = 300.0  # a row waiting longer than this means the worker is not keeping up (or is down)


class DatabaseStatus(BaseModel):
    """Reachability and migrations."""

    reachable: bool
    migration: str | None = Field(None, description="The migration the database is at (None: no schema yet).")
    head: str = Field(description="The newest migration this version of the code needs.")
    migrated: bool = Field(description="This version can run on the schema: at its head, or newer and compatible.")
    newer_compatible: bool = Field(
        False,
        description="A newer version migrated the database and recorded that this version still works on it "
        "(a rolling upgrade or a rollback in progress).",
    )
    ms: float
    error: str | None = None


class StreamStatus(BaseModel):
    """One GetApp call: did Stream answer, and did it accept STREAM_API_KEY/STREAM_API_SECRET."""

    configured: bool
    target: str = Field(description='The base URL (no credentials) or "embedded emulator" (development mode).')
    base_url: str
    reachable: bool
    credentials: Literal["ok", "rejected", "unknown"]
    ms: float | None = None
    error: str | None = None


class OutboxStatus(BaseModel):
    """Work waiting to reach Stream."""

    pending: int
    oldest_pending_age_s: float | None
    dead: int


class ReconcileStatus(BaseModel):
    """The last reconcile run and drift still open."""

    last_finished_at: datetime | None
    age_s: float | None
    drift: dict[str, int] = Field(description="What the last run found, by kind.")
    open_webhook_drift: dict[str, int] = Field(description="Drift reported by Stream webhooks, not yet resolved.")


class WorkerStatus(BaseModel):
    """One worker's heartbeat."""

    worker_id: str
    hostname: str
    pid: int
    started_at: datetime
    last_seen_at: datetime
    age_s: float
    recent: bool


class Status(BaseModel):
    """The whole report."""

    ok: bool
    problems: list[str]
    version: str = Field(description="The version of the process that made this report (pyproject's version).")
    checked_at: datetime
    mode: Literal["development", "production"]
    database: DatabaseStatus
    stream: StreamStatus
    outbox: OutboxStatus | None
    reconcile: ReconcileStatus | None
    workers_recent: int
    workers: list[WorkerStatus]


async def gather_status(runtime: Runtime) -> Status:
    """Ask the database and Stream (concurrently, each within TIMEOUT_S) and say what needs attention."""
    (database, snapshot), stream = await asyncio.gather(_database(runtime), _stream(runtime))
    settings = runtime.settings
    fresh_s = worker_fresh_s(settings)
    outbox = reconcile = None
    workers: list[WorkerStatus] = []
    if snapshot is not None:
        now = snapshot.taken_at
        outbox = OutboxStatus(
            pending=snapshot.pending, oldest_pending_age_s=_round(snapshot.oldest_pending_age_s), dead=snapshot.dead
        )
        last = snapshot.last_reconcile_at
        reconcile = ReconcileStatus(
            last_finished_at=last,
            age_s=_round((now - last).total_seconds()) if last else None,
            drift=snapshot.reconcile_drift,
            open_webhook_drift=snapshot.open_drift,
        )
        recent = {w.worker_id for w in snapshot.recent_workers(fresh_s)}
        workers = [
            WorkerStatus(
                **w.__dict__, age_s=_round((now - w.last_seen_at).total_seconds()) or 0.0, recent=w.worker_id in recent
            )
            for w in snapshot.workers
        ]
    problems = _problems(settings, database, stream, snapshot, workers)
    return Status(
        ok=not problems,
        problems=problems,
        version=version(),
        checked_at=snapshot.taken_at if snapshot else utcnow(),
        mode=settings.mode_name,
        database=database,
        stream=stream,
        outbox=outbox,
        reconcile=reconcile,
        workers_recent=sum(1 for w in workers if w.recent),
        workers=workers,
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


async def _database(runtime: Runtime) -> tuple[DatabaseStatus, Snapshot | None]:
    head = head_revision()
    started = time.perf_counter()

    async def read() -> tuple[SchemaStatus, Snapshot | None]:
        schema = schema_status(await read_position(runtime.engine))
        if not schema.usable:
            return schema, None  # the tables read below may not exist yet
        async with runtime.sessionmaker() as session:
            return schema, await read_snapshot(session)

    try:
        schema, snapshot = await asyncio.wait_for(read(), timeout=TIMEOUT_S)
    except TimeoutError:
        error = f"no answer within {TIMEOUT_S:g} s"
    except Exception as exc:  # the report says why instead of failing
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}".rstrip(": ")
    else:
        ms = round((time.perf_counter() - started) * 1000, 1)
        return DatabaseStatus(
            reachable=True,
            migration=schema.current,
            head=head,
            migrated=schema.usable,
            newer_compatible=schema.newer_compatible,
            ms=ms,
            error=None if schema.known else schema.problem(),
        ), snapshot
    ms = round((time.perf_counter() - started) * 1000, 1)
    return DatabaseStatus(reachable=False, migration=None, head=head, migrated=False, ms=ms, error=error), None


async def _stream(runtime: Runtime) -> StreamStatus:
    settings = runtime.settings
    if not settings.stream_api_key:
        # Development (production refuses to start without it): the emulator lives inside `serve`, not here.
        return StreamStatus(
            configured=False,
            target=EMBEDDED_ELSEWHERE,
            base_url=shown_url(settings.stream_base_url),
            reachable=False,
            credentials="unknown",
            error="STREAM_API_KEY is not set",
        )
    probe = await probe_stream(runtime.stream, timeout_s=TIMEOUT_S)
    error = f"{probe.status} {probe.error}" if probe.status and probe.error else probe.error
    return StreamStatus(
        configured=True,
        target=settings.stream_target,
        base_url=shown_url(settings.stream_base_url),
        reachable=probe.reachable,
        credentials=probe.credentials,
        ms=probe.ms,
        error=error,
    )


def _problems(
    settings: Settings,
    database: DatabaseStatus,
    stream: StreamStatus,
    snapshot: Snapshot | None,
    workers: list[WorkerStatus],
) -> list[str]:
    problems = []
    if not database.reachable:
        problems.append(f"database not reachable: {database.error}")
    elif not database.migrated and database.migration is not None and database.error:
        problems.append(f"database: {database.error}")  # migrated by a newer version past what this one can use
    elif not database.migrated:
        at = database.migration or "no schema"
        problems.append(
            f"database at migration {at}, this version needs {database.head}: run `onecrew-chat db upgrade`"
        )
    if not stream.configured:
        if not settings.development:  # production refuses to start without it; kept for a report's sake
            problems.append("Stream not configured: set STREAM_API_KEY, STREAM_API_SECRET and STREAM_BASE_URL")
    elif stream.credentials == "rejected":
        problems.append(f"Stream rejected STREAM_API_KEY/STREAM_API_SECRET ({stream.error})")
    elif not stream.reachable:
        problems.append(f"Stream not reachable at {stream.base_url}: {stream.error}")
    if snapshot is None:
        return problems
    if snapshot.dead:
        problems.append(f"{snapshot.dead} dead outbox message(s): see `onecrew-chat outbox list`, then `outbox retry`")
    age = snapshot.oldest_pending_age_s
    if age is not None and age > OUTBOX_AGE_PROBLEM_S:
        problems.append(f"the oldest outbox message has waited {age:.0f} s: is a worker running and Stream answering?")
    if not any(w.recent for w in workers):
        problems.append("no worker seen recently: start `onecrew-chat worker` (or serve with ONECREW_RUN_WORKER=true)")
    interval_s = float(settings.reconcile_interval_s)
    last = snapshot.last_reconcile_at
    overdue_s = 2 * interval_s + float(settings.reconcile_deadline_s)
    if interval_s > 0 and last is not None and (snapshot.taken_at - last).total_seconds() > overdue_s:
        problems.append(f"no reconcile since {last.isoformat(timespec='seconds')} (every {interval_s:g} s expected)")
    elif (
        interval_s > 0
        and last is None
        and any((snapshot.taken_at - w.started_at).total_seconds() > overdue_s for w in workers if w.recent)
    ):
        problems.append(f"no reconcile has ever finished, though workers have run for over {overdue_s:g} s")
    return problems
