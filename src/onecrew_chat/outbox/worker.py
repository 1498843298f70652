"""The outbox worker: claim one row, run its handler with no transaction open, record the outcome under the lease.

A kind with a batch handler (`Jobs.batches`) is claimed with up to `Batch.size - 1` more due rows of its kind in
the same short transaction, each under its own lease token; the batch runs in one handler call and every row's
outcome is recorded under its own token (successes in one statement, rows sharing a failure in one statement).

A round claims rows one at a time (a short transaction sets a lease token and expiry), commits, calls the
handler (which opens its own short transactions), then records done / retry / dead in a second short
transaction guarded by the token; when the guard matches nothing the row was taken over (`outbox.lease_lost`)
and nothing is recorded. A handler is cut off at 80 % of its lease, so a row never runs twice while its lease
holds. A failure classified "pause" (Stream refusing our credentials) puts the row back untouched and pauses
the worker; it probes again every `pause_probe_s` (or when kicked) and resumes once a call succeeds.

Handlers, dead-letter handlers, periodic jobs and the classifier come in as `Jobs` from the composition root.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

from onecrew_chat.db import unit_of_work
from onecrew_chat.logging import get_logger
from onecrew_chat.metrics import OUTBOX_LEASE_LOST, OUTBOX_PROCESSED
from onecrew_chat.outbox import repository
from onecrew_chat.outbox.handoff import wakeup_event
from onecrew_chat.outbox.jobs import Batch, Failure, Jobs, PeriodicJob, Verdict
from onecrew_chat.outbox.status import STATUS_KEY, WorkerStatus

log = get_logger(__name__)

MAX_ATTEMPTS = 20
DEFAULT_LIMIT = 50
PAUSE_PROBE_S = 30.0
HANDLER_SHARE_OF_LEASE = 0.8
_MAX_IDLE_S = 30.0
NOTHING_DUE = "idle"


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
    def from_settings(cls, settings: Any) -> WorkerConfig:
        """The lease is well beyond one provisioning deadline (at least 30 s)."""
        return cls(
            lease_s=max(30.0, 4 * float(getattr(settings, "provision_deadline_s", 3.0))),
            poll_s=float(getattr(settings, "worker_poll_s", 1.0)),
            pause_probe_s=float(getattr(settings, "worker_pause_probe_s", PAUSE_PROBE_S)),
        )

    @property
    def stale_after_s(self) -> float:
        """How long a healthy loop can go between rounds (a handler's run, an idle wait or a probe wait)."""
        return 2 * max(self.lease_s, self.poll_s, self.pause_probe_s, _MAX_IDLE_S)


async def run_once(
    runtime: Any,
    jobs: Jobs,
    *,
    limit: int = DEFAULT_LIMIT,
    stop: asyncio.Event | None = None,
    config: WorkerConfig | None = None,
    status: WorkerStatus | None = None,
) -> int:
    """Run due rows one at a time until none is due, `limit` were claimed, `stop` is set or the worker pauses.

    Returns how many rows were claimed.
    """
    config = config or WorkerConfig.from_settings(runtime.settings)
    claimed = 0
    while claimed < limit and not (stop is not None and stop.is_set()):
        outcome, count = await _run_next(runtime, jobs, config=config, status=status)
        if status is not None:
            status.beat()
        if outcome == NOTHING_DUE:
            break
        claimed += count
        if outcome == "paused":
            break
    return claimed


async def run_one(runtime: Any, jobs: Jobs, *, config: WorkerConfig, status: WorkerStatus | None = None) -> str:
    """Claim the next due row (with more of its kind when it has a batch handler) and run it: its outcome (done,
    rerun, retry, dead, paused, lost; a batch's: paused if any row paused, else done if all were, else the first
    other), or NOTHING_DUE."""
    outcome, _ = await _run_next(runtime, jobs, config=config, status=status)
    return outcome


async def _run_next(
    runtime: Any, jobs: Jobs, *, config: WorkerConfig, status: WorkerStatus | None = None
) -> tuple[str, int]:
    """`run_one`, and how many rows it claimed."""
    batch: Batch | None = None
    more: list[repository.Claim] = []
    async with unit_of_work(runtime.sessionmaker) as session:
        claim = await repository.claim_one(session, lease_s=config.lease_s, kinds={*jobs.handlers, *jobs.batches})
        if claim is not None:
            batch = jobs.batches.get(claim.kind)
            if batch is not None:
                more = await repository.claim_more(
                    session, claim.kind, limit=batch.size - 1, lease_s=config.lease_s, exclude=[claim.id]
                )
    if claim is None:
        return NOTHING_DUE, 0
    if batch is not None:
        claims = [claim, *more]
        return await _run_batch(runtime, jobs, config, batch, claims, status), len(claims)
    return await _run_single(runtime, jobs, config, claim, status), 1


async def _run_single(
    runtime: Any, jobs: Jobs, config: WorkerConfig, claim: repository.Claim, status: WorkerStatus | None
) -> str:
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
        outcome = await repository.record_done(session, claim)
    if status is not None:
        status.resume()
    return _finished(claim, outcome, started)


async def _run_handler(handler: Any, runtime: Any, claim: repository.Claim, budget_s: float) -> None:
    """The handler within `budget_s`; past it, cancelled and reported as HandlerTimeout."""
    await _within(budget_s, handler(runtime, dict(claim.payload)))


async def _within(budget_s: float, work: Any) -> Any:
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
    runtime: Any,
    jobs: Jobs,
    config: WorkerConfig,
    batch: Batch,
    claims: list[repository.Claim],
    status: WorkerStatus | None,
) -> str:
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
    outcomes: dict[int, str] = {}
    succeeded = [claim for claim, result in zip(claims, results, strict=True) if result is None]
    if succeeded:
        async with unit_of_work(runtime.sessionmaker) as session:
            outcomes.update(await repository.record_done_many(session, succeeded))
        if status is not None:
            status.resume()
    failures: dict[int, tuple[Exception, list[repository.Claim]]] = {}
    for claim, result in zip(claims, results, strict=True):
        if result is not None:
            error = result if isinstance(result, Exception) else RuntimeError(repr(result))
            failures.setdefault(id(result), (error, []))[1].append(claim)
    for error, group in failures.values():
        outcomes.update(await _record_failures(runtime, jobs, config, group, error, status))
    counts: dict[str, int] = {}
    for claim in claims:
        outcome = outcomes.get(claim.id, "unrecorded")
        counts[outcome] = counts.get(outcome, 0) + 1
        if outcome == repository.LOST:
            OUTBOX_LEASE_LOST.labels(kind).inc()
            log.warning("outbox.lease_lost", id=claim.id, kind=kind)
        elif outcome != "unrecorded":
            OUTBOX_PROCESSED.labels(kind, outcome).inc()
    log.info("outbox.batch", kind=kind, rows=len(claims), ms=round((time.perf_counter() - started) * 1000, 2), **counts)
    if "paused" in counts:
        return "paused"
    if counts.get(repository.DONE) == len(claims):
        return repository.DONE
    return next(outcomes.get(claim.id, "unrecorded") for claim in claims if outcomes.get(claim.id) != repository.DONE)


