"""The conversation list of one profile: newest activity first, searchable, in a constant number of queries.

`list_conversations` returns a `ConversationPage`: the page's conversations as the statement's flat rows (a
conversation's columns, then one participant with its directory row; the positions below), grouped per conversation
with the participants in the app's order. The API renders it (api/presenters.py) without a copy into other objects:
a page is 20 to 100 conversations with all their participants, and this is the route the app calls most.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    exists,
    func,
    literal,
    not_,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from onecrew_chat.driver_reads import DriverRead
from onecrew_chat.errors import BadRequest
from onecrew_chat.identity import Identity, Kind
from onecrew_chat.models import Company, Conversation, ConversationParticipant, ProfileConversationCount, User

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_SEARCH = 255
# Far beyond any real list, and small enough that page * limit is an offset every database takes.
MAX_PAGE = 1_000_000


@dataclass(frozen=True)
class PageRequest:
    """Validated list parameters."""

    page: int = 1
    limit: int = DEFAULT_LIMIT
    search: str | None = None

    @classmethod
    def parse(cls, page: str | None, limit: str | None, search: str | None) -> PageRequest:
        """400 for a page outside 1..1,000,000 or a limit outside 1..100; an empty search means no search."""
        page_n = _positive_int(page, "page", 1)
        if page_n > MAX_PAGE:
            raise BadRequest(f"page must be between 1 and {MAX_PAGE}, got {str(page_n)[:32]}", code="invalid_page")
        limit_n = _positive_int(limit, "limit", DEFAULT_LIMIT)
        if limit_n > MAX_LIMIT:
            raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}, got {limit_n}", code="invalid_limit")
        term = (search or "").strip() or None
        if term is not None and len(term) > MAX_SEARCH:
            raise BadRequest(f"search must be at most {MAX_SEARCH} characters", code="invalid_search")
        if term is not None and "\x00" in term:  # no name holds one, and PostgreSQL refuses it in a query
            raise BadRequest("search must not contain the NUL character", code="invalid_search")
        return cls(page_n, limit_n, term)


def _positive_int(raw: str | None, name: str, default: int) -> int:
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise BadRequest(f"{name} must be a positive integer, got {raw[:32]!r}", code=f"invalid_{name}") from None
    if value < 1:
        raise BadRequest(f"{name} must be a positive integer, got {value}", code=f"invalid_{name}")
    return value


def _like_pattern(term: str) -> str:
    escaped = term.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# The profile, the page and the search term are bound per request: each statement is built once, at import.
_KIND = bindparam("kind", type_=String)
_ENTITY = bindparam("entity", type_=String)
_PATTERN = bindparam("pattern", type_=String)


def _search_clause() -> ColumnElement[bool]:
    """The conversation's name, or another participant's user or company name, contains the term."""
    other = aliased(ConversationParticipant)
    user_named = exists().where(User.id == other.participant_id, func.lower(User.name).like(_PATTERN, escape="\\"))
    company_named = exists().where(
        Company.id == other.participant_id, func.lower(Company.name).like(_PATTERN, escape="\\")
    )
    is_self = and_(other.participant_type == _KIND, other.participant_id == _ENTITY)
    participant_named = exists().where(
        other.conversation_id == Conversation.id,
        not_(is_self),
        or_(
            and_(other.participant_type == Kind.USER.value, user_named),
            and_(other.participant_type == Kind.COMPANY.value, company_named),
        ),
    )
    return or_(func.lower(Conversation.name).like(_PATTERN, escape="\\"), participant_named)


def _mine() -> ColumnElement[bool]:
    """The profile's participant rows (a prefix of ix_conversation_participant_activity)."""
    return and_(ConversationParticipant.participant_type == _KIND, ConversationParticipant.participant_id == _ENTITY)


def _total() -> ColumnElement[Any]:
    """The profile's conversations, not deleted, without a pass over them.

    profile_conversation_count holds the profile's participant rows (triggers add and subtract on every insert
    and delete, whoever writes; a profile takes part in a conversation at most once), less the rows of its
    soft-deleted conversations, driven by the partial index of deleted conversations (few) and probing the
    unique (conversation_id, participant_type, participant_id) index for each.
    """
    counted = select(ProfileConversationCount.conversations).where(
        ProfileConversationCount.participant_type == _KIND,
        ProfileConversationCount.participant_id == _ENTITY,
    )
    # A scalar subquery with LIMIT (not EXISTS, which a planner may turn into a join driven by the profile's
    # 50,000 rows when statistics are missing) keeps the deleted conversations the driving side.
    takes_part = (
        select(literal(1))
        .where(ConversationParticipant.conversation_id == Conversation.id, _mine())
        .limit(1)
        .scalar_subquery()
    )
    deleted = (
        select(func.count())
        .select_from(Conversation)
        .where(Conversation.deleted_at.is_not(None), takes_part.is_not(None))
    )
    return func.coalesce(counted.scalar_subquery(), 0) - deleted.scalar_subquery()


# A row of the page's statement: a conversation's columns in this order, its total, then one participant with its
# user's and its company's columns (None when the directory does not know it, or for the other kind).
(C_ID, C_CHANNEL_TYPE, C_CHANNEL_ID, C_TYPE, C_NAME, C_BY_TYPE, C_BY_ID, C_STATUS) = range(8)
(C_CREATED, C_UPDATED, C_LAST_AT, C_PREVIEW, TOTAL) = range(8, 13)
(P_ID, P_TYPE, P_ENTITY, P_JOINED, P_READ) = range(13, 18)
(U_ID, U_NAME, U_IMAGE, U_CATEGORY, CO_ID, CO_NAME, CO_LOGO, CO_SUBCATEGORY) = range(18, 26)

