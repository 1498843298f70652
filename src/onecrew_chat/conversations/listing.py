"""The conversation list of one profile: newest activity first, searchable, in a constant number of queries."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Row, and_, exists, func, literal, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from onecrew_chat.conversations.serialize import serialize_conversation
from onecrew_chat.errors import BadRequest
from onecrew_chat.identity import ChatStatus, Identity, Kind
from onecrew_chat.models import Company, Conversation, ConversationParticipant, ProfileConversationCount, User
from onecrew_chat.sync.participants import Directory, DirectoryCompany, DirectoryUser

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


def _search_clause(identity: Identity, term: str) -> ColumnElement[bool]:
    """The conversation's name, or another participant's user or company name, contains the term."""
    pattern = _like_pattern(term)
    other = aliased(ConversationParticipant)
    user_named = exists().where(User.id == other.participant_id, func.lower(User.name).like(pattern, escape="\\"))
    company_named = exists().where(
        Company.id == other.participant_id, func.lower(Company.name).like(pattern, escape="\\")
    )
    is_self = and_(other.participant_type == identity.kind.value, other.participant_id == identity.entity_id)
    participant_named = exists().where(
        other.conversation_id == Conversation.id,
        not_(is_self),
        or_(
            and_(other.participant_type == Kind.USER.value, user_named),
            and_(other.participant_type == Kind.COMPANY.value, company_named),
        ),
    )
    return or_(func.lower(Conversation.name).like(pattern, escape="\\"), participant_named)


def _mine(identity: Identity) -> ColumnElement[bool]:
    """The profile's participant rows (a prefix of ix_conversation_participant_activity)."""
    return and_(
        ConversationParticipant.participant_type == identity.kind.value,
        ConversationParticipant.participant_id == identity.entity_id,
    )


def _total(identity: Identity) -> ColumnElement[Any]:
    """The profile's conversations, not deleted, without a pass over them.

    profile_conversation_count holds the profile's participant rows (triggers add and subtract on every insert
    and delete, whoever writes; a profile takes part in a conversation at most once), less the rows of its
    soft-deleted conversations, driven by the partial index of deleted conversations (few) and probing the
    unique (conversation_id, participant_type, participant_id) index for each.
    """
    counted = select(ProfileConversationCount.conversations).where(
        ProfileConversationCount.participant_type == identity.kind.value,
        ProfileConversationCount.participant_id == identity.entity_id,
    )
    # A scalar subquery with LIMIT (not EXISTS, which a planner may turn into a join driven by the profile's
    # 50,000 rows when statistics are missing) keeps the deleted conversations the driving side.
    takes_part = (
        select(literal(1))
        .where(ConversationParticipant.conversation_id == Conversation.id, _mine(identity))
        .limit(1)
        .scalar_subquery()
    )
    deleted = (
        select(func.count())
        .select_from(Conversation)
        .where(Conversation.deleted_at.is_not(None), takes_part.is_not(None))
    )
    return func.coalesce(counted.scalar_subquery(), 0) - deleted.scalar_subquery()


class ListedConversation(NamedTuple):
    """The columns of a conversation that its JSON shows, and its participants: what serialize_conversation reads.

    The list reads plain rows (only these columns, no ORM objects): a page of 100 builds no identity map.
    """

    id: str
    channel_type: str
    channel_id: str
    conversation_type: str
    name: str | None
    created_by_type: str
    created_by_id: str
    chat_status: ChatStatus
    created_at: datetime
    updated_at: datetime
    last_message_at: datetime | None
    last_message_preview: str | None
    participants: list[Row[*tuple[Any, ...]]]


_CONVERSATION_COLUMNS = [getattr(Conversation, name) for name in ListedConversation._fields[:-1]]
_PARTICIPANT_COLUMNS = [
    ConversationParticipant.id,
    ConversationParticipant.conversation_id,
    ConversationParticipant.participant_type,
    ConversationParticipant.participant_id,
    ConversationParticipant.joined_at,
    ConversationParticipant.last_read_at,
]
_USER_COLUMNS = [User.id, User.name, User.image_url, User.category, User.updated_at]
_COMPANY_COLUMNS = [Company.id, Company.name, Company.logo_url, Company.subcategory, Company.updated_at]


