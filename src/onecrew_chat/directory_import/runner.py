"""A whole import: read a source in batches, apply each batch in its own transaction, add up the outcomes.

Each batch is committed before the next is read, so an import that stops (a truncated file, a lost
connection, Ctrl-C) keeps what it committed; running it again finds those rows unchanged and carries on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from onecrew_chat.db import unit_of_work
from onecrew_chat.directory_import.batch import FirstOfEachKey, apply_rows
from onecrew_chat.directory_import.kinds import STATUSES, DirectoryKind, Outcome
from onecrew_chat.directory_import.rows import DEFAULT_MAX_REJECTIONS, RowSource, SourceError, SourceRefused, SourceRow
from onecrew_chat.logging import get_logger

log = get_logger(__name__)

DEFAULT_BATCH = 1000


@dataclass
class Summary:
    """What an import did: counts per outcome, the first rejected rows with their reasons, whether it stopped early.

    `rejections` keeps the first `max_rejections` rejected rows; `counts["rejected"]` counts them all.
    """

    kind: str
    source: str
    position_word: str = "line"
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    sync_queued: int = 0
    rejections: list[tuple[int, str]] = field(default_factory=list)
    max_rejections: int = DEFAULT_MAX_REJECTIONS
    batches: int = 0
    seconds: float = 0.0
    stopped: str | None = None

    @property
    def read(self) -> int:
        """Rows read (every outcome)."""
        return sum(self.counts.values())

    @property
    def changed(self) -> bool:
        """Whether the import wrote anything (rows or queued Stream syncs)."""
        return bool(self.counts["created"] or self.counts["updated"] or self.sync_queued)

    @property
    def ok(self) -> bool:
        """Every row was imported and the source was read to its end."""
        return not self.counts["rejected"] and self.stopped is None

    @property
    def empty(self) -> bool:
        """The source was read to its end and had no rows (an empty file, a CSV with only its header)."""
        return not self.read and self.stopped is None

    @property
    def rejections_omitted(self) -> int:
        """Rejected rows counted but not listed (past `max_rejections`)."""
        return self.counts["rejected"] - len(self.rejections)

    def add(self, position: int, outcome: Outcome) -> None:
        """Count one row's outcome."""
        self.counts[outcome.status] += 1
        self.sync_queued += outcome.sync_queued
        if outcome.error is not None and len(self.rejections) < self.max_rejections:
            self.rejections.append((position, outcome.error))

    def as_dict(self) -> dict[str, Any]:
        """The summary as `--json` prints it."""
        return {
            "kind": self.kind,
            "source": self.source,
            "read": self.read,
            **self.counts,
            "identity_syncs_queued": self.sync_queued,
            "changed": self.changed,
            "batches": self.batches,
            "seconds": round(self.seconds, 3),
            "stopped": self.stopped,
            "rejections": [{self.position_word: position, "error": error} for position, error in self.rejections],
            "rejections_omitted": self.rejections_omitted,
        }


async def _apply(
    sessionmaker: async_sessionmaker[AsyncSession],
    kind: DirectoryKind,
    chunk: list[SourceRow],
    keys: FirstOfEachKey,
    summary: Summary,
) -> None:
    readable = [row for row in chunk if row.error is None]
    async with unit_of_work(sessionmaker) as session:
        # New identities are left to `sync identities` (the cut-over's next step): queueing 100,000 of them here
        # would slow the import and spend Stream's budget one worker batch at a time during the cut-over.
        outcomes = await apply_rows(
            session, kind, [row.data for row in readable], [row.position for row in readable], keys, mirror_new=False
        )
    by_position = {row.position: outcome for row, outcome in zip(readable, outcomes, strict=True)}
    for row in chunk:
        summary.add(row.position, by_position.get(row.position) or Outcome("rejected", row.error))
    summary.batches += 1


async def run_import(
    sessionmaker: async_sessionmaker[AsyncSession],
    kind: DirectoryKind,
    source: RowSource,
    *,
    batch_size: int = DEFAULT_BATCH,
    max_rejections: int = DEFAULT_MAX_REJECTIONS,
    progress: Callable[[int], None] | None = None,
) -> Summary:
    """Import every row of `source`, one transaction per `batch_size` rows; never raises for bad rows.

    SourceRefused (nothing could be read: also a source that fails before its first row) is raised; a source or
    database failure mid-way ends the run with `stopped` set, keeping the batches already committed. The summary
    lists the first `max_rejections` rejected rows and counts them all.
    """
    summary = Summary(kind.name, source.name, source.position_word, max_rejections=max_rejections)
    keys = FirstOfEachKey(kind, source.position_word)
    started = time.monotonic()
    log.info("directory_import.started", kind=kind.name, source=source.name, batch_size=batch_size)
    try:
        async for chunk in source.chunks(batch_size):
            await _apply(sessionmaker, kind, chunk, keys, summary)
            if progress is not None:
                progress(len(chunk))
    except SourceRefused:
        raise
    except SourceError as exc:
        if not summary.read:  # not one row could be read: the source is unreadable, not stopped part-way
            raise SourceRefused(str(exc)) from None
        summary.stopped = str(exc)
    except (SQLAlchemyError, OSError) as exc:  # the target database went away mid-run
        summary.stopped = f"the database failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
    finally:
        summary.seconds = time.monotonic() - started
        await source.close()
    summary.rejections.sort()
    log.info(
        "directory_import.finished",
        kind=kind.name,
        source=source.name,
        **summary.counts,
        identity_syncs_queued=summary.sync_queued,
        batches=summary.batches,
        seconds=round(summary.seconds, 3),
        stopped=summary.stopped,
    )
    return summary
