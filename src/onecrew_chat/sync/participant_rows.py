"""Inserting conversation_participant rows in key order, in as few statements as possible.

Each participant row bumps its profile's profile_conversation_count row (a trigger of migration 0012; on
PostgreSQL once per statement, taking the counter rows in sorted order). Rows sent one statement each (what an
executemany is on asyncpg) lock the counters in the order they were sent: two creates sharing members in different
orders then each hold a counter the other needs next, and PostgreSQL breaks the deadlock by failing one of them.
One INSERT of many rows per chunk, the rows sorted by (participant_type, participant_id), takes every transaction's
counter locks in one global order; the order callers keep for their own use (the acting identity first) is not
the order written.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any, cast

from sqlalchemy import Insert, Table, bindparam, insert, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from onecrew_chat.models import ConversationParticipant

# Rows per statement: SQLite allows at most 500 SELECTs in one UNION ALL; 500 rows of up to 7 columns stay far
# below the bind-parameter limits of PostgreSQL (32,767) and SQLite (32,766).
CHUNK = 500

_TABLE = cast(Table, ConversationParticipant.__table__)


def key_order(row: Mapping[str, Any]) -> tuple[str, str, str]:
    """The order counter locks are taken in: the profile, then the conversation."""
    return (row["participant_type"], row["participant_id"], row["conversation_id"])


@functools.lru_cache(maxsize=64)
def _insert_of(columns: tuple[str, ...], count: int) -> Insert:
    """INSERT ... SELECT of `count` rows of these columns (one SELECT of numbered bind parameters per row, UNION
    ALL): built and compiled once per shape. SQLAlchemy never caches a multi-row VALUES: it compiled one again for
    every create, a third of a pair's INSERT work."""
    rows = [select(*(bindparam(f"{name}_{i}", type_=_TABLE.c[name].type) for name in columns)) for i in range(count)]
    return insert(_TABLE).from_select(list(columns), rows[0] if count == 1 else union_all(*rows))


async def insert_participants(session: AsyncSession, rows: Iterable[Mapping[str, Any]]) -> None:
    """INSERT the rows sorted by key, CHUNK rows per statement (one statement for a pair or a group of up to 500).
    Every row has the same columns."""
    ordered = sorted(rows, key=key_order)
    for start in range(0, len(ordered), CHUNK):
        chunk = ordered[start : start + CHUNK]
        columns = tuple(chunk[0])
        values = {f"{name}_{i}": row[name] for i, row in enumerate(chunk) for name in columns}
        await session.execute(_insert_of(columns, len(chunk)), values)
