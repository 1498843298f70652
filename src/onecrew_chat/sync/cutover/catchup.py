"""The catch-up: what the old backend did since `import channels` reaches our records (`cutover catch-up`).

Two passes, both cheap and repeatable:
1. `import channels` from its cursor: channels created since are adopted (one call when none are new).
2. Every ready conversation, 30 per QueryChannels call (cid $in, the last message and every member's read state):
   `last_message_at` and the preview move up to Stream's, each participant's `last_read_at` moves up to the marker
   Stream's unread count implies (0 unread: read up to the last message), members Stream lists that a group lacks
   and the directory knows are added (members past Stream's first 100 are confirmed with QueryMembers), and a pair
   channel still carrying the old backend's generic name gets its removal queued.

Nothing moves backwards, so a webhook applied while a page is in flight is never undone; each page is written in one
short transaction after Stream answered. A second run finds nothing to change. Safe after the switch as well: it
is then a repair of whatever webhooks missed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, cast

from sqlalchemy import CursorResult, and_, bindparam, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from onecrew_chat.db import unit_of_work, utcnow
from onecrew_chat.identity import ChatStatus, Identity, Kind, cid
from onecrew_chat.logging import get_logger
from onecrew_chat.models import Company, Conversation, ConversationParticipant, User, new_uuid
from onecrew_chat.runtime import Runtime
from onecrew_chat.stream.client import MAX_CHANNELS_PER_QUERY
from onecrew_chat.sync.cutover.names import is_generic, queue_unset_names
from onecrew_chat.sync.cutover.plan import ALREADY_OURS
from onecrew_chat.sync.cutover.records import ChannelRecord, record_from_state, stream_time
from onecrew_chat.sync.cutover.report import AdoptionReport
from onecrew_chat.sync.cutover.run import import_channels
from onecrew_chat.sync.cutover.scan import PAGE_DEADLINE_S, SORT
from onecrew_chat.sync.deadline import Deadline
from onecrew_chat.sync.writes import AT, CONVERSATION, PARTICIPANT, move_activity, move_read_marker

log = get_logger(__name__)

GROUP = "group"
SHOWN = 20  # changes listed by name in the text report

# Forward only, as webhooks move them: a later value than ours, or (activity) the same time with another preview.
MOVE_ACTIVITY = move_activity(
    and_(
        CONVERSATION.c.last_message_at == AT,
        or_(
            CONVERSATION.c.last_message_preview.is_(None),
            CONVERSATION.c.last_message_preview != bindparam("preview"),
        ),
    )
)
MOVE_READ = move_read_marker()


@dataclass
class Ours:
    """A conversation as our records hold it."""

    id: str
    channel_type: str
    channel_id: str
    conversation_type: str
    last_message_at: datetime | None
    preview: str | None
    reads: dict[str, datetime | None] = field(default_factory=dict)  # Stream id -> last_read_at


@dataclass
class Changes:
    """What one page would change."""

    activity: list[tuple[Ours, datetime, str | None]] = field(default_factory=list)
    reads: list[tuple[Ours, Identity, datetime]] = field(default_factory=list)
    members: list[tuple[Ours, Identity, datetime | None]] = field(default_factory=list)
    names: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class CatchUpReport:
    """What a catch-up found and (unless a dry run) changed."""

    dry_run: bool
    adoption: AdoptionReport
    conversations_checked: int = 0
    activity: list[dict[str, Any]] = field(default_factory=list)  # channel_id, last_message_at, preview
    reads: list[dict[str, Any]] = field(default_factory=list)  # channel_id, member, read_at
    members_added: list[dict[str, Any]] = field(default_factory=list)  # channel_id, member
    names_queued: list[str] = field(default_factory=list)  # pair channels whose generic name goes
    missing_in_stream: list[str] = field(default_factory=list)  # our channels Stream did not return
    stream_calls: int = 0
    ms: float = 0.0

    @property
    def adopted(self) -> int:
        """Channels adopted by this run (pairs, groups and duplicates)."""
        a = self.adoption
        return len(a.pairs) + len(a.groups) + sum(len(v["others"]) for v in a.duplicate_pairs().values())

    @property
    def changed(self) -> bool:
        """Whether this run changed (or, dry, would change) anything."""
        return bool(self.adopted or self.activity or self.reads or self.members_added or self.names_queued)

    def as_json(self) -> dict[str, Any]:
        """The --json output."""
        return {
            "dry_run": self.dry_run,
            "adoption": self.adoption.as_json(),
            "conversations_checked": self.conversations_checked,
            "activity": self.activity,
            "reads": self.reads,
            "members_added": self.members_added,
            "names_queued": self.names_queued,
            "missing_in_stream": self.missing_in_stream,
            "changed": self.changed,
            "stream_calls": self.stream_calls,
            "ms": self.ms,
        }

    def lines(self) -> list[str]:
        """The text output."""
        would = "would " if self.dry_run else ""
        a = self.adoption
        lines = [
            f"New channels: {a.channels_read} read; {len(a.pairs)} pairs, {len(a.groups)} groups, "
            f"{sum(len(v['others']) for v in a.duplicate_pairs().values())} duplicates {would}adopted, "
            f"{len(a.skipped)} skipped.",
        ]
        for pair in a.pairs:
            lines.append(f"  pair  {pair['channel_id']}  {' + '.join(pair['members'])}")
            if pair.get("replaces"):
                lines.append(f"        took the pair over from {pair['replaces']}, which has no message")
        for group in a.groups:
            lines.append(f"  group {group['channel_id']}  {group['name'] or '(no name)'}  {group['members']} members")
        ours = [x for x in a.skipped if x["reason"] == ALREADY_OURS]
        for skipped in a.skipped:
            if skipped not in ours:
                lines.append(f"  skipped {skipped['channel_id']}: {skipped['reason']}")
        if ours:
            lines.append(f"  ({len(ours)} of the skipped are channels of this service's own conversations)")
        lines.append(
            f"Checked {self.conversations_checked} conversations against Stream: "
            f"{len(self.activity)} last messages, {len(self.reads)} read markers, "
            f"{len(self.members_added)} group members, {len(self.names_queued)} generic pair names "
            f"{would}brought up to Stream's."
        )
        for item in self.activity[:SHOWN]:
            lines.append(f"  activity {item['channel_id']}  {item['last_message_at']}  {item['preview']!r}")
        for item in self.reads[:SHOWN]:
            lines.append(f"  read     {item['channel_id']}  {item['member']}  {item['read_at']}")
        per_group: dict[str, int] = {}
        for item in self.members_added:
            per_group[item["channel_id"]] = per_group.get(item["channel_id"], 0) + 1
        for channel_id, added in list(per_group.items())[:SHOWN]:
            lines.append(f"  members  {channel_id}  +{added}")
        for channel_id in self.names_queued[:SHOWN]:
            lines.append(f"  name     {channel_id}  generic name queued for removal in Stream")
        hidden = sum(max(0, len(x) - SHOWN) for x in (self.activity, self.reads, per_group, self.names_queued))
        if hidden:
            lines.append(f"  ... and {hidden} more (--json lists every one)")
        if self.missing_in_stream:
            lines.append(
                f"Not in Stream: {len(self.missing_in_stream)} channels of ours "
                f"(`onecrew-chat reconcile` reports and repairs them), e.g. {', '.join(self.missing_in_stream[:5])}"
            )
        lines.append(f"{self.stream_calls} Stream calls in {self.ms / 1000:.1f} s.")
        if self.dry_run:
            lines.append("Dry run: nothing was written to the database or sent to Stream.")
        elif not self.changed:
            lines.append("Nothing to catch up: our records match Stream.")
        return lines


async def _load_page(session: AsyncSession, after: str) -> list[Ours]:
    """The next ready conversations (by id) with their participants' read markers."""
    rows = (
        await session.execute(
            select(
                Conversation.id,
                Conversation.channel_type,
                Conversation.channel_id,
                Conversation.conversation_type,
                Conversation.last_message_at,
                Conversation.last_message_preview,
            )
            .where(
                Conversation.chat_status == ChatStatus.READY, Conversation.deleted_at.is_(None), Conversation.id > after
            )
            .order_by(Conversation.id)
            .limit(MAX_CHANNELS_PER_QUERY)
        )
    ).all()
    page = {row.id: Ours(*row) for row in rows}
    if page:
        participants = await session.execute(
            select(
                ConversationParticipant.conversation_id,
                ConversationParticipant.participant_type,
                ConversationParticipant.participant_id,
                ConversationParticipant.last_read_at,
            ).where(ConversationParticipant.conversation_id.in_(list(page)))
        )
        for conversation_id, kind, entity_id, read_at in participants:
            page[conversation_id].reads[Identity(Kind(kind), entity_id).stream_id] = read_at
    return list(page.values())


