"""A conversation as the code reads it: one shape whatever it was read from.

- `ConversationView` / `ParticipantView`: what the app's JSON and provisioning read. The ORM row (participants
  loaded) and a `ConversationRecord` have it; `ordered_participants` is the order the app sees them in.
- `ConversationRecord` / `ParticipantRecord`: a conversation held as plain objects. A create builds one and
  inserts it with two Core INSERTs (an ORM flush of a 1,000-member group's rows costs more than everything else
  the create does); its columns are its fields, so they are not listed a second time for the INSERT.
- `Provisionable`: a conversation whose status provisioning records (the ORM row or a record).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy import Select, Table, select

from onecrew_chat.identity import ChatStatus
from onecrew_chat.models import Conversation, ConversationParticipant


class ParticipantView(Protocol):
    """Who takes part, since when, and what they last read."""

    @property
    def id(self) -> str: ...
    @property
    def participant_type(self) -> str: ...
    @property
    def participant_id(self) -> str: ...
    @property
    def joined_at(self) -> datetime: ...
    @property
    def last_read_at(self) -> datetime | None: ...


class ConversationView(Protocol):
    """The columns of a conversation the app's JSON and provisioning read, and its participants."""

    @property
    def id(self) -> str: ...
    @property
    def channel_type(self) -> str: ...
    @property
    def channel_id(self) -> str: ...
    @property
    def conversation_type(self) -> str: ...
    @property
    def name(self) -> str | None: ...
    @property
    def created_by_type(self) -> str: ...
    @property
    def created_by_id(self) -> str: ...
    @property
    def chat_status(self) -> ChatStatus: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def updated_at(self) -> datetime: ...
    @property
    def last_message_at(self) -> datetime | None: ...
    @property
    def last_message_preview(self) -> str | None: ...
    @property
    def participants(self) -> Sequence[ParticipantView]: ...


def ordered_participants(conversation: ConversationView) -> list[ParticipantView]:
    """Participants with the creator first, then by join time, kind and id: the order the app and the channel's
    member list show them in (a stable order)."""
    creator = (conversation.created_by_type, conversation.created_by_id)
    return sorted(
        conversation.participants,
        key=lambda p: (
            (p.participant_type, p.participant_id) != creator,
            p.joined_at,
            p.participant_type,
            p.participant_id,
        ),
    )


def _columns(model: type[Any]) -> frozenset[str]:
    return frozenset(cast(Table, model.__table__).columns.keys())


_PARTICIPANT_COLUMNS = _columns(ConversationParticipant)
_CONVERSATION_COLUMNS = _columns(Conversation)


def _row(record: object, columns: frozenset[str], **more: Any) -> dict[str, Any]:
    """The record's fields that are columns, for an INSERT; a None is left to the column's default."""
    values = {f.name: getattr(record, f.name) for f in fields(cast(Any, record)) if f.name in columns}
    return {name: value for name, value in {**values, **more}.items() if value is not None}


@dataclass
class ParticipantRecord:
    """A participant row as plain values."""

    id: str
    participant_type: str
    participant_id: str
    joined_at: datetime
    created_at: datetime
    last_read_at: datetime | None = None

    def row(self, conversation_id: str) -> dict[str, Any]:
        """The row's columns for the INSERT."""
        return _row(self, _PARTICIPANT_COLUMNS, conversation_id=conversation_id)


@dataclass
class ConversationRecord:
    """A conversation row as plain values, with its participants."""

    id: str
    channel_type: str
    channel_id: str
    conversation_type: str
    name: str | None
    pair_key: str | None
    created_by_type: str
    created_by_id: str
    chat_status: ChatStatus
    created_at: datetime
    updated_at: datetime
    provision_lease_token: str | None = None
    provision_lease_until: datetime | None = None
    stream_verified_at: datetime | None = None
    last_message_at: datetime | None = None
    last_message_preview: str | None = None
    participants: list[ParticipantRecord] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        """The conversation's columns for the INSERT (its participants are rows of their own)."""
        return _row(self, _CONVERSATION_COLUMNS)


Provisionable = Conversation | ConversationRecord

_CONVERSATION_FIELDS = [f.name for f in fields(ConversationRecord) if f.name != "participants"]
_PARTICIPANT_FIELDS = [f.name for f in fields(ParticipantRecord)]


def select_records() -> Select[Any]:
    """SELECT conversations as records (a WHERE is added by the caller): a Core statement, no ORM objects to build,
    one row per participant (the conversation's columns, then the participant's)."""
    conversation = cast(Table, Conversation.__table__)
    participant = cast(Table, ConversationParticipant.__table__)
    return select(
        *(conversation.c[name] for name in _CONVERSATION_FIELDS),
        *(participant.c[name] for name in _PARTICIPANT_FIELDS),
    ).select_from(conversation.outerjoin(participant, participant.c.conversation_id == conversation.c.id))


def records_of(rows: Iterable[Sequence[Any]]) -> list[ConversationRecord]:
    """The conversations (with their participants) of `select_records` rows, in the order they first appear."""
    found: dict[str, ConversationRecord] = {}
    split = len(_CONVERSATION_FIELDS)
    for row in rows:
        record = found.get(row[0])
        if record is None:
            record = found[row[0]] = ConversationRecord(**dict(zip(_CONVERSATION_FIELDS, row[:split], strict=True)))
        if row[split] is not None:  # a conversation with no participant row (never made by a create)
            record.participants.append(ParticipantRecord(*row[split:]))
    return list(found.values())