async def _release_all(runtime: Any, claims: list[repository.Claim]) -> None:
    for claim in claims:
        await _release(runtime, claim)


async def _record_failures(
    runtime: Any,
    jobs: Jobs,
    config: WorkerConfig,
    claims: list[repository.Claim],
    exc: Exception,
    status: WorkerStatus | None,
) -> dict[int, str]:
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
    outcomes: dict[int, str] = {}
    try:
        async with unit_of_work(runtime.sessionmaker) as session:
            if failure.verdict == Verdict.PAUSE:
                for claim in claims:
                    outcomes[claim.id] = await repository.put_back(session, claim, error)
            else:
                give_up = [
                    c for c in claims if failure.verdict == Verdict.PERMANENT or c.attempts + 1 >= config.max_attempts
                ]
                on_dead = jobs.dead_letter.get(kind)
                for claim in give_up:
                    outcomes[claim.id] = await repository.record_dead(session, claim, error)
                    if outcomes[claim.id] == repository.DEAD and on_dead is not None:
                        await on_dead(session, dict(claim.payload), error)
                retry = [c for c in claims if c.id not in outcomes]
                if retry:
                    attempts = max(c.attempts for c in retry) + 1
                    delay = repository.retry_delay(attempts)
                    if failure.retry_after_s:
                        delay = max(delay, failure.retry_after_s)
                    outcomes.update(await repository.record_retry_many(session, retry, error, delay))
                    retried = [c.id for c in retry if outcomes[c.id] == "retry"]
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


async def _release(runtime: Any, claim: repository.Claim) -> None:
    try:
        async with unit_of_work(runtime.sessionmaker) as session:
            await repository.release(session, claim)
        log.info("outbox.released", id=claim.id, kind=claim.kind)
    except Exception:  # the lease runs out instead
        log.exception("outbox.release_failed", id=claim.id, kind=claim.kind)


def _finished(claim: repository.Claim, outcome: str, started: float, **fields: Any) -> str:
    ms = round((time.perf_counter() - started) * 1000, 2)
    if outcome == repository.LOST:
        OUTBOX_LEASE_LOST.labels(claim.kind).inc()
        log.warning("outbox.lease_lost", id=claim.id, kind=claim.kind, ms=ms, **fields)
    else:
        OUTBOX_PROCESSED.labels(claim.kind, outcome).inc()
        if outcome == repository.DONE:
            log.info("outbox.done", id=claim.id, kind=claim.kind, ms=ms)
    return outcome