async def _known_to_directory(runtime: Runtime, identities: set[Identity]) -> set[Identity]:
    users = sorted(i.entity_id for i in identities if i.kind is Kind.USER)
    companies = sorted(i.entity_id for i in identities if i.kind is Kind.COMPANY)
    async with runtime.sessionmaker() as session:
        known_users = set(await session.scalars(select(User.id).where(User.id.in_(users)))) if users else set()
        known_companies = (
            set(await session.scalars(select(Company.id).where(Company.id.in_(companies)))) if companies else set()
        )
    return {i for i in identities if i.entity_id in (known_users if i.kind is Kind.USER else known_companies)}


def _parse(stream_id: str) -> Identity | None:
    try:
        return Identity.parse(stream_id)
    except ValueError:
        return None


class CatchUp:
    """One pass over our conversations, page by page."""

    def __init__(self, runtime: Runtime, report: CatchUpReport):
        self.runtime = runtime
        self.report = report

    async def page(self, ours: list[Ours]) -> None:
        """Compare one page with Stream (one call, plus QueryMembers for groups past 100 members) and write it."""
        cids = [cid(c.channel_id, c.channel_type) for c in ours]
        states = await Deadline(PAGE_DEADLINE_S).run(
            partial(self.runtime.stream.query_channels_page, {"cid": {"$in": cids}}, sort=SORT, limit=len(cids)),
            name="QueryChannels",
        )
        by_cid: dict[str, dict[str, Any]] = {}
        for state in states:
            channel = state.get("channel") or {}
            by_cid[channel.get("cid") or f"{channel.get('type')}:{channel.get('id')}"] = state
        changes = Changes()
        for conversation, key in zip(ours, cids, strict=True):
            found = by_cid.get(key)
            if found is None:
                self.report.missing_in_stream.append(conversation.channel_id)
                continue
            await self.compare(conversation, found, changes)
        self.report.conversations_checked += len(ours)
        await self.write(changes)

    async def compare(self, ours: Ours, state: dict[str, Any], changes: Changes) -> None:
        """What differs between our conversation and its channel's state."""
        record = record_from_state(state)
        at = record.last_message_at
        if at is not None and (
            ours.last_message_at is None
            or at > ours.last_message_at
            or (at == ours.last_message_at and record.preview is not None and record.preview != ours.preview)
        ):
            changes.activity.append((ours, at, record.preview))
        for stream_id, read_at in ours.reads.items():
            marker = _marker(record, stream_id)
            if marker is not None and (read_at is None or marker > read_at):
                identity = _parse(stream_id)
                if identity is not None:
                    changes.reads.append((ours, identity, marker))
        if ours.conversation_type == GROUP:
            await self.new_members(ours, state, record, changes)
        elif is_generic(record.name):
            changes.names.append((ours.channel_type, ours.channel_id))

    async def new_members(self, ours: Ours, state: dict[str, Any], record: ChannelRecord, changes: Changes) -> None:
        """Members Stream has that the group lacks (the old backend added them), when the directory knows them.

        Stream lists a channel's first 100 members but the read state of all of them: ids only the read state names
        are confirmed with QueryMembers before they are added.
        """
        listed = set(record.member_ids)
        readers = {(r.get("user") or {}).get("id") for r in state.get("read") or []}
        candidates = {i for i in map(_parse, (listed | {r for r in readers if r}) - set(ours.reads)) if i is not None}
        if not candidates:
            return
        candidates = await _known_to_directory(self.runtime, candidates)
        unlisted = sorted(i.stream_id for i in candidates if i.stream_id not in listed)
        if unlisted:
            present = await Deadline(PAGE_DEADLINE_S).run(
                partial(self.runtime.stream.query_member_ids, ours.channel_type, ours.channel_id, unlisted),
                name="QueryMembers",
            )
            candidates = {i for i in candidates if i.stream_id in listed or i.stream_id in present}
        for identity in sorted(candidates):
            changes.members.append((ours, identity, _marker(record, identity.stream_id)))

    async def write(self, changes: Changes) -> None:
        """One transaction for the page; only what still differs is changed and reported."""
        report = self.report
        if report.dry_run:
            report.activity += [_activity(o, at, p) for o, at, p in changes.activity]
            report.reads += [_read(o, i, at) for o, i, at in changes.reads]
            report.members_added += [{"channel_id": o.channel_id, "member": i.stream_id} for o, i, _ in changes.members]
            report.names_queued += [channel_id for _, channel_id in changes.names]
            return
        async with unit_of_work(self.runtime.sessionmaker) as session:
            now = utcnow()
            insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
            # In the key order of sync.writes: the counter rows each insert bumps are locked in one order.
            members = sorted(changes.members, key=lambda m: (m[1].kind.value, m[1].entity_id, m[0].id))
            for ours, identity, read_at in members:
                row = {
                    "id": new_uuid(),
                    "conversation_id": ours.id,
                    "participant_type": identity.kind.value,
                    "participant_id": identity.entity_id,
                    "joined_at": now,
                    "last_read_at": read_at,
                    "created_at": now,
                }
                # Another run may have added the member meanwhile: then it is there already.
                added = await session.execute(
                    insert(PARTICIPANT)
                    .values(row)
                    .on_conflict_do_nothing(index_elements=["conversation_id", "participant_type", "participant_id"])
                )
                if cast(CursorResult[Any], added).rowcount:
                    report.members_added.append({"channel_id": ours.channel_id, "member": identity.stream_id})
            for ours, at, preview in changes.activity:
                result = await session.execute(MOVE_ACTIVITY, {"conversation": ours.id, "at": at, "preview": preview})
                if cast(CursorResult[Any], result).rowcount:
                    report.activity.append(_activity(ours, at, preview))
            for ours, identity, at in changes.reads:
                values = {"conversation": ours.id, "kind": identity.kind.value, "entity_id": identity.entity_id}
                result = await session.execute(MOVE_READ, {**values, "at": at})
                if cast(CursorResult[Any], result).rowcount:
                    report.reads.append(_read(ours, identity, at))
            report.names_queued += await queue_unset_names(session, changes.names)


