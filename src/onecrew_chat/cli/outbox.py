"""`onecrew-chat outbox list|retry`: work waiting to reach Stream."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from onecrew_chat.cli.settings import fail, load_settings, require_migrated

app = typer.Typer(help="Work waiting to reach Stream: inspect and requeue.", no_args_is_help=True)


@app.command("list")
def outbox_list(limit: Annotated[int, typer.Option(min=1, help="At most this many rows.")] = 50) -> None:
    """Show outbox messages that are pending or dead."""
    from onecrew_chat.cli import outbox_rows

    settings = load_settings()
    require_migrated(settings)
    outbox_rows.print_table(asyncio.run(outbox_rows.unfinished(settings, limit=limit)))


@app.command("retry")
def outbox_retry(
    message_id: Annotated[int | None, typer.Argument(help="The id shown by `outbox list`.")] = None,
    all_dead: Annotated[bool, typer.Option("--all-dead", help="Requeue every dead message.")] = False,
) -> None:
    """Make a message (or every dead one) due now, with a fresh attempt budget."""
    from onecrew_chat.cli import outbox_rows

    if (message_id is None) == (not all_dead):
        fail("give either a message ID or --all-dead", code=2)
    settings = load_settings()
    require_migrated(settings)
    try:
        count = asyncio.run(outbox_rows.requeue(settings, message_id=message_id))
    except LookupError as exc:
        fail(str(exc))
    typer.echo(f"Requeued {count} outbox message{'s' if count != 1 else ''}.")