async def _with_participants(session: AsyncSession, rows: Sequence[Row[*tuple[Any, ...]]]) -> list[ListedConversation]:
    """The page's conversations with their participant rows (one query)."""
    participants: dict[str, list[Row[*tuple[Any, ...]]]] = {row.id: [] for row in rows}
    if participants:
        query = select(*_PARTICIPANT_COLUMNS).where(ConversationParticipant.conversation_id.in_(list(participants)))
        for participant in await session.execute(query):
            participants[participant.conversation_id].append(participant)
    return [ListedConversation._make((*row[: len(_CONVERSATION_COLUMNS)], participants[row.id])) for row in rows]


async def _directory(session: AsyncSession, conversations: list[ListedConversation]) -> Directory:
    """The users and companies taking part, with the columns their JSON shows (one query per table, none if empty)."""
    ids: dict[str, set[str]] = {Kind.USER.value: set(), Kind.COMPANY.value: set()}
    for conversation in conversations:
        for participant in conversation.participants:
            ids.setdefault(participant.participant_type, set()).add(participant.participant_id)
    directory = Directory()
    if ids[Kind.USER.value]:
        query = select(*_USER_COLUMNS).where(User.id.in_(sorted(ids[Kind.USER.value])))
        directory.users = {
            row.id: DirectoryUser(row.id, row.name, row.image_url, row.category, row.updated_at)
            for row in await session.execute(query)
        }
    if ids[Kind.COMPANY.value]:
        query = select(*_COMPANY_COLUMNS).where(Company.id.in_(sorted(ids[Kind.COMPANY.value])))
        directory.companies = {
            row.id: DirectoryCompany(row.id, row.name, row.logo_url, row.subcategory, row.updated_at)
            for row in await session.execute(query)
        }
    return directory


async def list_conversations(session: AsyncSession, identity: Identity, request: PageRequest) -> dict[str, Any]:
    """`{data: [...], pagination: {page, limit, total, totalPages}}` for the profile (4 queries, 5 past the end).

    Without a search a page costs the same at 50,000 conversations as at 50 (an index range scan of `limit`
    rows plus `offset`, and two index-only counts); a search filters every conversation of the profile.
    """
    # The participant rows of the profile in ix_conversation_participant_activity order are the page's order
    # (activity_at = COALESCE(last_message_at, created_at), kept by triggers): no sort, no pass over the rest.
    page = (
        select(*_CONVERSATION_COLUMNS)
        .select_from(ConversationParticipant)
        .join(Conversation, Conversation.id == ConversationParticipant.conversation_id)
        .where(_mine(identity), Conversation.deleted_at.is_(None))
        .order_by(ConversationParticipant.activity_at.desc(), ConversationParticipant.conversation_id.desc())
        .limit(request.limit)
        .offset((request.page - 1) * request.limit)
    )
    total_column: ColumnElement[Any]
    if request.search:  # a search reads every conversation of the profile anyway: count what matched
        page = page.where(_search_clause(identity, request.search))
        total_column = func.count().over()
    else:
        total_column = _total(identity)
    rows = (await session.execute(page.add_columns(total_column.label("total")))).all()
    if rows:
        total = int(rows[0].total)
    else:  # past the end: the count alone
        counted = select(func.count()).select_from(page.order_by(None).limit(None).offset(None).subquery())
        total = int(await session.scalar(counted if request.search else select(_total(identity))) or 0)
    conversations = await _with_participants(session, rows)
    directory = await _directory(session, conversations)
    return {
        "data": [serialize_conversation(c, directory) for c in conversations],
        "pagination": {
            "page": request.page,
            "limit": request.limit,
            "total": total,
            "totalPages": math.ceil(total / request.limit) if total else 0,
        },
    }
