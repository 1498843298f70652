"""Deciding each channel: a pair's conversation, a duplicate of one, a group, or skipped with the reason."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import cast

from onecrew_chat.identity import ConversationType, Identity, Kind, pair_key
from onecrew_chat.sync.cutover.records import ChannelRecord

PAIR, GROUP, DUPLICATE, SKIPPED = "pair", "group", "duplicate", "skipped"
ALREADY_OURS = "already known: a conversation of this service uses this channel"
SHOWN = 5
_NEVER = datetime.min.replace(tzinfo=UTC)

PAIR_TYPES = {
    (Kind.USER, Kind.USER): ConversationType.USER_USER,
    (Kind.COMPANY, Kind.USER): ConversationType.USER_COMPANY,
    (Kind.COMPANY, Kind.COMPANY): ConversationType.COMPANY_COMPANY,
}


@dataclass
class Decision:
    """What becomes of one channel."""

    record: ChannelRecord
    outcome: str
    reason: str | None = None
    identities: list[Identity] = field(default_factory=list)  # Stream's member order
    conversation_type: str | None = None
    pair_key: str | None = None
    winner: str | None = None  # a duplicate's adopted channel id
    displaces: str | None = None  # a pair's: the empty channel of the pair's conversation it takes over from


@dataclass
class Known:
    """What the database already holds: channel ids of conversations, and the channel id of each pair's conversation."""

    channel_ids: set[str]
    pairs: dict[str, str]  # pair_key -> channel id
    users: set[str]
    companies: set[str]
    empty_pairs: set[str] = field(default_factory=set)  # pair keys whose conversation has no message yet


def _shown(ids: list[str]) -> str:
    return ", ".join(ids[:SHOWN]) + (f" and {len(ids) - SHOWN} more" if len(ids) > SHOWN else "")


def member_uuids(records: Iterable[ChannelRecord]) -> tuple[set[str], set[str]]:
    """The user and company uuids named by the records' OneCrew member ids (for one directory query per table)."""
    users: set[str] = set()
    companies: set[str] = set()
    for record in records:
        for stream_id in record.member_ids:
            try:
                identity = Identity.parse(stream_id)
            except ValueError:
                continue
            (users if identity.kind is Kind.USER else companies).add(identity.entity_id)
    return users, companies


def classify(record: ChannelRecord, known: Known) -> Decision:
    """One channel on its own: skipped with the reason, or a pair or group candidate."""
    if record.channel_id in known.channel_ids:
        return Decision(record, SKIPPED, ALREADY_OURS)
    if record.member_count > len(record.member_ids):
        return Decision(record, SKIPPED, f"Stream listed {len(record.member_ids)} of its {record.member_count} members")
    identities, foreign = [], []
    for stream_id in dict.fromkeys(record.member_ids):
        try:
            identities.append(Identity.parse(stream_id))
        except ValueError:
            foreign.append(stream_id)
    if foreign:
        return Decision(record, SKIPPED, f"members that are not OneCrew Stream ids: {_shown(foreign)}")
    unknown = [
        i.stream_id for i in identities if i.entity_id not in (known.users if i.kind is Kind.USER else known.companies)
    ]
    if unknown:
        return Decision(record, SKIPPED, f"members unknown to the directory: {_shown(unknown)}")
    if len(identities) < 2:
        return Decision(record, SKIPPED, f"{len(identities)} member(s): not a conversation")
    if len(identities) == 2:
        first, second = identities
        kinds = cast(tuple[Kind, Kind], tuple(sorted((first.kind, second.kind), key=lambda k: k.value)))
        return Decision(
            record,
            PAIR,
            identities=identities,
            conversation_type=PAIR_TYPES[kinds].value,
            pair_key=pair_key(first, second),
        )
    return Decision(record, GROUP, identities=identities, conversation_type=ConversationType.GROUP.value)


def newest_first(record: ChannelRecord) -> tuple[datetime, datetime, str]:
    """Sort key: the newest message first, then the newest channel, then the channel id (stable)."""
    return (record.last_message_at or _NEVER, record.created_at or _NEVER, record.channel_id)


def decide(pending: list[ChannelRecord], known: Known) -> list[Decision]:
    """Every pending channel decided; per pair the channel with the newest message wins unless the pair has a
    conversation already, and that one keeps the pair unless it is empty while a candidate has messages."""
    decisions = [classify(record, known) for record in pending]
    by_pair: dict[str, list[Decision]] = {}
    for decision in decisions:
        if decision.outcome == PAIR:
            by_pair.setdefault(decision.pair_key or "", []).append(decision)
    for key, candidates in by_pair.items():
        holder = known.pairs.get(key)
        ordered = sorted(candidates, key=lambda d: newest_first(d.record), reverse=True)
        if holder and key in known.empty_pairs and ordered[0].record.last_message_at is not None:
            # A channel with history is never the duplicate of an empty one: it takes the pair over.
            ordered[0].displaces, holder = holder, None
        winner = holder or ordered[0].record.channel_id
        for decision in ordered:
            if decision.record.channel_id == winner:
                continue
            decision.outcome, decision.winner = DUPLICATE, winner
            decision.reason = (
                f"the pair already has conversation {winner}"
                if holder
                else f"older than {winner}, the pair's newest channel"
            )
    return decisions


def counts(decisions: Iterable[Decision]) -> Mapping[str, int]:
    """Decisions per outcome."""
    found: dict[str, int] = {PAIR: 0, GROUP: 0, DUPLICATE: 0, SKIPPED: 0}
    for decision in decisions:
        found[decision.outcome] += 1
    return found
