"""The cut-over switch: on between `cutover begin` and `cutover end`, stored in the database for every process.

While it is on, a create for a pair the service does not know looks in Stream for an existing channel of exactly
that pair first (`sync.adoption.existing`), so a pair the old backend started after `import channels` is adopted,
not split.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from onecrew_chat.db import unit_of_work, utcnow
from onecrew_chat.models import CutoverState

NAME = "cutover"
_IN_PROGRESS = select(CutoverState.name).where(
    CutoverState.name == NAME, CutoverState.began_at.is_not(None), CutoverState.ended_at.is_(None)
)


@dataclass(frozen=True)
class Switch:
    """The switch as stored: in progress between began_at and ended_at."""

    began_at: datetime | None
    ended_at: datetime | None

    @property
    def in_progress(self) -> bool:
        """Whether creates look for old channels now."""
        return self.began_at is not None and self.ended_at is None


def in_progress_column() -> Any:
    """Whether a cut-over is in progress (one primary-key lookup), as a boolean column of the caller's own query: a
    create reads it with its pair lookup."""
    return exists(_IN_PROGRESS).label("cutover_in_progress")


async def read_switch(sessionmaker: async_sessionmaker[AsyncSession]) -> Switch:
    """The switch as stored (never set: neither time)."""
    async with sessionmaker() as session:
        row = await session.get(CutoverState, NAME)
    return Switch(row.began_at, row.ended_at) if row else Switch(None, None)


async def set_switch(sessionmaker: async_sessionmaker[AsyncSession], *, on: bool) -> tuple[Switch, bool]:
    """Turn the switch on (`begin`) or off (`end`); returns the switch and whether this call changed it."""
    async with unit_of_work(sessionmaker) as session:
        row = await session.get(CutoverState, NAME, with_for_update=True)
        now = utcnow()
        if row is None:
            row = CutoverState(name=NAME, began_at=None, ended_at=None, updated_at=now)
            session.add(row)
        before = Switch(row.began_at, row.ended_at)
        if on and not before.in_progress:
            row.began_at, row.ended_at, row.updated_at = now, None, now
        elif not on and before.in_progress:
            row.ended_at, row.updated_at = now, now
        after = Switch(row.began_at, row.ended_at)
    return after, after != before
