"""The outbox worker's loop: rounds until stopped, waits between them, a pause while Stream refuses our credentials.

A round (`rounds.py`) claims due rows one at a time, runs each with no transaction open and records its outcome
under its lease. Idle, the loop waits for a kick, the stop event or `poll_s`. A failure classified "pause" (Stream
refusing our credentials) puts the row back untouched and pauses the worker; it probes again every
`pause_probe_s` (or when kicked) and resumes once a call succeeds. Periodic jobs run alongside the loop.

Handlers, dead-letter handlers, periodic jobs and the classifier come in as `Jobs` from the composition root.
"""

from __future__ import annotations

import asyncio
import contextlib

from onecrew_chat.logging import get_logger
from onecrew_chat.outbox.jobs import H, Jobs, PeriodicJob, Verdict
from onecrew_chat.outbox.repository import Outcome
from onecrew_chat.outbox.rounds import MAX_ATTEMPTS, MAX_IDLE_S, WorkerConfig, run_next
from onecrew_chat.outbox.status import WorkerStatus

log = get_logger(__name__)

__all__ = ["MAX_ATTEMPTS", "WorkerConfig", "run_forever", "run_once", "run_one"]

DEFAULT_LIMIT = 50


async def run_once(
    runtime: H,
    jobs: Jobs[H],
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
        outcome, count = await run_next(runtime, jobs, config=config, status=status)
        if status is not None:
            status.beat()
        if outcome is Outcome.IDLE:
            break
        claimed += count
        if outcome is Outcome.PAUSED:
            break
    return claimed


async def run_one(runtime: H, jobs: Jobs[H], *, config: WorkerConfig, status: WorkerStatus | None = None) -> Outcome:
    """Claim the next due row (with more of its kind when it has a batch handler) and run it: its outcome (done,
    rerun, retry, dead, paused, lost; a batch's: paused if any row paused, else done if all were, else the first
    other), or Outcome.IDLE."""
    outcome, _ = await run_next(runtime, jobs, config=config, status=status)
    return outcome


async def run_forever(runtime: H, stop: asyncio.Event, jobs: Jobs[H], *, config: WorkerConfig | None = None) -> None:
    """Process due rows until `stop` is set, with the periodic jobs alongside; idle rounds wait for stop, a
    kick, or poll_s. While paused it probes every pause_probe_s (or on a kick) instead of claiming."""
    config = config or WorkerConfig.from_settings(runtime.settings)
    status = WorkerStatus(stale_after_s=config.stale_after_s)
    runtime.worker_status = status
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
    runtime: H, stop: asyncio.Event, jobs: Jobs[H], config: WorkerConfig, status: WorkerStatus
) -> None:
    wakeup = runtime.outbox_wakeup
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
        idle_s = config.poll_s if failures == 0 else min(MAX_IDLE_S, config.poll_s * 2**failures)
        await _wait_for_stop_or_kick(stop, wakeup, idle_s)


async def _probe(runtime: H, jobs: Jobs[H], config: WorkerConfig, status: WorkerStatus) -> None:
    """While paused: try one row (or, with none due, the probe call); success resumes the worker."""
    try:
        outcome = await run_one(runtime, jobs, config=config, status=status)
        if outcome is not Outcome.IDLE or jobs.probe is None:
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


async def _run_periodically(runtime: H, job: PeriodicJob[H], stop: asyncio.Event) -> None:
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