async def _record_failure(
    runtime: Any,
    jobs: Jobs,
    config: WorkerConfig,
    claim: repository.Claim,
    exc: Exception,
    started: float,
    status: WorkerStatus | None,
) -> str:
    """In a fresh short transaction: put the row back (pause), schedule a retry, or dead-letter it."""
    outcome = (await _record_failures(runtime, jobs, config, [claim], exc, status)).get(claim.id)
    if outcome is None:
        return "unrecorded"
    return _finished(claim, outcome, started, error=f"{type(exc).__name__}: {exc}"[:200])


async def run_forever(runtime: Any, stop: asyncio.Event, jobs: Jobs, *, config: WorkerConfig | None = None) -> None:
    """Process due rows until `stop` is set, with the periodic jobs alongside; idle rounds wait for stop, a
    kick, or poll_s. While paused it probes every pause_probe_s (or on a kick) instead of claiming."""
    config = config or WorkerConfig.from_settings(runtime.settings)
    status = WorkerStatus(stale_after_s=config.stale_after_s)
    runtime.extras[STATUS_KEY] = status
    periodic = [
        asyncio.create_task(_run_periodically(runtime, job, stop), name=f"periodic:{job.name}")
        for job in jobs.periodic
        if job.interval_s > 0
    ]
    log.info(
        "outbox.worker_started",
        poll_s=config.poll_s,
        lease_s=config.lease_s,
        handlers=sorted(jobs.handlers),
        batches={kind: batch.size for kind, batch in sorted(jobs.batches.items())},
        periodic=[job.name for job in jobs.periodic if job.interval_s > 0],
    )
    try:
        await _run_rounds(runtime, stop, jobs, config, status)
    finally:
        status.running = False
        for task in periodic:
            task.cancel()  # a run cut short is harmless: every job is idempotent
        for task in periodic:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        log.info("outbox.worker_stopped")


async def _run_rounds(
    runtime: Any, stop: asyncio.Event, jobs: Jobs, config: WorkerConfig, status: WorkerStatus
) -> None:
    wakeup = wakeup_event(runtime)
    failures = 0
    while not stop.is_set():
        wakeup.clear()
        status.beat()
        if status.paused:
            await _wait_for_stop_or_kick(stop, wakeup, config.pause_probe_s)
            if not stop.is_set():
                await _probe(runtime, jobs, config, status)
            continue
        try:
            claimed = await run_once(runtime, jobs, stop=stop, config=config, status=status)
            failures = 0
            status.round_succeeded()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failures += 1
            claimed = 0
            status.round_failed(f"{type(exc).__name__}: {exc}")
            log.exception("outbox.round_failed", failures=failures)
        status.beat()
        if claimed >= DEFAULT_LIMIT or status.paused:
            continue  # a full batch: there is probably more, go again at once (or start waiting to probe)
        idle_s = config.poll_s if failures == 0 else min(_MAX_IDLE_S, config.poll_s * 2**failures)
        await _wait_for_stop_or_kick(stop, wakeup, idle_s)


async def _probe(runtime: Any, jobs: Jobs, config: WorkerConfig, status: WorkerStatus) -> None:
    """While paused: try one row (or, with none due, the probe call); success resumes the worker."""
    try:
        outcome = await run_one(runtime, jobs, config=config, status=status)
        if outcome != NOTHING_DUE or jobs.probe is None:
            return
        try:
            await jobs.probe(runtime)
        except Exception as exc:
            if jobs.classify(exc).verdict == Verdict.PAUSE:
                log.warning("outbox.still_paused", error=f"{type(exc).__name__}: {exc}"[:300])
                return
        status.resume()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("outbox.probe_failed")


async def _run_periodically(runtime: Any, job: PeriodicJob, stop: asyncio.Event) -> None:
    """`job.run(runtime)` every interval until `stop` (condition waits, not sleeps); failures are logged."""
    if await _stopped_within(stop, job.first_after_s):
        return
    while True:
        try:
            await job.run(runtime)
        except asyncio.CancelledError:
            raise
        except Exception:  # the next run tries again; the worker keeps going
            log.exception("outbox.periodic_failed", job=job.name)
        if await _stopped_within(stop, job.interval_s):
            return


async def _stopped_within(stop: asyncio.Event, timeout_s: float) -> bool:
    if timeout_s <= 0:
        return stop.is_set()
    try:
        await asyncio.wait_for(stop.wait(), timeout_s)
    except TimeoutError:
        return False
    return True


async def _wait_for_stop_or_kick(stop: asyncio.Event, wakeup: asyncio.Event, timeout: float) -> None:
    """A condition wait (not a sleep): returns when stopped, kicked, or after `timeout`."""
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wakeup.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
