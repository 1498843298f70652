"""Paging through every channel of one type in Stream, oldest first, from a persisted created_at cursor."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from onecrew_chat.logging import get_logger
from onecrew_chat.stream.client import MAX_CHANNELS_PER_QUERY, StreamGateway
from onecrew_chat.sync.cutover.records import ChannelRecord, from_us, record_from_state, to_us
from onecrew_chat.sync.deadline import Deadline

log = get_logger(__name__)

# One page may wait out a whole rate-limit window (Stream's are per minute) and back off through 5xx.
PAGE_DEADLINE_S = 90.0
SORT = [{"field": "created_at", "direction": 1}]


@dataclass
class Position:
    """The cursor: channels created before `cursor_us` were read, and `seen_at_cursor` of those created at it."""

    cursor_us: int = 0
    seen_at_cursor: int = 0
    pages: int = 0

    def query(self, channel_type: str) -> tuple[dict[str, Any], int]:
        """The filter and offset of the next page."""
        conditions: dict[str, Any] = {"type": channel_type}
        if self.cursor_us:
            conditions["created_at"] = {"$gte": from_us(self.cursor_us).isoformat()}
        return conditions, self.seen_at_cursor

    def advance(self, new_records: list[ChannelRecord]) -> None:
        """Move past the channels read for the first time (a channel read again never counts twice)."""
        self.pages += 1
        for record in new_records:
            if record.created_at is None:
                continue
            at = to_us(record.created_at)
            if at > self.cursor_us:
                self.cursor_us, self.seen_at_cursor = at, 1
            elif at == self.cursor_us:
                self.seen_at_cursor += 1


class PageStore(Protocol):
    """Where pages go: the database ledger, or memory for a dry run."""

    async def new_of(self, records: list[ChannelRecord]) -> list[ChannelRecord]:
        """The records not in the ledger yet."""

    async def save(self, records: list[ChannelRecord], position: Position) -> None:
        """Store new records and the position together."""


Progress = Callable[[int, int], None]


async def scan_channels(
    stream: StreamGateway,
    channel_type: str,
    position: Position,
    store: PageStore,
    *,
    progress: Progress | None = None,
    page_size: int = MAX_CHANNELS_PER_QUERY,
) -> int:
    """Read pages until Stream has no more; each page is handed to `store` before the next is asked for.

    No database work happens while a page is in flight: the store opens and commits its own short transactions.
    Returns how many channels were new to the ledger.
    """
    new_total = 0
    while True:
        conditions, offset = position.query(channel_type)
        states = await Deadline(PAGE_DEADLINE_S).run(
            partial(stream.query_channels_page, conditions, sort=SORT, limit=page_size, offset=offset),
            name="QueryChannels",
        )
        records = [record_from_state(state) for state in states]
        fresh = await store.new_of(records)
        position.advance(fresh)
        await store.save(fresh, position)
        new_total += len(fresh)
        log.info(
            "adoption.page", page=position.pages, channels=len(records), new=len(fresh), cursor_us=position.cursor_us
        )
        if progress is not None:
            progress(position.pages, new_total)
        if len(states) < page_size:
            return new_total
