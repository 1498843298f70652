"""Worker heartbeats: each worker process writes its id and last_seen_at every ONECREW_WORKER_HEARTBEAT_S.

`onecrew-chat status`, /api/internal/status and onecrew_workers_seen read the rows to say which workers run.
A worker that stops cleanly deletes its row; one that dies leaves it to age (rows a day old are deleted).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, update

from onecrew_chat.db import unit_of_work, utcnow
from onecrew_chat.logging import get_logger
from onecrew_chat.models import WorkerHeartbeat
from onecrew_chat.runtime import Runtime, Shared

log = get_logger(__name__)

FORGET_AFTER = timedelta(days=1)  # rows of workers not seen for this long are deleted by the others


@dataclass(frozen=True)
class WorkerIdentity:
    """Who is beating: hostname, pid and a random suffix (pids repeat across containers)."""

    worker_id: str
    hostname: str
    pid: int

    @classmethod
    def of_this_process(cls) -> WorkerIdentity:
        """A fresh identity for the current process."""
        hostname = socket.gethostname()[:200]
        pid = os.getpid()
        return cls(f"{hostname}:{pid}:{secrets.token_hex(3)}"[:128], hostname, pid)


_WORKER_IDENTITY = Shared("worker identity", lambda _runtime: WorkerIdentity.of_this_process())


def worker_identity(runtime: Runtime) -> WorkerIdentity:
    """This runtime's worker identity (made on first use, so /healthz and the heartbeat agree)."""
    return runtime.shared(_WORKER_IDENTITY)


async def beat(runtime: Runtime, worker: WorkerIdentity) -> None:
    """Write one heartbeat (update, or insert the first time) and forget workers silent for a day."""
    now = utcnow()
    async with unit_of_work(runtime.sessionmaker) as session:
        updated = cast(
            CursorResult[Any],
            await session.execute(
                update(WorkerHeartbeat)
                .where(WorkerHeartbeat.worker_id == worker.worker_id)
                .values(last_seen_at=now)
                .execution_options(synchronize_session=False)
            ),
        )
        if updated.rowcount == 0:
            session.add(
                WorkerHeartbeat(
                    worker_id=worker.worker_id,
                    hostname=worker.hostname,
                    pid=worker.pid,
                    started_at=now,
                    last_seen_at=now,
                )
            )
        await session.execute(
            delete(WorkerHeartbeat)
            .where(WorkerHeartbeat.last_seen_at < now - FORGET_AFTER)
            .execution_options(synchronize_session=False)
        )


async def forget(runtime: Runtime, worker: WorkerIdentity) -> None:
    """Delete this worker's row (a clean stop)."""
    async with unit_of_work(runtime.sessionmaker) as session:
        await session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.worker_id == worker.worker_id))


async def _stopped_within(stop: asyncio.Event, timeout_s: float) -> bool:
    """Wait up to `timeout_s` for `stop` (a condition wait, not a sleep); True when it was set."""
    try:
        await asyncio.wait_for(stop.wait(), timeout_s)
    except TimeoutError:
        return False
    return True


async def run_heartbeat(runtime: Runtime, stop: asyncio.Event) -> None:
    """Beat every ONECREW_WORKER_HEARTBEAT_S until `stop` is set (or the task is cancelled), then delete the row.

    A failed beat (database down) is logged and tried again at the next interval; it never stops the worker.
    """
    worker = worker_identity(runtime)
    interval_s = float(runtime.settings.worker_heartbeat_s)
    log.info("worker.heartbeat_started", worker_id=worker.worker_id, interval_s=interval_s)
    try:
        while True:
            try:
                await beat(runtime, worker)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the outbox matters more than being seen; say it and go on
                error = f"{type(exc).__name__}: {exc}"[:300]
                log.warning("worker.heartbeat_failed", worker_id=worker.worker_id, error=error)
            if await _stopped_within(stop, interval_s):
                break
    finally:
        with contextlib.suppress(Exception):
            await asyncio.shield(forget(runtime, worker))
        log.info("worker.heartbeat_stopped", worker_id=worker.worker_id)
