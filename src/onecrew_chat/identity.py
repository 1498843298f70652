"""Stream ids for OneCrew identities and conversations: the one place that builds or parses them."""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from enum import StrEnum

STREAM_PREFIX = "onecrew_"
CHANNEL_TYPE = "messaging"
PAIR_HASH_HEX = 32
# Read paths accept channel ids of every scheme the app has used (up to ~115 characters): Stream's channel id
# characters, ASCII only. Both patterns are matched whole (`fullmatch`): `$` alone lets an id ending in a newline
# through. The anchors stay for the OpenAPI document, which quotes the pattern.
CHANNEL_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
# Stream user ids are a-z, 0-9, @ _ - (Stream's docs); ours are `onecrew_<kind>_<lowercase uuid>`.
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_STREAM_ID_PATTERN = re.compile(rf"^onecrew_(user|company)_({_UUID})$")


class Kind(StrEnum):
    """What a participant is: a OneCrew user or a OneCrew company."""

    USER = "user"
    COMPANY = "company"


class ConversationType(StrEnum):
    """The conversation types the app sends."""

    USER_USER = "user_user"
    USER_COMPANY = "user_company"
    COMPANY_COMPANY = "company_company"
    GROUP = "group"


class ChatStatus(StrEnum):
    """Where a conversation's Stream channel stands (the `chat_status` column and `chat.status` in the JSON)."""

    PROVISIONING = "provisioning"  # recorded; the channel or some member may not be in Stream yet
    READY = "ready"  # Stream holds the channel (with every member once `stream_verified_at` is set)
    FAILED = "failed"  # the worker gave up (its reason is on the dead outbox row) until it is queued again


PAIR_KINDS: dict[ConversationType, frozenset[Kind] | tuple[Kind, Kind]] = {
    ConversationType.USER_USER: (Kind.USER, Kind.USER),
    ConversationType.USER_COMPANY: (Kind.USER, Kind.COMPANY),
    ConversationType.COMPANY_COMPANY: (Kind.COMPANY, Kind.COMPANY),
}


_CANONICAL_UUID = re.compile(_UUID)


def normalize_uuid(value: str) -> str:
    """The canonical lowercase, hyphenated form of a uuid; ValueError if it is not one."""
    if isinstance(value, str) and _CANONICAL_UUID.fullmatch(value):
        return value  # already canonical (ids read back from the database): what uuid.UUID would print
    return str(uuid.UUID(str(value).strip()))


@dataclass(frozen=True, order=True)
class Identity:
    """A user or company as Stream knows it."""

    kind: Kind
    entity_id: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", Kind(self.kind))
        object.__setattr__(self, "entity_id", normalize_uuid(self.entity_id))

    @property
    def stream_id(self) -> str:
        """`onecrew_user_<uuid>` or `onecrew_company_<uuid>`."""
        return f"{STREAM_PREFIX}{self.kind.value}_{self.entity_id}"

    @classmethod
    def user(cls, entity_id: str) -> Identity:
        """The identity of a OneCrew user."""
        return cls(Kind.USER, entity_id)

    @classmethod
    def company(cls, entity_id: str) -> Identity:
        """The identity of a OneCrew company."""
        return cls(Kind.COMPANY, entity_id)

    @classmethod
    def parse(cls, stream_id: str) -> Identity:
        """Parse a Stream user id built by `stream_id`; ValueError for anything else."""
        match = _STREAM_ID_PATTERN.fullmatch(stream_id or "")
        if not match:
            raise ValueError(f"not a OneCrew Stream user id: {stream_id!r}")
        return cls(Kind(match.group(1)), match.group(2))


def pair_key(a: Identity, b: Identity) -> str:
    """The same key for (a, b) and (b, a): the two Stream ids, sorted."""
    first, second = sorted((a.stream_id, b.stream_id))
    return f"{first}|{second}"


def pair_channel_id(conversation_type: ConversationType | str, a: Identity, b: Identity) -> str:
    """`<conversation_type>-<32 hex of sha256 of the sorted Stream ids>`, the same in both directions."""
    conversation_type = ConversationType(conversation_type)
    digest = hashlib.sha256("|".join(sorted((a.stream_id, b.stream_id))).encode()).hexdigest()
    return f"{conversation_type.value}-{digest[:PAIR_HASH_HEX]}"


def group_channel_id(group_uuid: uuid.UUID | None = None) -> str:
    """`group-<uuid4 hex>` for a new group conversation."""
    return f"group-{(group_uuid or uuid.uuid4()).hex}"


def cid(channel_id: str, channel_type: str = CHANNEL_TYPE) -> str:
    """Stream's `type:id`."""
    return f"{channel_type}:{channel_id}"


def is_valid_channel_id(channel_id: str) -> bool:
    """True for any channel id a read path accepts (every scheme the app has used)."""
    return bool(CHANNEL_ID_PATTERN.fullmatch(channel_id or ""))


def pair_kinds_match(conversation_type: ConversationType, a: Identity, b: Identity) -> bool:
    """True when the two identities' kinds are the ones the pair conversation type names."""
    expected = sorted(k.value for k in PAIR_KINDS[conversation_type])
    return sorted((a.kind.value, b.kind.value)) == expected
