"""Operator commands of the sync layer for the command line: `reconcile` and `sync identities`, printed with rich.

Both show a progress bar with a total and an ETA on stderr when it is a terminal, and print their report as JSON
with `--json`.
"""

from __future__ import annotations

import dataclasses
import json

from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from onecrew_chat.cli.progress import RunProgress, watching
from onecrew_chat.config import Settings
from onecrew_chat.identity import ChatStatus
from onecrew_chat.models import Company, Conversation, StreamIdentity, User
from onecrew_chat.runtime import build_runtime
from onecrew_chat.sync.reconcile.backfill import BackfillReport, backfill_identities
from onecrew_chat.sync.reconcile.drift import DRIFT_KINDS, Report
from onecrew_chat.sync.reconcile.run import reconcile

# Nouns whose plural is not the singular plus "s" (the last word decides).
_IRREGULAR = {"identity": "identities", "company": "companies", "entry": "entries"}


def count(number: int, singular: str, plural: str | None = None) -> str:
    """`number` and the noun phrase in the form that agrees with it: "1 Stream call", "2 Stream calls"."""
    if number == 1:
        return f"{number} {singular}"
    if plural is None:
        head, _, last = singular.rpartition(" ")
        last = _IRREGULAR.get(last, last + ("es" if last.endswith(("s", "x", "ch", "sh")) else "s"))
        plural = f"{head} {last}" if head else last
    return f"{number:,} {plural}"


def console() -> Console:
    """A console on stdout; piped output (grep, logs) gets wide lines instead of 80-column folding."""
    out = Console()
    return out if out.is_terminal else Console(width=200)


async def run_reconcile(settings: Settings, *, repair: bool, limit: int | None, deadline_s: float | None) -> Report:
    """One reconcile run with a runtime of its own, with a progress bar over identities and conversations."""
    runtime = build_runtime(settings)
    try:
        async with runtime.sessionmaker() as session:
            identities = int(await session.scalar(select(func.count()).select_from(StreamIdentity)) or 0)
            conversations = int(
                await session.scalar(
                    select(func.count()).where(
                        Conversation.chat_status == ChatStatus.READY, Conversation.deleted_at.is_(None)
                    )
                )
                or 0
            )
        if limit is not None:
            identities, conversations = min(identities, limit), min(conversations, limit)
        report = Report(repair=repair)
        with RunProgress("Reconciling identities and channels", identities + conversations) as progress:
            async with watching(progress, lambda: report.identities_checked + report.conversations_checked):
                return await reconcile(runtime, repair=repair, limit=limit, deadline_s=deadline_s, report=report)
    finally:
        await runtime.close()


def to_json(report: Report | BackfillReport) -> str:
    """A report as JSON for scripts (`--json`)."""
    fields = dataclasses.asdict(report)
    if isinstance(report, Report):
        fields["total_drift"] = report.total_drift
    else:
        fields["sent"] = report.sent
    return json.dumps(fields, indent=2, sort_keys=True)


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
    """One `sync identities` run with a runtime of its own, with a progress bar over the directory."""
    runtime = build_runtime(settings)
    try:
        async with runtime.sessionmaker() as session:
            total = 0
            for model in (User, Company):
                total += int(await session.scalar(select(func.count()).select_from(model)) or 0)
        with RunProgress("Syncing users and companies to Stream", total) as progress:

            def moved(report: BackfillReport) -> None:
                progress.update(report.scanned, description=f"Syncing to Stream ({report.sent} sent)")

            return await backfill_identities(runtime, batch=batch, dry_run=dry_run, progress=moved)
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
