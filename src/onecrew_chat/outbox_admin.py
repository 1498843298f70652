"""Operator views of the outbox for the command line: what is pending or dead, and requeueing it."""

from __future__ import annotations

from sqlalchemy import select, update

from onecrew_chat.config import Settings
from onecrew_chat.db import make_engine, make_sessionmaker, utcnow
from onecrew_chat.models import OutboxMessage

UNFINISHED = ("pending", "dead")


async def unfinished(settings: Settings, *, limit: int = 50) -> list[OutboxMessage]:
    """Pending and dead messages, dead first, oldest first."""
    engine = make_engine(settings)
    try:
        async with make_sessionmaker(engine)() as session:
            rows = await session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.status.in_(UNFINISHED))
                .order_by(OutboxMessage.status, OutboxMessage.id)
                .limit(limit)
            )
            return list(rows.all())
    finally:
        await engine.dispose()


async def requeue(settings: Settings, *, message_id: int | None) -> int:
    """Make one message (or, with no id, every dead one) due now with attempts reset; returns how many."""
    engine = make_engine(settings)
    values = {"status": "pending", "attempts": 0, "next_attempt_at": utcnow(), "locked_until": None}
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            if message_id is None:
                result = await session.execute(
                    update(OutboxMessage).where(OutboxMessage.status == "dead").values(**values)
                )
                return result.rowcount
            message = await session.get(OutboxMessage, message_id, with_for_update=True)
            if message is None:
                raise LookupError(f"no outbox message with id {message_id}")
            if message.status == "done":
                raise LookupError(f"outbox message {message_id} is already done; nothing to retry")
            for key, value in values.items():
                setattr(message, key, value)
            return 1
    finally:
        await engine.dispose()


def print_table(messages: list[OutboxMessage]) -> None:
    """Render the messages as a rich table on stdout (one line when there are none)."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:  # piped (grep, logs): no 80-column folding
        console = Console(width=200)
    if not messages:
        console.print("The outbox has no pending or dead messages.")
        return
    table = Table(title="Outbox: pending and dead messages")
    for column in ("id", "kind", "status", "attempts", "next attempt (UTC)", "payload", "last error"):
        table.add_column(column, overflow="fold")
    for m in messages:
        table.add_row(
            str(m.id), m.kind, m.status, str(m.attempts), m.next_attempt_at.strftime("%Y-%m-%d %H:%M:%S"),
            ", ".join(f"{k}={v}" for k, v in sorted(m.payload.items())), (m.last_error or "")[:120],
        )
    console.print(table)
    dead = sum(1 for m in messages if m.status == "dead")
    console.print(f"{len(messages) - dead} pending, {dead} dead. Requeue with `onecrew-chat outbox retry ID|--all-dead`.")
