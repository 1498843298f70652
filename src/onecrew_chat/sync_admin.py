"""Operator commands of the sync layer for the command line: `reconcile` and `sync identities`, printed with rich."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from onecrew_chat.config import Settings
from onecrew_chat.runtime import build_runtime
from onecrew_chat.sync.backfill import BackfillReport, backfill_identities
from onecrew_chat.sync.drift import DRIFT_KINDS, Report
from onecrew_chat.sync.reconcile import reconcile
from onecrew_chat.wording import count


def console() -> Console:
    """A console on stdout; piped output (grep, logs) gets wide lines instead of 80-column folding."""
    out = Console()
    return out if out.is_terminal else Console(width=200)


async def run_reconcile(settings: Settings, *, repair: bool, limit: int | None, deadline_s: float | None) -> Report:
    """One reconcile run with a runtime of its own."""
    runtime = build_runtime(settings)
    try:
        return await reconcile(runtime, repair=repair, limit=limit, deadline_s=deadline_s)
    finally:
        await runtime.close()


def print_reconcile(report: Report) -> None:
    """The drift table and what was (or would be) done about it."""
    out = console()
    if report.skipped:
        out.print("Another process is reconciling this database right now; nothing was checked.")
        return
    table = Table(title="Reconcile: our records compared with Stream")
    for column in ("drift", "found", "examples"):
        table.add_column(column, overflow="fold")
    for kind in DRIFT_KINDS:
        table.add_row(kind, str(report.drift[kind]), ", ".join(report.examples[kind]))
    out.print(table)
    out.print(
        f"Checked {count(report.identities_checked, 'identity')} and {count(report.conversations_checked, 'conversation')} "
        f"with {count(report.stream_calls, 'Stream call')} in {report.ms / 1000:.1f} s."
    )
    if report.unverified:
        out.print(
            f"Channels with more members than Stream lists (100): {report.unverified}; "
            "the members it does not list are added again when repairing (harmless)."
        )
    if report.webhook_drift_open:
        verb = "resolved" if report.repair else "would be resolved with --repair"
        out.print(
            f"Webhook drift: {report.webhook_drift_open} open, {report.webhook_drift_agreeing} agree with Stream again ({verb})."
        )
    if report.repair:
        out.print(
            f"Repair: queued {count(report.identity_syncs_queued, 'identity sync')} and "
            f"{count(report.provisions_queued, 'provisioning')}; the outbox worker carries them out (`onecrew-chat outbox list` shows them)."
        )
    elif report.total_drift or report.unverified:
        out.print("Report only: nothing was changed. Run `onecrew-chat reconcile --repair` to queue the repairs.")
    if report.stopped_early == "limit":
        out.print("Stopped at --limit: the rest was not checked.")
    elif report.stopped_early:
        out.print(
            f"Stopped early ({report.stopped_early}): the rest was not checked. Allow more with --deadline "
            "or ONECREW_RECONCILE_MAX_CALLS."
        )
    elif not report.total_drift:
        out.print("No drift: Stream holds every identity, channel and member our records say it should.")


async def run_backfill(settings: Settings, *, batch: int, dry_run: bool) -> BackfillReport:
    """One `sync identities` run with a runtime of its own, printing a line per batch sent."""
    out = console()

    def progress(report: BackfillReport) -> None:
        out.print(f"sent {count(report.sent, 'identity')} so far ({report.scanned:,} scanned)")

    runtime = build_runtime(settings)
    try:
        return await backfill_identities(runtime, batch=batch, dry_run=dry_run, progress=progress)
    finally:
        await runtime.close()


def print_backfill(report: BackfillReport) -> None:
    """The summary of a `sync identities` run."""
    out = console()
    out.print(
        f"Scanned {report.scanned} users and companies: {report.fresh} fresh in Stream, "
        f"{report.missing} missing, {report.stale} with a changed profile."
    )
    if report.dry_run:
        out.print(f"Dry run: would upsert {report.missing} and update {report.stale}; nothing was sent.")
        return
    out.print(
        f"Upserted {report.upserted}, updated {report.updated} with {count(report.stream_calls, 'Stream call')} "
        f"in {report.ms / 1000:.1f} s."
    )
    if report.refused:
        out.print(f"Stream refused {len(report.refused)}: {', '.join(report.refused[:10])}")
