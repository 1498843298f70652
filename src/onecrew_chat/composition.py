"""The composition root: the one place that tells the generic outbox worker what to run, for `serve` and `worker`.

It maps outbox kinds to the sync layer's handlers, adds the periodic jobs (reconcile, idempotency-key expiry,
retention purges) and builds the failure classifier from the Stream error tree, so that `outbox/` imports
nothing above the database and knows no Stream type.
"""

from __future__ import annotations

import asyncio
from typing import Any

from onecrew_chat.config import Settings
from onecrew_chat.conversations import idempotency
from onecrew_chat.errors import AppError
from onecrew_chat.logging import get_logger
from onecrew_chat.outbox import repository, worker
from onecrew_chat.outbox.jobs import Batch, Failure, Jobs, PeriodicJob, Verdict
from onecrew_chat.runtime import Runtime
from onecrew_chat.stream.errors import (
    StreamError,
    StreamRequestError,
    StreamUsersMissing,
    is_auth_failure,
    is_passing_status,
)
from onecrew_chat.sync import dead_letters, handlers, retention, server_messages
from onecrew_chat.sync.cutover import names
from onecrew_chat.sync.reconcile.run import reconcile

log = get_logger(__name__)

IDEMPOTENCY_PURGE_EVERY_S = 600.0
REVIVE_DEAD_LETTERS_EVERY_S = 60.0


def classify(error: BaseException) -> Failure:
    """Pause on refused credentials; retry a passing failure (any 5xx, 408, 429, transport errors and timeouts,
    whoever answered) respecting a 429's reset; dead-letter what no retry can fix; retry anything else."""
    if is_auth_failure(error):
        return Failure(Verdict.PAUSE)
    status = getattr(error, "status", None)
    if isinstance(error, StreamError) and status is not None and is_passing_status(status):
        retry_after = getattr(error, "retry_after_s", None)
        return Failure(Verdict.RETRY, float(retry_after) if retry_after else None)
    if isinstance(error, StreamRequestError) and not isinstance(error, StreamUsersMissing):
        return Failure(Verdict.PERMANENT)
    if isinstance(error, AppError) and 400 <= error.status_code < 500:
        return Failure(Verdict.PERMANENT)
    retry_after = getattr(error, "retry_after_s", None)
    return Failure(Verdict.RETRY, float(retry_after) if retry_after else None)


class PeriodicReconcile:
    """Reconcile with repairs; a run stopped early by its budget is continued where it stopped by the next one."""

    def __init__(self) -> None:
        self.resume: Any = None

    async def __call__(self, runtime: Runtime) -> None:
        report = await reconcile(runtime, repair=True, resume=self.resume)
        if not report.skipped:
            self.resume = report.resume


async def purge_idempotency_keys(runtime: Runtime) -> int:
    """Delete Idempotency-Keys past their expiry."""
    purged = await idempotency.purge_expired(runtime)
    if purged:
        log.info("idempotency.purged", count=purged)
    return purged


async def revive_dead_letters(runtime: Runtime) -> int:
    """Dead letters of a passing failure made due again once Stream answers; the worker is woken for them."""
    revived = await dead_letters.revive_passing(runtime)
    if revived:
        repository.kick(runtime)
    return revived


async def ping_stream(runtime: Runtime) -> None:
    """The paused worker's probe when no row is due: one authenticated call."""
    await runtime.stream.ping()


def build_jobs(settings: Settings) -> Jobs[Runtime]:
    """Handlers, dead-letter handlers, periodic jobs and the classifier for this deployment's settings."""
    reconcile_s = float(settings.reconcile_interval_s)
    return Jobs[Runtime](
        handlers={
            handlers.PROVISION: handlers.provision,
            handlers.IDENTITY_SYNC: handlers.sync_identity,
            server_messages.SEND_MESSAGE: server_messages.deliver,
            names.UNSET_NAME: names.unset_name,
        },
        # Deferred identities (a login wave Stream rate-limited, a directory batch) reach Stream 100 per call.
        batches={handlers.IDENTITY_SYNC: Batch(handlers.sync_identity_batch, handlers.IDENTITY_SYNC_BATCH)},
        dead_letter={handlers.PROVISION: handlers.provisioning_failed},
        periodic=[
            PeriodicJob("idempotency.purge", IDEMPOTENCY_PURGE_EVERY_S, purge_idempotency_keys),
            PeriodicJob("outbox.revive", REVIVE_DEAD_LETTERS_EVERY_S, revive_dead_letters),
            PeriodicJob("retention.purge", float(settings.retention_interval_s), retention.purge_all),
            PeriodicJob("reconcile", reconcile_s, PeriodicReconcile(), first_after_s=reconcile_s),
        ],
        classify=classify,
        probe=ping_stream,
    )


async def run_worker(runtime: Runtime, stop: asyncio.Event) -> None:
    """The outbox worker with this deployment's jobs until `stop` (used by `serve` and by `worker`)."""
    await worker.run_forever(runtime, stop, build_jobs(runtime.settings))
