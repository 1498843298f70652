"""What the outbox worker runs, passed in by the composition root: handlers per kind, dead-letter handlers,
periodic jobs and the classification of failures. The outbox itself knows no handler and no Stream type.

- `Handler`: `async def handler(runtime, payload) -> None`. It opens its own short transactions; the worker
  holds no transaction or connection while it runs. It must be safe to run twice.
- `BatchHandler`: `async def handler(runtime, payloads) -> outcomes`, for a kind whose rows are cheaper together
  (e.g. one Stream call for 100 identities). It gets the payloads of up to `Batch.size` due rows of its kind and
  returns one entry per payload, in order: None (that row is done) or the exception that row failed with. Rows
  failing with the same exception object are classified once and recorded together (e.g. a 429's reset for the
  whole batch). Raising fails every row with that exception. Same rules as `Handler` otherwise.
- `DeadLetterHandler`: `async def on_dead(session, payload, error) -> None`, run inside the short
  transaction that marks the row dead.
- `Classifier`: maps an exception to a `Failure` (retry, permanent, or pause the worker).

Handlers get the process's runtime as the composition root passes it: `Jobs` is generic in its type, which only
has to be a `WorkerHost` (what the worker itself reads of it), so the outbox names no type above the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from onecrew_chat.config import Settings
from onecrew_chat.outbox.status import WorkerStatus


class WorkerHost(Protocol):
    """What the worker reads of the process's runtime: settings, the database, its wake-up event and its status."""

    @property
    def settings(self) -> Settings: ...
    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession]: ...
    @property
    def outbox_wakeup(self) -> asyncio.Event: ...

    # Set by the running worker (None in a process that runs none): /readyz and the metrics read it.
    worker_status: WorkerStatus | None


H = TypeVar("H", bound=WorkerHost)

Handler = Callable[[H, dict[str, Any]], Awaitable[None]]
BatchHandler = Callable[[H, list[dict[str, Any]]], Awaitable[Sequence[BaseException | None]]]
DeadLetterHandler = Callable[[AsyncSession, dict[str, Any], str], Awaitable[None]]
PeriodicRun = Callable[[H], Awaitable[object]]
Probe = Callable[[H], Awaitable[object]]


class Verdict(StrEnum):
    """What a failure means for the row and the worker."""

    RETRY = "retry"  # try the row again later (attempts counted, backoff, at most max_attempts)
    PERMANENT = "permanent"  # no retry can fix it: dead-letter the row
    PAUSE = "pause"  # our own credentials are refused: put the row back untouched and pause the worker


@dataclass(frozen=True)
class Failure:
    """A classified exception: the verdict, and the wait a retry must at least respect (e.g. a 429's reset)."""

    verdict: Verdict
    retry_after_s: float | None = None


def retry_everything(error: BaseException) -> Failure:
    """The classifier when none is given: every failure is worth another try later."""
    retry_after = getattr(error, "retry_after_s", None)
    return Failure(Verdict.RETRY, float(retry_after) if retry_after else None)


@dataclass(frozen=True)
class PeriodicJob(Generic[H]):
    """`run(runtime)` every `interval_s` seconds (first after `first_after_s`) while the worker runs.

    Failures are logged and the job runs again at its next interval. An interval of 0 or less turns it off.
    """

    name: str
    interval_s: float
    run: PeriodicRun[H]
    first_after_s: float = 0.0


@dataclass(frozen=True)
class Batch(Generic[H]):
    """How rows of one kind run together: `run(runtime, payloads)` on up to `size` rows claimed at once."""

    run: BatchHandler[H]
    size: int = 100


@dataclass(frozen=True)
class Jobs(Generic[H]):
    """Everything the worker runs. `probe(runtime)` is a cheap call that tells a paused worker whether the
    credentials work again when no row is due to try; without it, a paused worker waits for a row."""

    handlers: Mapping[str, Handler[H]]
    # Kinds whose due rows are claimed and run together; a kind listed here needs no entry in `handlers`.
    batches: Mapping[str, Batch[H]] = field(default_factory=dict)
    dead_letter: Mapping[str, DeadLetterHandler] = field(default_factory=dict)
    periodic: Sequence[PeriodicJob[H]] = ()
    classify: Callable[[BaseException], Failure] = retry_everything
    probe: Probe[H] | None = None
