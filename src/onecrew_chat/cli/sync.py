"""`onecrew-chat reconcile` and `onecrew-chat sync identities`: compare with Stream and bring it up to date."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from onecrew_chat.cli.settings import fail, load_settings, require_migrated, require_stream

app = typer.Typer(help="Bring Stream up to date with the directory.", no_args_is_help=True)


def reconcile(
    repair: Annotated[
        bool, typer.Option("--repair", help="Queue repairs of the drift found (default: report only).")
    ] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="Check at most N identities and N conversations.")] = None,
    deadline: Annotated[
        float | None, typer.Option(min=0.1, help="Seconds the run may take (default ONECREW_RECONCILE_DEADLINE_S).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON (for scripts).")] = False,
) -> None:
    """Compare our records with Stream: identities, ready channels and their members, webhook drift."""
    from onecrew_chat.cli import sync_runs
    from onecrew_chat.stream.errors import StreamError

    settings = load_settings()
    require_stream(settings)
    require_migrated(settings)
    try:
        report = asyncio.run(sync_runs.run_reconcile(settings, repair=repair, limit=limit, deadline_s=deadline))
    except StreamError as exc:
        fail(f"Stream refused the reconcile: {exc}")
    if as_json:
        typer.echo(sync_runs.to_json(report))
    else:
        sync_runs.print_reconcile(report)


@app.command("identities")
def sync_identities(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count what would be sent.")] = False,
    batch: Annotated[int, typer.Option(min=1, max=100, help="Identities per Stream call.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON (for scripts).")] = False,
) -> None:
    """Upsert every user and company Stream lacks (or holds with an old profile); run again to resume."""
    from onecrew_chat.cli import sync_runs
    from onecrew_chat.stream.errors import StreamError

    settings = load_settings()
    if not dry_run:
        require_stream(settings)
    require_migrated(settings)
    try:
        report = asyncio.run(sync_runs.run_backfill(settings, batch=batch, dry_run=dry_run))
    except StreamError as exc:
        fail(f"stopped: {exc}. What was sent is recorded; run the command again to continue.")
    if as_json:
        typer.echo(sync_runs.to_json(report))
    else:
        sync_runs.print_backfill(report)
