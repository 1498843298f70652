"""The outbox worker: claims due rows and runs each one's handler in its own unit of work until it is done."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from onecrew_chat.conversations import idempotency
from onecrew_chat.db import unit_of_work
from onecrew_chat.errors import AppError
from onecrew_chat.logging import get_logger
from onecrew_chat.metrics import OUTBOX_PROCESSED
from onecrew_chat.models import OutboxMessage
from onecrew_chat.outbox import repository
from onecrew_chat.stream.errors import StreamRequestError, StreamUsersMissing

if TYPE_CHECKING:
    from onecrew_chat.runtime import Runtime

log = get_logger(__name__)

Handler = Callable[["Runtime", AsyncSession, dict], Awaitable[None]]
DeadLetterHandler = Callable[["Runtime", AsyncSession, dict, str], Awaitable[None]]
HANDLERS: dict[str, Handler] = {}
DEAD_LETTER_HANDLERS: dict[str, DeadLetterHandler] = {}
HANDLERS_MODULE = "onecrew_chat.sync.handlers"
WAKEUP_KEY = "outbox_wakeup"
MAX_ATTEMPTS = 20
DEFAULT_LIMIT = 50
HOUSEKEEPING_EVERY_S = 600.0
_MAX_IDLE_S = 30.0


def register(kind: str) -> Callable[[Handler], Handler]:
    """Decorator: `fn(runtime, session, payload)` handles outbox rows of `kind` (it must be safe to run twice)."""

    def decorate(fn: Handler) -> Handler:
        HANDLERS[kind] = fn
        return fn

    return decorate


def register_dead_letter(kind: str) -> Callable[[DeadLetterHandler], DeadLetterHandler]:
    """Decorator: `fn(runtime, session, payload, error)` runs when a row of `kind` is given up on, in that transaction."""

    def decorate(fn: DeadLetterHandler) -> DeadLetterHandler:
        DEAD_LETTER_HANDLERS[kind] = fn
        return fn

    return decorate


def load_handlers() -> None:
    """Import the sync layer's handlers (they register themselves) if that module exists."""
    try:
        importlib.import_module(HANDLERS_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != HANDLERS_MODULE:
            raise


def wakeup_event(runtime) -> asyncio.Event:
    """The event a running worker also waits on between rounds."""
    return runtime.extras.setdefault(WAKEUP_KEY, asyncio.Event())


def kick(runtime) -> None:
    """Wake the worker now instead of at its next poll; call it after committing the outbox row."""
    wakeup_event(runtime).set()


def lease_s(settings) -> float:
    """How long a claimed row stays ours: well beyond one provisioning deadline."""
    return max(30.0, 4 * float(getattr(settings, "provision_deadline_s", 3.0)))


def is_permanent(error: BaseException) -> bool:
    """Errors that no retry can fix: Stream refusing the request (except repairable "don't exist") or a 4xx of ours."""
    if isinstance(error, StreamRequestError):
        return not isinstance(error, StreamUsersMissing)
    return isinstance(error, AppError) and 400 <= error.status_code < 500


async def run_once(runtime, *, limit: int = DEFAULT_LIMIT, stop: asyncio.Event | None = None) -> int:
    """Claim up to `limit` due rows and process them one by one; returns how many were claimed."""
    load_handlers()
    async with unit_of_work(runtime.sessionmaker) as session:
        claimed = await repository.claim_due(session, limit=limit, lease_s=lease_s(runtime.settings))
    work = [(message.id, message.kind) for message in claimed]
    for index, (message_id, kind) in enumerate(work):
        if stop is not None and stop.is_set():
            async with unit_of_work(runtime.sessionmaker) as session:
                await repository.release(session, [left for left, _ in work[index:]])
            break
        await _process(runtime, message_id, kind)
    return len(work)


async def housekeeping(runtime) -> int:
    """The worker's periodic upkeep: delete Idempotency-Keys past their expiry (24 h); returns how many went."""
    purged = await idempotency.purge_expired(runtime)
    if purged:
        log.info("idempotency.purged", count=purged)
    return purged


async def run_forever(runtime, stop: asyncio.Event) -> None:
    """Process due outbox rows until `stop` is set; idle rounds wait for stop, a kick, or worker_poll_s.

    Every HOUSEKEEPING_EVERY_S (and in the first round) it also runs `housekeeping`; alongside, the periodic
    reconciler runs every ONECREW_RECONCILE_INTERVAL_S (0 turns it off).
    """
    load_handlers()
    from onecrew_chat.sync.reconcile import run_periodically  # sync imports this module: import at run time

    reconciler = asyncio.create_task(run_periodically(runtime, stop), name="reconciler")
    try:
        await _run_rounds(runtime, stop)
    finally:
        reconciler.cancel()  # a run cut short is harmless: every step is idempotent
        with contextlib.suppress(asyncio.CancelledError):
            await reconciler


async def _run_rounds(runtime, stop: asyncio.Event) -> None:
    """The worker's loop: rounds of due rows, and housekeeping, until `stop` is set."""
    wakeup = wakeup_event(runtime)
    poll_s = float(runtime.settings.worker_poll_s)
    failures = 0
    upkeep_due = time.monotonic()
    log.info("outbox.worker_started", poll_s=poll_s, handlers=sorted(HANDLERS))
    while not stop.is_set():
        wakeup.clear()
        try:
            if time.monotonic() >= upkeep_due:
                upkeep_due = time.monotonic() + HOUSEKEEPING_EVERY_S
                await housekeeping(runtime)
            claimed = await run_once(runtime, stop=stop)
            failures = 0
        except asyncio.CancelledError:
            raise
        except Exception:
            failures += 1
            claimed = 0
            log.exception("outbox.round_failed", failures=failures)
        if claimed >= DEFAULT_LIMIT:
            continue  # a full batch: there is probably more, go again at once
        idle_s = poll_s if failures == 0 else min(_MAX_IDLE_S, poll_s * 2**failures)
        await _wait_for_stop_or_kick(stop, wakeup, idle_s)
    log.info("outbox.worker_stopped")


async def _wait_for_stop_or_kick(stop: asyncio.Event, wakeup: asyncio.Event, timeout: float) -> None:
    """A condition wait (not a sleep): returns when stopped, kicked, or after `timeout`."""
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wakeup.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def _process(runtime, message_id: int, kind: str) -> None:
    """One row, one unit of work: the handler's changes and `done` commit together, or nothing does."""
    started = time.perf_counter()
    try:
        handler = HANDLERS.get(kind)
        if handler is None:
            raise LookupError(f"no handler registered for outbox kind {kind!r}")
        async with unit_of_work(runtime.sessionmaker) as session:
            message = await session.get(OutboxMessage, message_id)
            if message is None or message.status != repository.PENDING:
                return
            await handler(runtime, session, dict(message.payload))
            await repository.mark_done(session, message)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # every failure is recorded on the row; the worker itself keeps going
        await _record_failure(runtime, message_id, kind, exc, started)
        return
    OUTBOX_PROCESSED.labels(kind, "done").inc()
    log.info("outbox.done", id=message_id, kind=kind, ms=round((time.perf_counter() - started) * 1000, 2))


async def _record_failure(runtime, message_id: int, kind: str, exc: Exception, started: float) -> None:
    """In a fresh transaction (the handler's was rolled back): schedule a retry, or dead-letter the row.

    A dead letter also runs the kind's dead-letter handler, in the same transaction.
    """
    error = f"{type(exc).__name__}: {exc}"
    ms = round((time.perf_counter() - started) * 1000, 2)
    try:
        async with unit_of_work(runtime.sessionmaker) as session:
            message = await session.get(OutboxMessage, message_id)
            if message is None:
                return
            if is_permanent(exc) or message.attempts + 1 >= MAX_ATTEMPTS:
                await repository.mark_dead(session, message, error)
                outcome = "dead"
                on_dead = DEAD_LETTER_HANDLERS.get(kind)
                if on_dead is not None:
                    await on_dead(runtime, session, dict(message.payload), error)
            else:
                delay = repository.retry_delay(message.attempts + 1)
                retry_after = getattr(exc, "retry_after_s", None)
                if retry_after:
                    delay = max(delay, retry_after)
                await repository.mark_retry(session, message, error, delay)
                outcome = "retry"
                log.warning(
                    "outbox.retry",
                    id=message_id,
                    kind=kind,
                    attempts=message.attempts,
                    delay_s=round(delay, 3),
                    error=error[:500],
                    ms=ms,
                )
    except asyncio.CancelledError:
        raise
    except Exception:
        # The lease runs out and the row is tried again; nothing is lost.
        log.exception("outbox.record_failure_failed", id=message_id, kind=kind, error=error[:500])
        return
    OUTBOX_PROCESSED.labels(kind, outcome).inc()
