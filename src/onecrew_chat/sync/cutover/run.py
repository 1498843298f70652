"""`import channels`: read Stream's channels into the ledger (resumable), decide the pending ones, write them."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from onecrew_chat.identity import CHANNEL_TYPE
from onecrew_chat.logging import get_logger
from onecrew_chat.runtime import Runtime
from onecrew_chat.sync.cutover.apply import apply_decisions
from onecrew_chat.sync.cutover.ledger import DbLedger, MemoryLedger
from onecrew_chat.sync.cutover.members import complete_members
from onecrew_chat.sync.cutover.plan import decide
from onecrew_chat.sync.cutover.report import AdoptionReport
from onecrew_chat.sync.cutover.scan import scan_channels

log = get_logger(__name__)


@dataclass
class Callbacks:
    """Progress hooks for the command line: pages read (pages, new channels), channels written (done, total)."""

    on_page: Callable[[int, int], None] | None = None
    on_written: Callable[[int, int], None] | None = None


async def import_channels(
    runtime: Runtime,
    *,
    dry_run: bool = False,
    retry_skipped: bool = False,
    callbacks: Callbacks | None = None,
    channel_type: str = CHANNEL_TYPE,
) -> AdoptionReport:
    """One run. Interrupted, it resumes at the next page (scan) or the next undecided channel (apply).

    `retry_skipped` decides the channels skipped by earlier runs again (after the directory learned their members).
    """
    started, calls = time.perf_counter(), runtime.stream.calls
    callbacks = callbacks or Callbacks()
    report = AdoptionReport(dry_run=dry_run)
    db = DbLedger(runtime.sessionmaker, channel_type)
    ledger = MemoryLedger(db, with_skipped=retry_skipped) if dry_run else db
    if retry_skipped and not dry_run:
        report.reopened = await db.reopen_skipped()
    position = await db.load_position()
    pages_before = position.pages
    try:
        report.channels_read = await scan_channels(
            runtime.stream, channel_type, position, ledger, progress=callbacks.on_page
        )
        report.pages = position.pages - pages_before
        report.decided_before = await db.decided()
        pending = await ledger.pending()
        await complete_members(runtime.stream, pending, None if dry_run else db)  # groups of more than 100
        decisions = decide(pending, await db.known(pending))
        await apply_decisions(runtime, decisions, report, progress=callbacks.on_written)
    finally:
        report.pages = position.pages - pages_before
        report.stream_calls = runtime.stream.calls - calls
        report.ms = round((time.perf_counter() - started) * 1000, 2)
        log.info(
            "adoption.finished",
            dry_run=dry_run,
            pages=report.pages,
            channels_read=report.channels_read,
            pairs=len(report.pairs),
            groups=len(report.groups),
            duplicates=sum(len(v["others"]) for v in report.duplicate_pairs().values()),
            skipped=len(report.skipped),
            repaired=len(report.repaired),
            stream_calls=report.stream_calls,
            ms=report.ms,
        )
    return report
