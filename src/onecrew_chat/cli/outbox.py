"""`onecrew-chat outbox list|retry`: work waiting to reach Stream, what is pending or dead, and requeueing it.

The database and the outbox are imported when a command runs, as every command group does, so that
`onecrew-chat --help` and the other commands do not load them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from onecrew_chat.cli.settings import fail, load_settings, require_migrated

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from onecrew_chat.config import Settings
    from onecrew_chat.models import OutboxMessage

app = typer.Typer(help="Work waiting to reach Stream: inspect and requeue.", no_args_is_help=True)


@app.command("list")
def outbox_list(limit: Annotated[int, typer.Option(min=1, help="At most this many rows.")] = 50) -> None:
    """Show outbox messages that are pending or dead."""
    settings = load_settings()
    require_migrated(settings)
    print_table(asyncio.run(unfinished(settings, limit=limit)))


@app.command("retry")
def outbox_retry(
    message_id: Annotated[int | None, typer.Argument(help="The id shown by `outbox list`.")] = None,
    all_dead: Annotated[bool, typer.Option("--all-dead", help="Requeue every dead message.")] = False,
) -> None:
    """Make a message (or every dead one) due now, with a fresh attempt budget."""
    if (message_id is None) == (not all_dead):
        fail("give either a message ID or --all-dead", code=2)
    settings = load_settings()
    require_migrated(settings)
    try:
        count = asyncio.run(requeue(settings, message_id=message_id))
    except LookupError as exc:
        fail(str(exc))
    typer.echo(f"Requeued {count} outbox message{'s' if count != 1 else ''}.")


@asynccontextmanager
async def _session(settings: Settings) -> AsyncIterator[AsyncSession]:
    """A session on an engine of its own, disposed afterwards (one CLI command, one engine)."""
    from onecrew_chat.db import make_engine, make_sessionmaker

    engine = make_engine(settings)
    try:
        async with make_sessionmaker(engine)() as session:
            yield session
    finally:
        await engine.dispose()


async def unfinished(settings: Settings, *, limit: int = 50) -> list[OutboxMessage]:
    """Pending and dead messages, dead first, oldest first."""
    from onecrew_chat.outbox import maintenance, repository

    async with _session(settings) as session:
        return await maintenance.list_messages(session, status=(repository.PENDING, repository.DEAD), limit=limit)


async def requeue(settings: Settings, *, message_id: int | None) -> int:
    """Make one message (or, with no id, every dead one) due now with attempts reset; returns how many.

    LookupError when the id has no message or names one already done; MessageInProgress (a LookupError)
    when a worker holds it right now: a row in progress is never touched.
    """
    from onecrew_chat.outbox import maintenance

    async with _session(settings) as session, session.begin():
        return await maintenance.requeue(session, None if message_id is None else [message_id])


def print_table(messages: list[OutboxMessage]) -> None:
    """Render the messages as a rich table on stdout (one line when there are none)."""
    from rich.console import Console
    from rich.table import Table

    from onecrew_chat.db import utcnow
    from onecrew_chat.outbox import repository

    console = Console()
    if not console.is_terminal:  # piped (grep, logs): no 80-column folding
        console = Console(width=200)
    if not messages:
        console.print("The outbox has no pending or dead messages.")
        return
    table = Table(title="Outbox: pending and dead messages")
    for column in ("id", "kind", "status", "attempts", "next attempt (UTC)", "payload", "last error"):
        table.add_column(column, overflow="fold")
    now = utcnow()
    for m in messages:
        running = m.status == repository.PENDING and m.locked_until is not None and m.locked_until > now
        table.add_row(
            str(m.id),
            m.kind,
            f"{m.status} (running)" if running else m.status,
            str(m.attempts),
            m.next_attempt_at.strftime("%Y-%m-%d %H:%M:%S"),
            ", ".join(f"{k}={v}" for k, v in sorted(m.payload.items())),
            (m.last_error or "")[:120],
        )
    console.print(table)
    dead = sum(1 for m in messages if m.status == "dead")
    console.print(
        f"{len(messages) - dead} pending, {dead} dead. Requeue with `onecrew-chat outbox retry ID|--all-dead`."
    )
