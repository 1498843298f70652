"""`onecrew-chat import users|companies|members|channels`: take over the old backend's directory and channels."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from onecrew_chat.cli import import_directory
from onecrew_chat.cli.settings import JsonReport, RetrySkipped, fail, load_settings, require_migrated, require_stream

app = typer.Typer(
    help="Take over from the old backend: the directory (files or OneCrew's own database) and its Stream channels.",
    no_args_is_help=True,
)


@app.command("channels")
def import_channels(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Read Stream and report; write nothing, send nothing.")
    ] = False,
    as_json: JsonReport = False,
    retry_skipped: RetrySkipped = False,
) -> None:
    """Adopt every messaging channel in Stream: pairs keep their channel id, groups their name; resumable."""
    from onecrew_chat.cli import import_channels as adoption
    from onecrew_chat.stream.errors import StreamError

    settings = load_settings()
    require_stream(settings)
    require_migrated(settings)
    try:
        report = asyncio.run(adoption.run_import_channels(settings, dry_run=dry_run, retry_skipped=retry_skipped))
    except StreamError as exc:
        fail(f"stopped: {exc}. What was read and adopted is recorded; run the command again to continue.")
    adoption.print_report(report, as_json=as_json)


# `onecrew-chat import users|companies|members` (cli/import_directory.py).
import_directory.register(app)
