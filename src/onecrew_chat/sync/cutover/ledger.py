"""The adoption ledger: channels read from Stream and the cursor, in the database (or in memory for a dry run)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeVar, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from onecrew_chat.db import unit_of_work, utcnow
from onecrew_chat.identity import Identity, pair_key
from onecrew_chat.models import AdoptionChannel, AdoptionPosition, Base, Company, Conversation, User
from onecrew_chat.sync.cutover.plan import Known, member_uuids
from onecrew_chat.sync.cutover.records import ChannelRecord
from onecrew_chat.sync.cutover.scan import Position

PENDING, SKIPPED = "pending", "skipped"
IN_CHUNK = 500  # ids per IN (...) list
T = TypeVar("T")


def _chunks(items: list[T], size: int = IN_CHUNK) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _insert(session: AsyncSession, model: type[Base]) -> postgresql.Insert | sqlite.Insert:
    return (postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert)(model)


class DbLedger:
    """The adoption_channel and adoption_position tables; every method is its own short transaction."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], channel_type: str):
        self.sessionmaker = sessionmaker
        self.channel_type = channel_type

    async def load_position(self) -> Position:
        """Where the last run stopped (the start for a first run)."""
        async with self.sessionmaker() as session:
            row = await session.get(AdoptionPosition, self.channel_type)
        return Position(row.cursor_us, row.seen_at_cursor, row.pages) if row else Position()

    async def new_of(self, records: list[ChannelRecord]) -> list[ChannelRecord]:
        """The records whose channel the ledger does not hold yet (first occurrence only)."""
        cids = list(dict.fromkeys(r.cid for r in records))
        if not cids:
            return []
        async with self.sessionmaker() as session:
            seen = set(await session.scalars(select(AdoptionChannel.cid).where(AdoptionChannel.cid.in_(cids))))
        fresh: dict[str, ChannelRecord] = {}
        for record in records:
            if record.cid not in seen:
                fresh.setdefault(record.cid, record)
        return list(fresh.values())

    async def save(self, records: list[ChannelRecord], position: Position) -> None:
        """The page's new channels and the cursor, in one transaction."""
        async with unit_of_work(self.sessionmaker) as session:
            if records:
                rows = [{**r.as_row(), "staged_at": utcnow()} for r in records]
                await session.execute(
                    _insert(session, AdoptionChannel).values(rows).on_conflict_do_nothing(index_elements=["cid"])
                )
            values = {
                "cursor_us": position.cursor_us,
                "seen_at_cursor": position.seen_at_cursor,
                "pages": position.pages,
            }
            statement = _insert(session, AdoptionPosition).values(
                channel_type=self.channel_type, updated_at=utcnow(), **values
            )
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=["channel_type"], set_={**values, "updated_at": statement.excluded.updated_at}
                )
            )

    async def stage(self, records: list[ChannelRecord]) -> list[ChannelRecord]:
        """Channels found outside the scan (a create's lookup): new ones are added, pending or skipped ones take what
        Stream shows now; returns those left to decide (the ones decided already stay as they are)."""
        if not records:
            return []
        async with unit_of_work(self.sessionmaker) as session:
            for record in records:
                row = {**record.as_row(), "staged_at": utcnow()}
                statement = _insert(session, AdoptionChannel).values(row)
                refreshed = {k: statement.excluded[k] for k in row if k not in ("cid", "channel_type", "channel_id")}
                await session.execute(
                    statement.on_conflict_do_update(
                        index_elements=["cid"],
                        set_={**refreshed, "reason": None, "decided_at": None},
                        where=AdoptionChannel.outcome.in_([PENDING, SKIPPED]),
                    )
                )
            undecided = set(
                await session.scalars(
                    select(AdoptionChannel.cid).where(
                        AdoptionChannel.cid.in_([r.cid for r in records]), AdoptionChannel.outcome == PENDING
                    )
                )
            )
        return [r for r in records if r.cid in undecided]

    async def pending(self, *, with_skipped: bool = False) -> list[ChannelRecord]:
        """Channels read but not decided yet (and skipped ones, when asked), oldest first."""
        outcomes = [PENDING, SKIPPED] if with_skipped else [PENDING]
        async with self.sessionmaker() as session:
            rows = await session.scalars(
                select(AdoptionChannel)
                .where(AdoptionChannel.outcome.in_(outcomes), AdoptionChannel.channel_type == self.channel_type)
                .order_by(AdoptionChannel.created_at, AdoptionChannel.cid)
            )
            return [ChannelRecord.from_row(row) for row in rows]

    async def save_members(self, records: list[ChannelRecord]) -> None:
        """The complete member lists (and damage) of channels Stream listed only in part, in one transaction."""
        async with unit_of_work(self.sessionmaker) as session:
            for record in records:
                await session.execute(
                    update(AdoptionChannel)
                    .where(AdoptionChannel.cid == record.cid)
                    .values(member_ids=record.member_ids, member_count=record.member_count, damaged=record.damaged)
                    .execution_options(synchronize_session=False)
                )

    async def reopen_skipped(self) -> int:
        """Skipped channels become pending again (after the directory learned their members); returns how many."""
        async with unit_of_work(self.sessionmaker) as session:
            result = await session.execute(
                update(AdoptionChannel)
                .where(AdoptionChannel.outcome == SKIPPED, AdoptionChannel.channel_type == self.channel_type)
                .values(outcome=PENDING, reason=None, decided_at=None)
                .execution_options(synchronize_session=False)
            )
            return int(cast(CursorResult[Any], result).rowcount or 0)

    async def decided(self) -> dict[str, int]:
        """Channels decided by earlier runs, per outcome."""
        async with self.sessionmaker() as session:
            rows = await session.execute(
                select(AdoptionChannel.outcome, func.count())
                .where(AdoptionChannel.outcome != PENDING, AdoptionChannel.channel_type == self.channel_type)
                .group_by(AdoptionChannel.outcome)
            )
            return {outcome: count for outcome, count in rows}

    async def known(self, records: list[ChannelRecord]) -> Known:
        """What the database holds that decisions depend on: used channel ids, pairs' conversations, the directory."""
        channel_ids = sorted({r.channel_id for r in records})
        user_ids, company_ids = member_uuids(records)
        keys = set()
        for record in records:
            try:
                first, second = (Identity.parse(m) for m in dict.fromkeys(record.member_ids))
            except ValueError:  # not exactly two OneCrew ids
                continue
            keys.add(pair_key(first, second))
        known = Known(channel_ids=set(), pairs={}, users=set(), companies=set())
        async with self.sessionmaker() as session:
            for chunk in _chunks(channel_ids):
                known.channel_ids.update(
                    await session.scalars(select(Conversation.channel_id).where(Conversation.channel_id.in_(chunk)))
                )
            for chunk in _chunks(sorted(keys)):
                rows = await session.execute(
                    select(Conversation.pair_key, Conversation.channel_id, Conversation.last_message_at).where(
                        Conversation.pair_key.in_(chunk)
                    )
                )
                for key, channel_id, last_message_at in rows:
                    if key is None:
                        continue
                    known.pairs[key] = channel_id
                    if last_message_at is None:
                        known.empty_pairs.add(key)
            for chunk in _chunks(sorted(user_ids)):
                known.users.update(await session.scalars(select(User.id).where(User.id.in_(chunk))))
            for chunk in _chunks(sorted(company_ids)):
                known.companies.update(await session.scalars(select(Company.id).where(Company.id.in_(chunk))))
        return known


class MemoryLedger:
    """A dry run's ledger: reads what the database holds, keeps what it would write in memory."""

    def __init__(self, db: DbLedger, *, with_skipped: bool = False):
        self.db = db
        self.with_skipped = with_skipped
        self.records: dict[str, ChannelRecord] = {}

    async def new_of(self, records: list[ChannelRecord]) -> list[ChannelRecord]:
        """New to both the database and this run."""
        return [r for r in await self.db.new_of(records) if r.cid not in self.records]

    async def save(self, records: list[ChannelRecord], position: Position) -> None:
        """Kept in memory only."""
        self.records.update((r.cid, r) for r in records)

    async def pending(self) -> list[ChannelRecord]:
        """The database's pending channels and this run's."""
        return [*await self.db.pending(with_skipped=self.with_skipped), *self.records.values()]
