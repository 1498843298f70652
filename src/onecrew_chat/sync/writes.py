"""Writes to the conversation tables that several writers share, each in the one form that keeps them apart.

- Participant rows are inserted in key order, in as few statements as possible. Each one bumps its profile's
  profile_conversation_count row (a trigger of migration 0012; on PostgreSQL once per statement, taking the counter
  rows in sorted order). Rows sent one statement each (what an executemany is on asyncpg) lock the counters in the
  order they were sent: two creates sharing members in different orders then each hold a counter the other needs
  next, and PostgreSQL breaks the deadlock by failing one of them. One INSERT of many rows per chunk, the rows sorted by
  (participant_type, participant_id), takes every transaction's counter locks in one global order; the order
  callers keep for their own use (the acting identity first) is not the order written. The app's create and the
  channel adoption insert through it.
- A conversation's last activity and a participant's read marker only move forward. Webhooks (`webhooks.apply`) and
  the catch-up (`sync.cutover.catchup`) move them the same way: the row changes only when `at` is later than what
  it holds, or when one of the caller's extra conditions holds. The statements are built once on the tables (Core)
  and only bind their values: `conversation`, `at`, `preview` (activity) or `kind` and `entity_id` (read marker);
  bind names differ from column names, which an UPDATE keeps for its SET clause.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import ColumnElement, Insert, Table, Update, bindparam, insert, or_, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession

from onecrew_chat.db import UTCDateTime
from onecrew_chat.models import Conversation, ConversationParticipant

CONVERSATION = cast(Table, Conversation.__table__)
PARTICIPANT = cast(Table, ConversationParticipant.__table__)
AT = bindparam("at", type_=UTCDateTime())
# Rows per statement: SQLite allows at most 500 SELECTs in one UNION ALL; 500 rows of up to 7 columns stay far
# below the bind-parameter limits of PostgreSQL (32,767) and SQLite (32,766).
CHUNK = 500


def key_order(row: Mapping[str, Any]) -> tuple[str, str, str]:
    """The order counter locks are taken in: the profile, then the conversation."""
    return (row["participant_type"], row["participant_id"], row["conversation_id"])


@functools.lru_cache(maxsize=64)
def _insert_of(columns: tuple[str, ...], count: int) -> Insert:
    """INSERT ... SELECT of `count` rows of these columns (one SELECT of numbered bind parameters per row, UNION
    ALL): built and compiled once per shape. SQLAlchemy never caches a multi-row VALUES: it compiled one again for
    every create, a third of a pair's INSERT work."""
    rows = [
        select(*(bindparam(f"{name}_{i}", type_=PARTICIPANT.c[name].type) for name in columns)) for i in range(count)
    ]
    return insert(PARTICIPANT).from_select(list(columns), rows[0] if count == 1 else union_all(*rows))


def participants_insert(rows: Iterable[Mapping[str, Any]]) -> tuple[Insert, dict[str, Any]]:
    """`insert_participants`' statement for at most CHUNK rows (sorted by key) and its parameters, for a caller that
    runs it with other writes in one statement."""
    ordered = sorted(rows, key=key_order)
    if not 0 < len(ordered) <= CHUNK:
        raise ValueError(f"one statement takes 1 to {CHUNK} participant rows, got {len(ordered)}")
    return _chunk_insert(ordered)


def _chunk_insert(ordered: Sequence[Mapping[str, Any]]) -> tuple[Insert, dict[str, Any]]:
    """The INSERT of these rows (sorted by key, 1 to CHUNK of them, all with the same columns) and its parameters."""
    columns = tuple(ordered[0])
    values = {f"{name}_{i}": row[name] for i, row in enumerate(ordered) for name in columns}
    return _insert_of(columns, len(ordered)), values


async def insert_participants(session: AsyncSession, rows: Iterable[Mapping[str, Any]]) -> None:
    """INSERT the rows sorted by key, CHUNK rows per statement (one statement for a pair or a group of up to 500).
    Every row has the same columns."""
    ordered = sorted(rows, key=key_order)
    for start in range(0, len(ordered), CHUNK):
        await session.execute(*_chunk_insert(ordered[start : start + CHUNK]))


def move_activity(*also: ColumnElement[bool]) -> Update:
    """Set `last_message_at` and the preview when `at` is later than the stored time (or `also` holds)."""
    return (
        update(CONVERSATION)
        .where(
            CONVERSATION.c.id == bindparam("conversation"),
            or_(CONVERSATION.c.last_message_at.is_(None), CONVERSATION.c.last_message_at < AT, *also),
        )
        .values(last_message_at=AT, last_message_preview=bindparam("preview"))
    )


def move_read_marker(*also: ColumnElement[bool]) -> Update:
    """Set one participant's `last_read_at` when `at` is later than the stored marker (or `also` holds)."""
    return (
        update(PARTICIPANT)
        .where(
            PARTICIPANT.c.conversation_id == bindparam("conversation"),
            PARTICIPANT.c.participant_type == bindparam("kind"),
            PARTICIPANT.c.participant_id == bindparam("entity_id"),
            or_(PARTICIPANT.c.last_read_at.is_(None), PARTICIPANT.c.last_read_at < AT, *also),
        )
        .values(last_read_at=AT)
    )
