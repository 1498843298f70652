"""Inserting conversation_participant rows in key order, in as few statements as possible.

Each participant row bumps its profile's profile_conversation_count row (a trigger of migration 0012; on
PostgreSQL once per statement, taking the counter rows in sorted order). Rows sent one statement each (what an
executemany is on asyncpg) lock the counters in the order they were sent: two creates sharing members in different
orders then each hold a counter the other needs next, and PostgreSQL breaks the deadlock by failing one of them.
One multi-row INSERT per chunk, the rows sorted by (participant_type, participant_id), takes every transaction's
counter locks in one global order; the order callers keep for their own use (the acting identity first) is not
the order written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncSession

from onecrew_chat.models import ConversationParticipant

# Rows per statement: 1,001 rows (the largest create) of up to 7 columns stay far below the bind-parameter
# limits of PostgreSQL (32,767) and SQLite (32,766).
CHUNK = 2000

_TABLE = cast(Table, ConversationParticipant.__table__)


def key_order(row: Mapping[str, Any]) -> tuple[str, str, str]:
    """The order counter locks are taken in: the profile, then the conversation."""
    return (row["participant_type"], row["participant_id"], row["conversation_id"])


async def insert_participants(session: AsyncSession, rows: Iterable[Mapping[str, Any]]) -> None:
    """INSERT the rows sorted by key, CHUNK rows per statement (one statement for any single conversation)."""
    ordered = sorted(rows, key=key_order)
    for start in range(0, len(ordered), CHUNK):
        await session.execute(insert(_TABLE).values(ordered[start : start + CHUNK]))
