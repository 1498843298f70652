"""One round of the outbox worker: claim a row (or a batch of one kind), run its handler, record the outcome.

The claim is a short transaction that sets a lease token and expiry and commits; the handler then runs with no
transaction open (it opens its own short ones), within 80 % of its lease, so a row never runs twice while its
lease holds; the outcome (done, retry, dead, paused) is recorded in a second short transaction guarded by the
token. When the guard matches nothing the row was taken over (`outbox.lease_lost`) and nothing is recorded.
A batch's rows are recorded each under its own token: successes in one statement, rows sharing a failure in one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

from onecrew_chat.config import Settings
from onecrew_chat.db import unit_of_work
from onecrew_chat.logging import get_logger
from onecrew_chat.metrics import OUTBOX_LEASE_LOST, OUTBOX_PROCESSED
from onecrew_chat.outbox import lease
from onecrew_chat.outbox.jobs import Batch, Failure, H, Handler, Jobs, Verdict
from onecrew_chat.outbox.lease import Claim
from onecrew_chat.outbox.repository import Outcome
from onecrew_chat.outbox.status import WorkerStatus

log = get_logger(__name__)

T = TypeVar("T")

MAX_ATTEMPTS = 20
PAUSE_PROBE_S = 30.0
HANDLER_SHARE_OF_LEASE = 0.8
MAX_IDLE_S = 30.0


class HandlerTimeout(Exception):
    """A handler ran past its share of the lease and was cancelled (the row is retried)."""


@dataclass(frozen=True)
class WorkerConfig:
    """How one worker runs: lease length, idle poll, pause probe interval, attempts before a dead letter."""

    lease_s: float = 30.0
    poll_s: float = 1.0
    pause_probe_s: float = PAUSE_PROBE_S
    max_attempts: int = MAX_ATTEMPTS

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerConfig:
        """The lease is well beyond one provisioning deadline (at least 30 s)."""
        return cls(
            lease_s=max(30.0, 4 * settings.provision_deadline_s),
            poll_s=settings.worker_poll_s,
            pause_probe_s=settings.worker_pause_probe_s,
        )

    @property
    def stale_after_s(self) -> float:
        """How long a healthy loop can go between rounds (a handler's run, an idle wait or a probe wait)."""
        return 2 * max(self.lease_s, self.poll_s, self.pause_probe_s, MAX_IDLE_S)


async def run_next(
    runtime: H, jobs: Jobs[H], *, config: WorkerConfig, status: WorkerStatus | None = None
) -> tuple[Outcome, int]:
    """Claim the next due row (with more of its kind when it has a batch handler) and run it: its outcome (a
    batch's: paused if any row paused, else done if all were, else the first other) and how many rows it claimed."""
    batch: Batch[H] | None = None
    more: list[Claim] = []
    async with unit_of_work(runtime.sessionmaker) as session:
        claim = await lease.claim_one(session, lease_s=config.lease_s, kinds={*jobs.handlers, *jobs.batches})
        if claim is not None:
            batch = jobs.batches.get(claim.kind)
            if batch is not None:
                more = await lease.claim_more(
                    session, claim.kind, limit=batch.size - 1, lease_s=config.lease_s, exclude=[claim.id]
                )
    if claim is None:
        return Outcome.IDLE, 0
    if batch is not None:
        claims = [claim, *more]
        return await _run_batch(runtime, jobs, config, batch, claims, status), len(claims)
    return await _run_single(runtime, jobs, config, claim, status), 1


async def _run_single(
    runtime: H, jobs: Jobs[H], config: WorkerConfig, claim: Claim, status: WorkerStatus | None
) -> Outcome:
    started = time.perf_counter()
    try:
        handler = jobs.handlers.get(claim.kind)
        if handler is None:
            raise LookupError(f"no handler registered for outbox kind {claim.kind!r}")
        await _run_handler(handler, runtime, claim, config.lease_s * HANDLER_SHARE_OF_LEASE)
    except asyncio.CancelledError:  # shutting down mid-run: give the row back now rather than when the lease ends
        await asyncio.shield(_release(runtime, claim))
        raise
    except Exception as exc:  # every failure is recorded on the row; the worker itself keeps going
        return await _record_failure(runtime, jobs, config, claim, exc, started, status)
    async with unit_of_work(runtime.sessionmaker) as session:
        outcome = await lease.record_done(session, claim)
    if status is not None:
        status.resume()
    return _finished(claim, outcome, started)


async def _run_handler(handler: Handler[H], runtime: H, claim: Claim, budget_s: float) -> None:
    """The handler within `budget_s`; past it, cancelled and reported as HandlerTimeout."""
    await _within(budget_s, handler(runtime, dict(claim.payload)))


async def _within(budget_s: float, work: Awaitable[T]) -> T:
    """`await work` within `budget_s`; past it, cancelled and reported as HandlerTimeout."""
    budget = asyncio.timeout(budget_s)
    try:
        async with budget:
            return await work
    except TimeoutError:
        if budget.expired():
            share = f"{HANDLER_SHARE_OF_LEASE:.0%}"
            raise HandlerTimeout(f"the handler ran longer than {budget_s:g} s, {share} of its lease") from None
        raise


async def _run_batch(
    runtime: H,
    jobs: Jobs[H],
    config: WorkerConfig,
    batch: Batch[H],
    claims: list[Claim],
    status: WorkerStatus | None,
) -> Outcome:
    """Run claimed rows of one kind in one handler call; record each row's outcome under its own lease token."""
    started = time.perf_counter()
    kind = claims[0].kind
    results: list[BaseException | None]
    try:
        answered = await _within(
            config.lease_s * HANDLER_SHARE_OF_LEASE, batch.run(runtime, [dict(c.payload) for c in claims])
        )
        results = list(answered)
        if len(results) != len(claims):
            raise RuntimeError(f"the batch handler of {kind!r} answered {len(results)} outcomes for {len(claims)} rows")
    except asyncio.CancelledError:
        await asyncio.shield(_release_all(runtime, claims))
        raise
    except Exception as exc:  # every row failed with it; recorded below like any failure
        results = [exc] * len(claims)
    outcomes: dict[int, Outcome] = {}
    succeeded = [claim for claim, result in zip(claims, results, strict=True) if result is None]
    if succeeded:
        async with unit_of_work(runtime.sessionmaker) as session:
            outcomes.update(await lease.record_done_many(session, succeeded))
        if status is not None:
            status.resume()
    failures: dict[int, tuple[Exception, list[Claim]]] = {}
    for claim, result in zip(claims, results, strict=True):
        if result is not None:
            error = result if isinstance(result, Exception) else RuntimeError(repr(result))
            failures.setdefault(id(result), (error, []))[1].append(claim)
    for error, group in failures.values():
        outcomes.update(await _record_failures(runtime, jobs, config, group, error, status))
    counts: dict[Outcome, int] = {}
    for claim in claims:
        outcome = outcomes.get(claim.id, Outcome.UNRECORDED)
        counts[outcome] = counts.get(outcome, 0) + 1
        if outcome is Outcome.LOST:
            OUTBOX_LEASE_LOST.labels(kind).inc()
            log.warning("outbox.lease_lost", id=claim.id, kind=kind)
        elif outcome is not Outcome.UNRECORDED:
            OUTBOX_PROCESSED.labels(kind, outcome).inc()
    log.info("outbox.batch", kind=kind, rows=len(claims), ms=round((time.perf_counter() - started) * 1000, 2), **counts)
    if Outcome.PAUSED in counts:
        return Outcome.PAUSED
    if counts.get(Outcome.DONE) == len(claims):
        return Outcome.DONE
    return next(
        outcomes.get(claim.id, Outcome.UNRECORDED) for claim in claims if outcomes.get(claim.id) is not Outcome.DONE
    )


async def _release_all(runtime: H, claims: list[Claim]) -> None:
    for claim in claims:
        await _release(runtime, claim)


async def _record_failures(
    runtime: H,
    jobs: Jobs[H],
    config: WorkerConfig,
    claims: list[Claim],
    exc: Exception,
    status: WorkerStatus | None,
) -> dict[int, Outcome]:
    """Rows that failed with the same exception (one row, or rows of a batch), classified once and recorded in one
    transaction: put back (pause), retried together (one delay, at least a 429's reset) or dead-lettered. Outcome
    by row id; none when recording failed (the leases run out and the rows are tried again)."""
    error = f"{type(exc).__name__}: {exc}"
    kind = claims[0].kind
    try:
        failure = jobs.classify(exc)
    except Exception:  # a broken classifier must not lose the rows
        log.exception("outbox.classify_failed", ids=[c.id for c in claims][:10], kind=kind, rows=len(claims))
        failure = Failure(Verdict.RETRY)
    outcomes: dict[int, Outcome] = {}
    try:
        async with unit_of_work(runtime.sessionmaker) as session:
            if failure.verdict == Verdict.PAUSE:
                for claim in claims:
                    outcomes[claim.id] = await lease.put_back(session, claim, error)
            else:
                give_up = [
                    c for c in claims if failure.verdict == Verdict.PERMANENT or c.attempts + 1 >= config.max_attempts
                ]
                on_dead = jobs.dead_letter.get(kind)
                for claim in give_up:
                    outcomes[claim.id] = await lease.record_dead(session, claim, error)
                    if outcomes[claim.id] is Outcome.DEAD and on_dead is not None:
                        await on_dead(session, dict(claim.payload), error)
                retry = [c for c in claims if c.id not in outcomes]
                if retry:
                    attempts = max(c.attempts for c in retry) + 1
                    delay = lease.retry_delay(attempts)
                    if failure.retry_after_s:
                        delay = max(delay, failure.retry_after_s)
                    outcomes.update(await lease.record_retry_many(session, retry, error, delay))
                    retried = [c.id for c in retry if outcomes[c.id] is Outcome.RETRY]
                    if retried:
                        log.warning(
                            "outbox.retry",
                            ids=retried[:10],
                            kind=kind,
                            rows=len(retried),
                            attempts=attempts,
                            delay_s=round(delay, 3),
                            error=error[:500],
                        )
    except asyncio.CancelledError:
        raise
    except Exception:
        # The leases run out and the rows are tried again; nothing is lost.
        log.exception(
            "outbox.record_failure_failed",
            ids=[c.id for c in claims][:10],
            kind=kind,
            rows=len(claims),
            error=error[:500],
        )
        return {}
    if failure.verdict == Verdict.PAUSE and status is not None:
        status.pause(error, kind=kind, message_id=claims[0].id)
    return outcomes


async def _release(runtime: H, claim: Claim) -> None:
    try:
        async with unit_of_work(runtime.sessionmaker) as session:
            await lease.release(session, claim)
        log.info("outbox.released", id=claim.id, kind=claim.kind)
    except Exception:  # the lease runs out instead
        log.exception("outbox.release_failed", id=claim.id, kind=claim.kind)


def _finished(claim: Claim, outcome: Outcome, started: float, **fields: Any) -> Outcome:
    ms = round((time.perf_counter() - started) * 1000, 2)
    if outcome is Outcome.LOST:
        OUTBOX_LEASE_LOST.labels(claim.kind).inc()
        log.warning("outbox.lease_lost", id=claim.id, kind=claim.kind, ms=ms, **fields)
    else:
        OUTBOX_PROCESSED.labels(claim.kind, outcome).inc()
        if outcome is Outcome.DONE:
            log.info("outbox.done", id=claim.id, kind=claim.kind, ms=ms)
    return outcome


async def _record_failure(
    runtime: H,
    jobs: Jobs[H],
    config: WorkerConfig,
    claim: Claim,
    exc: Exception,
    started: float,
    status: WorkerStatus | None,
) -> Outcome:
    """In a fresh short transaction: put the row back (pause), schedule a retry, or dead-letter it."""
    outcome = (await _record_failures(runtime, jobs, config, [claim], exc, status)).get(claim.id)
    if outcome is None:
        return Outcome.UNRECORDED
    return _finished(claim, outcome, started, error=f"{type(exc).__name__}: {exc}"[:200])