_CONVERSATION_COLUMNS = [
    Conversation.id,
    Conversation.channel_type,
    Conversation.channel_id,
    Conversation.conversation_type,
    Conversation.name,
    Conversation.created_by_type,
    Conversation.created_by_id,
    Conversation.chat_status,
    Conversation.created_at,
    Conversation.updated_at,
    Conversation.last_message_at,
    Conversation.last_message_preview,
]


def _page_statement(search: bool) -> Select[Any]:
    """The page's conversations with every participant and its user or company, in one statement.

    The profile's participant rows in ix_conversation_participant_activity order are the page's order
    (activity_at = COALESCE(last_message_at, created_at), kept by triggers): no sort, no pass over the rest. The
    page (a CTE with its total: the counter table, or for a search the count of what matched) is joined to its
    participants and their directory rows; a participant the directory does not know has null directory columns.
    """
    page = (
        select(*_CONVERSATION_COLUMNS, ConversationParticipant.activity_at)
        .select_from(ConversationParticipant)
        .join(Conversation, Conversation.id == ConversationParticipant.conversation_id)
        .where(_mine(), Conversation.deleted_at.is_(None))
        .order_by(ConversationParticipant.activity_at.desc(), ConversationParticipant.conversation_id.desc())
        .limit(bindparam("limit", type_=Integer))
        .offset(bindparam("offset", type_=Integer))
    )
    if search:  # a search reads every conversation of the profile anyway: count what matched
        page = page.where(_search_clause()).add_columns(func.count().over().label("total"))
    else:
        page = page.add_columns(_total().label("total"))
    listed = page.cte("page")
    member = aliased(ConversationParticipant)
    return (
        select(
            *(listed.c[column.key] for column in _CONVERSATION_COLUMNS),
            listed.c.total,
            member.id,
            member.participant_type,
            member.participant_id,
            member.joined_at,
            member.last_read_at,
            User.id,
            User.name,
            User.image_url,
            User.category,
            Company.id,
            Company.name,
            Company.logo_url,
            Company.subcategory,
        )
        .select_from(listed)
        .join(member, member.conversation_id == listed.c.id)
        .outerjoin(User, and_(member.participant_type == Kind.USER.value, User.id == member.participant_id))
        .outerjoin(Company, and_(member.participant_type == Kind.COMPANY.value, Company.id == member.participant_id))
        .order_by(listed.c.activity_at.desc(), listed.c.id.desc())
    )


# The page is a driver read (driver_reads.py): outside a transaction on PostgreSQL it skips SQLAlchemy's execute.
_PAGE = DriverRead(_page_statement(search=False))
_SEARCH_PAGE = DriverRead(_page_statement(search=True))
_TOTAL = select(_total())
_SEARCH_TOTAL = (
    select(func.count())
    .select_from(ConversationParticipant)
    .join(Conversation, Conversation.id == ConversationParticipant.conversation_id)
    .where(_mine(), Conversation.deleted_at.is_(None), _search_clause())
)


# A conversation of the page: its row (the C_* positions) and one row per participant (P_*, U_*, CO_*), the creator
# first, then by join time, kind and id (the order of read_model.ordered_participants). A plain pair rather than a
# NamedTuple: one is built per conversation on the route the app calls most, and a tuple display costs least.
ListedConversation = tuple[Sequence[Any], list[Sequence[Any]]]


@dataclass(frozen=True, slots=True)
class ConversationPage:
    """One page of the profile's conversations, newest activity first, and where it sits in the whole list."""

    conversations: list[ListedConversation]
    page: int
    limit: int
    total: int

    @property
    def total_pages(self) -> int:
        """How many pages of `limit` the total makes (0 for none)."""
        return math.ceil(self.total / self.limit) if self.total else 0


def _by_conversation(rows: Sequence[Sequence[Any]]) -> list[ListedConversation]:
    """The rows of `_PAGE` (one per participant, a conversation's rows together), one entry per conversation."""
    listed: dict[str, ListedConversation] = {}
    for row in rows:
        found = listed.get(row[C_ID])
        if found is None:
            listed[row[C_ID]] = (row, [row])
        else:
            found[1].append(row)
    for conversation, members in listed.values():
        creator = (conversation[C_BY_TYPE], conversation[C_BY_ID])
        members.sort(key=lambda r: ((r[P_TYPE], r[P_ENTITY]) != creator, r[P_JOINED], r[P_TYPE], r[P_ENTITY]))
    return list(listed.values())


async def list_conversations(session: AsyncSession, identity: Identity, request: PageRequest) -> ConversationPage:
    """The profile's page of conversations and their total (1 query, 2 past the end).

    Without a search a page costs the same at 50,000 conversations as at 50 (an index range scan of `limit`
    rows plus `offset`, and two index-only counts); a search filters every conversation of the profile.
    """
    params: dict[str, Any] = {
        "kind": identity.kind.value,
        "entity": identity.entity_id,
        "limit": request.limit,
        "offset": (request.page - 1) * request.limit,
    }
    if request.search:
        params["pattern"] = _like_pattern(request.search)
    rows = await (_SEARCH_PAGE if request.search else _PAGE).rows(session, params)
    if rows:
        total = int(rows[0][TOTAL])
    else:  # past the end: the count alone
        total = int(await session.scalar(_SEARCH_TOTAL if request.search else _TOTAL, params) or 0)
    return ConversationPage(_by_conversation(rows), request.page, request.limit, total)
