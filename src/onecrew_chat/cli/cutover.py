"""`onecrew-chat cutover begin|end|status|catch-up`: switch-over day (docs/cutover.md)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from onecrew_chat.cli.settings import JsonReport, RetrySkipped, fail, load_settings, require_migrated, require_stream

app = typer.Typer(
    help="Switch-over day (docs/cutover.md): the cut-over switch, and the catch-up with what the old backend did.",
    no_args_is_help=True,
)


def _cutover_switch(on: bool | None) -> None:
    from onecrew_chat.cli import cutover_runs

    settings = load_settings()
    require_migrated(settings)
    state, changed = asyncio.run(cutover_runs.switch(settings, on=on))
    if on is not None and not changed:
        typer.echo("Unchanged.")
    typer.echo(cutover_runs.describe(state))


@app.command("begin")
def cutover_begin() -> None:
    """Creates for a pair the service does not know adopt the pair's existing Stream channel first (until `end`)."""
    _cutover_switch(True)


@app.command("end")
def cutover_end() -> None:
    """Creates stop looking in Stream for old channels (run the last catch-up first)."""
    _cutover_switch(False)


@app.command("status")
def cutover_status() -> None:
    """Whether a cut-over is in progress."""
    _cutover_switch(None)


@app.command("catch-up")
def cutover_catch_up(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Compare with Stream and report; write nothing, send nothing.")
    ] = False,
    as_json: JsonReport = False,
    retry_skipped: RetrySkipped = False,
) -> None:
    """Adopt channels that appeared since, and bring every conversation's last message, preview and read state up
    to Stream's; repeatable, safe before and after the switch."""
    from onecrew_chat.cli import cutover_runs
    from onecrew_chat.stream.errors import StreamError

    settings = load_settings()
    require_stream(settings)
    require_migrated(settings)
    try:
        report = asyncio.run(cutover_runs.run_catch_up(settings, dry_run=dry_run, retry_skipped=retry_skipped))
    except StreamError as exc:
        fail(f"stopped: {exc}. What was caught up is recorded; run the command again to continue.")
    cutover_runs.print_report(report, as_json=as_json)
