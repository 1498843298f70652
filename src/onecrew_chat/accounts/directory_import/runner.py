"""A whole import: read a source in batches, apply each batch in its own transaction, add up the outcomes.

Each batch is committed before the next is read, so an import that stops (a truncated file, a lost
connection, Ctrl-C) keeps what it committed; running it again finds those rows unchanged and carries on.
A dry run reads, validates and applies every batch the same way, then rolls each batch back: the outcomes it
reports are the ones a real run would have (judged against the directory as it is), and nothing is written.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from onecrew_chat.accounts.directory_import import (
    DEFAULT_MAX_REJECTIONS,
    RowSource,
    SourceError,
    SourceRefused,
    SourceRow,
)
from onecrew_chat.accounts.directory_import.batch import FirstOfEachKey, apply_rows
from onecrew_chat.accounts.directory_import.kinds import STATUSES, DirectoryKind, Outcome
from onecrew_chat.db import unit_of_work
from onecrew_chat.logging import get_logger

log = get_logger(__name__)

DEFAULT_BATCH = 1000
NAME_LIMIT = 255  # directory_schemas.Name
FALLBACK_NAMES = {"users": "OneCrew user", "companies": "OneCrew company"}  # never "User": the old placeholder


def name_fallback(kind: DirectoryKind, data: Any) -> tuple[Any, str | None]:
    """The row with a usable name, and what was done to it (None: nothing)."""
    if kind.party is None or not isinstance(data, dict):
        return data, None
    name = data.get("name")
    if name is None or (isinstance(name, str) and not name.strip()):
        fallback = FALLBACK_NAMES[kind.name]
        return {**data, "name": fallback}, f"empty name: imported as {fallback!r}"
    if isinstance(name, str) and len(name.strip()) > NAME_LIMIT:
        cut = name.strip()[: NAME_LIMIT - 1] + "…"
        return {**data, "name": cut}, f"name of {len(name.strip())} characters: cut to {NAME_LIMIT}"
    return data, None


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
    dry_run: bool = False
    # A SELECT's row number means nothing to whoever fixes the data: its rejected rows are named by their key.
    rejected_keys: dict[int, dict[str, str]] = field(default_factory=dict)
    renamed: list[tuple[int, str]] = field(default_factory=list)  # rows imported under a fallback or cut name
    renamed_count: int = 0  # all of them (`renamed` lists the first `max_rejections`)

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

    @property
    def renamed_omitted(self) -> int:
        """Renamed rows counted but not listed (past `max_rejections`)."""
        return self.renamed_count - len(self.renamed)

    def where(self, position: int) -> str:
        """How the text summary names a rejected row: by its key for a SELECT (with the row number), else its line."""
        key = self.rejected_keys.get(position)
        if not key:
            return f"{self.position_word} {position}"
        return ", ".join(f"{name} {value}" for name, value in key.items()) + f" ({self.position_word} {position})"

    def note_renamed(self, position: int, note: str) -> None:
        """Count a row imported under a fallback or cut name; the first `max_rejections` are listed."""
        self.renamed_count += 1
        if len(self.renamed) < self.max_rejections:
            self.renamed.append((position, note))

    def add(self, position: int, outcome: Outcome) -> bool:
        """Count one row's outcome; True when it is a rejection the summary lists (the first `max_rejections`)."""
        self.counts[outcome.status] += 1
        self.sync_queued += outcome.sync_queued
        if outcome.error is None or len(self.rejections) >= self.max_rejections:
            return False
        self.rejections.append((position, outcome.error))
        return True

    def as_dict(self) -> dict[str, Any]:
        """The summary as `--json` prints it."""
        return {
            "kind": self.kind,
            "source": self.source,
            "dry_run": self.dry_run,
            "read": self.read,
            **self.counts,
            "identity_syncs_queued": self.sync_queued,
            "changed": self.changed,
            "batches": self.batches,
            "seconds": round(self.seconds, 3),
            "stopped": self.stopped,
            "rejections": [
                {self.position_word: position, **self.rejected_keys.get(position, {}), "error": error}
                for position, error in self.rejections
            ],
            "rejections_omitted": self.rejections_omitted,
            "renamed": [{self.position_word: position, "note": note} for position, note in self.renamed],
            "renamed_omitted": self.renamed_omitted,
        }


@contextlib.asynccontextmanager
async def _transaction(sessionmaker: async_sessionmaker[AsyncSession], dry_run: bool) -> AsyncIterator[AsyncSession]:
    """The batch's transaction: committed, or for a dry run always rolled back."""
    if not dry_run:
        async with unit_of_work(sessionmaker) as session:
            yield session
        return
    async with sessionmaker() as session:
        try:
            yield session
        finally:
            await session.rollback()


async def _apply(
    sessionmaker: async_sessionmaker[AsyncSession],
    kind: DirectoryKind,
    chunk: list[SourceRow],
    keys: FirstOfEachKey,
    summary: Summary,
) -> None:
    readable = []
    for row in chunk:
        if row.error is None:
            data, note = name_fallback(kind, row.data)
            readable.append(SourceRow(row.position, data) if note else row)
            if note:
                summary.note_renamed(row.position, note)
    async with _transaction(sessionmaker, summary.dry_run) as session:
        # New identities are left to `sync identities` (the cut-over's next step): queueing 100,000 of them here
        # would slow the import and spend Stream's budget one worker batch at a time during the cut-over.
        outcomes = await apply_rows(
            session, kind, [row.data for row in readable], [row.position for row in readable], keys, mirror_new=False
        )
    by_position = {row.position: outcome for row, outcome in zip(readable, outcomes, strict=True)}
    for row in chunk:
        outcome = by_position.get(row.position) or Outcome("rejected", row.error)
        listed = summary.add(row.position, outcome)
        if listed and summary.position_word == "row" and isinstance(row.data, dict):
            key = {name: str(row.data[name]) for name in kind.key_fields if row.data.get(name) not in (None, "")}
            if key:
                summary.rejected_keys[row.position] = key
    summary.batches += 1


async def run_import(
    sessionmaker: async_sessionmaker[AsyncSession],
    kind: DirectoryKind,
    source: RowSource,
    *,
    batch_size: int = DEFAULT_BATCH,
    max_rejections: int = DEFAULT_MAX_REJECTIONS,
    progress: Callable[[int], None] | None = None,
    dry_run: bool = False,
) -> Summary:
    """Import every row of `source`, one transaction per `batch_size` rows; never raises for bad rows.

    SourceRefused (nothing could be read: also a source that fails before its first row) is raised; a source or
    database failure mid-way ends the run with `stopped` set, keeping the batches already committed. The summary
    lists the first `max_rejections` rejected rows and counts them all.
    """
    summary = Summary(kind.name, source.name, source.position_word, max_rejections=max_rejections, dry_run=dry_run)
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
    summary.renamed.sort()
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
