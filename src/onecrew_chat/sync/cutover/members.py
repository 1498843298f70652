"""Channels of more than 100 members: QueryChannels lists at most 100, so the rest are paged with QueryMembers.

A record whose member list is shorter than its member_count is completed before it is decided, whether it was
read in this run or skipped by an earlier one ("Stream listed 100 of its N members", decided again with
--retry-skipped). Members are paged by user id (100 a call, no offset ceiling), each page within one deadline
that waits out a rate limit. No database work happens while Stream answers: the completed lists are written
afterwards by the ledger.
"""

from __future__ import annotations

from functools import partial
from typing import Protocol

from onecrew_chat.logging import get_logger
from onecrew_chat.stream.client import MAX_BATCH, StreamGateway
from onecrew_chat.stream.errors import StreamRequestError
from onecrew_chat.sync.cutover.records import ChannelRecord, damage_of
from onecrew_chat.sync.deadline import Deadline

log = get_logger(__name__)

PAGE_DEADLINE_S = 90.0  # as a channel page: one page may wait out a whole rate-limit window


class MemberStore(Protocol):
    """Where completed member lists go: the database ledger, or nowhere for a dry run."""

    async def save_members(self, records: list[ChannelRecord]) -> None:
        """Store the records' complete member lists."""


def incomplete(record: ChannelRecord) -> bool:
    """Whether Stream said the channel has more members than the record lists."""
    return record.member_count > len(record.member_ids)


async def all_members(stream: StreamGateway, record: ChannelRecord) -> tuple[list[str], dict[str, str]]:
    """Every member of the channel (the listed ones first, in Stream's order) and the damage Stream shows on them."""
    paged: list[str] = []
    damaged: dict[str, str] = {}
    after: str | None = None
    while True:
        page = await Deadline(PAGE_DEADLINE_S).run(
            partial(stream.query_members_page, record.channel_type, record.channel_id, after_user_id=after),
            name="QueryMembers",
        )
        for member in page:
            user = member.get("user") or {}
            user_id = member.get("user_id") or user.get("id")
            if not user_id:
                continue
            paged.append(user_id)
            problem = damage_of(user)
            if problem:
                damaged[user_id] = problem
        if len(page) < MAX_BATCH:
            break
        after = paged[-1]
    present = set(paged)
    listed = [m for m in record.member_ids if m in present]
    ordered = list(dict.fromkeys([*listed, *paged]))
    return ordered, damaged


async def complete_members(stream: StreamGateway, records: list[ChannelRecord], store: MemberStore | None) -> int:
    """Complete every record Stream listed only in part; returns how many. A channel gone from Stream stays as it is."""
    completed = []
    for record in records:
        if not incomplete(record):
            continue
        try:
            members, damaged = await all_members(stream, record)
        except StreamRequestError as exc:
            if exc.status != 404:
                raise
            log.info("adoption.members_gone", cid=record.cid)
            continue
        record.member_ids, record.member_count = members, len(members)
        record.damaged = {**record.damaged, **damaged}
        completed.append(record)
        log.info("adoption.members_paged", cid=record.cid, members=len(members))
    if completed and store is not None:
        await store.save_members(completed)
    return len(completed)