def _marker(record: ChannelRecord, stream_id: str) -> datetime | None:
    value = record.reads.get(stream_id)
    return stream_time(value) if value else None


def _activity(ours: Ours, at: datetime, preview: str | None) -> dict[str, Any]:
    return {"channel_id": ours.channel_id, "last_message_at": at.isoformat(), "preview": preview}


def _read(ours: Ours, identity: Identity, at: datetime) -> dict[str, Any]:
    return {"channel_id": ours.channel_id, "member": identity.stream_id, "read_at": at.isoformat()}


async def catch_up(
    runtime: Runtime,
    *,
    dry_run: bool = False,
    retry_skipped: bool = False,
    on_page: Callable[[int], None] | None = None,
) -> CatchUpReport:
    """Adopt the channels that appeared since the last run, then bring every ready conversation up to Stream's."""
    started, calls = time.perf_counter(), runtime.stream.calls
    adoption = await import_channels(runtime, dry_run=dry_run, retry_skipped=retry_skipped)
    report = CatchUpReport(dry_run=dry_run, adoption=adoption)
    run = CatchUp(runtime, report)
    after = ""
    try:
        while True:
            async with runtime.sessionmaker() as session:
                page = await _load_page(session, after)
            if not page:
                break
            await run.page(page)
            after = page[-1].id
            if on_page is not None:
                on_page(report.conversations_checked)
    finally:
        report.stream_calls = runtime.stream.calls - calls
        report.ms = round((time.perf_counter() - started) * 1000, 2)
        log.info(
            "catchup.finished",
            dry_run=dry_run,
            adopted=report.adopted,
            checked=report.conversations_checked,
            activity=len(report.activity),
            reads=len(report.reads),
            members=len(report.members_added),
            names=len(report.names_queued),
            missing=len(report.missing_in_stream),
            stream_calls=report.stream_calls,
            ms=report.ms,
        )
    return report
