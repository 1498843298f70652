"""Turn a create request into a plan: who acts, who the others are (checked against the directory), which ids."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from onecrew_chat.accounts.access import acting_identity, parse_company_id
from onecrew_chat.config import Settings, UnknownParticipants
from onecrew_chat.conversations.request import CreateConversationRequest
from onecrew_chat.errors import NotFound, UnknownIdentity, Unprocessable, not_a_member
from onecrew_chat.identity import ConversationType, Identity, Kind, group_channel_id, pair_channel_id, pair_key
from onecrew_chat.logging import get_logger
from onecrew_chat.sync.participants import Directory, Profile, load_directory

log = get_logger(__name__)


@dataclass
class Plan:
    """A validated create request: the acting identity first, the others resolved, the ids to use."""

    conversation_type: ConversationType
    acting: Identity
    others: list[Identity]
    directory: Directory
    placeholders: frozenset[Identity]
    name: str | None
    channel_id: str
    pair_key: str | None

    @property
    def identities(self) -> list[Identity]:
        """Every participant, acting identity first."""
        return [self.acting, *self.others]

    def profiles(self) -> dict[Identity, Profile]:
        """Stream profiles of the participants the directory knows (placeholders have none)."""
        found = {}
        for identity in self.identities:
            profile = self.directory.profile(identity)
            if profile is not None:
                found[identity] = profile
        return found


def expected_other_kind(conversation_type: ConversationType, acting: Identity) -> Kind | None:
    """The kind the other party of a pair must have (None for groups); 422 when the acting kind cannot start it."""
    if conversation_type is ConversationType.USER_USER:
        if acting.kind is not Kind.USER:
            raise Unprocessable(
                "user_user conversations are between two users; leave out company_id, "
                "or use user_company or company_company to write as a company",
                code="conversation_type_mismatch",
            )
        return Kind.USER
    if conversation_type is ConversationType.COMPANY_COMPANY:
        if acting.kind is not Kind.COMPANY:
            raise Unprocessable(
                "company_company conversations need company_id: the company you write as",
                code="conversation_type_mismatch",
            )
        return Kind.COMPANY
    if conversation_type is ConversationType.USER_COMPANY:
        return Kind.COMPANY if acting.kind is Kind.USER else Kind.USER
    return None


async def _pair_other(
    session: AsyncSession,
    plan_type: ConversationType,
    acting: Identity,
    other_id: str,
    directory: Directory,
    placeholder: bool,
) -> tuple[Identity, bool]:
    """The other party of a pair: found under the kind the type implies, else 422 (another kind), placeholder or 404."""
    expected = expected_other_kind(plan_type, acting)
    assert expected is not None, "a pair's type names the other participant's kind"
    if other_id in (directory.users if expected is Kind.USER else directory.companies):
        return Identity(expected, other_id), False
    # Not where it should be: look in the other table only now, to tell a wrong kind (422) from an unknown id (404).
    wrong = [other_id]
    directory.update(await load_directory(session, *((wrong, []) if expected is Kind.COMPANY else ([], wrong))))
    kinds = directory.kinds_of(other_id)
    if kinds:
        actual = next(iter(kinds)).value
        raise Unprocessable(
            f"Participant {other_id} is a {actual}, but a {plan_type.value} conversation started as a "
            f"{acting.kind.value} needs a {expected.value} as the other participant",
            code="participant_kind_mismatch",
        )
    if placeholder:
        return Identity(expected, other_id), True
    raise UnknownIdentity([other_id])


def _group_members(ids: list[str], directory: Directory) -> list[Identity]:
    """Each listed id as the one kind the directory knows it by; 422 when it is both, 404 naming the unknown ones."""
    members, unknown = [], []
    for entity_id in ids:
        kinds = directory.kinds_of(entity_id)
        if len(kinds) > 1:
            raise Unprocessable(
                f"Participant {entity_id} is both a user and a company; a group cannot tell which one is meant",
                code="participant_ambiguous",
            )
        if not kinds:
            unknown.append(entity_id)
        else:
            members.append(Identity(next(iter(kinds)), entity_id))
    if unknown:
        # Groups never get placeholders: nothing says whether an unknown id is a user or a company.
        raise UnknownIdentity(unknown)
    return members


def _others(ctype: ConversationType, acting: Identity, participant_ids: list[str]) -> tuple[list[str], Kind | None]:
    """The other participants' ids and, for a pair, the kind the other must have; 422 when the request cannot be."""
    others_ids = [i for i in participant_ids if i != acting.entity_id]
    if not others_ids:
        raise Unprocessable(
            "participant_ids must name at least one participant other than yourself", code="no_other_participant"
        )
    is_pair = ctype is not ConversationType.GROUP
    other_kind = expected_other_kind(ctype, acting) if is_pair else None
    if is_pair and len(others_ids) > 1:
        raise Unprocessable(
            f"{ctype.value} conversations have exactly one other participant; got {len(others_ids)}",
            code="too_many_participants",
        )
    return others_ids, other_kind


async def plan_conversation(
    session: AsyncSession, settings: Settings, user_id: str, request: CreateConversationRequest
) -> Plan:
    """Check who acts (403), who takes part (404/422) and derive the channel id: one query per table."""
    started = time.perf_counter()
    # Acting as a company is checked in the directory's query (403 before anything else is said, as on its own).
    company_id = parse_company_id(request.company_id)
    acting = Identity.company(company_id) if company_id else Identity.user(user_id)
    ctype = request.conversation_type
    try:
        others_ids, other_kind = _others(ctype, acting, request.participant_ids)
    except Unprocessable:
        if company_id is not None:
            await acting_identity(session, user_id, company_id)  # a 403 comes first
        raise
    is_pair = ctype is not ConversationType.GROUP
    # A pair's other party is looked up under the kind its type implies (the other table only if it is not
    # there); a group's under both.
    directory = await load_directory(
        session,
        [
            *([acting.entity_id] if acting.kind is Kind.USER else []),
            *(others_ids if other_kind is not Kind.COMPANY else []),
        ],
        [
            *([acting.entity_id] if acting.kind is Kind.COMPANY else []),
            *(others_ids if other_kind is not Kind.USER else []),
        ],
        with_mirror=True,
        member=(user_id, company_id) if company_id else None,
    )
    if company_id is not None and not directory.acting_member:
        raise not_a_member()
    placeholder_ok = settings.unknown_participants is UnknownParticipants.PLACEHOLDER
    placeholders: set[Identity] = set()
    if directory.profile(acting) is None:
        if not placeholder_ok:
            raise NotFound(
                f"Your {acting.kind.value} profile {acting.entity_id} is not in the chat directory yet",
                code="caller_not_found",
            )
        placeholders.add(acting)
    if is_pair:
        other, is_placeholder = await _pair_other(session, ctype, acting, others_ids[0], directory, placeholder_ok)
        if is_placeholder:
            placeholders.add(other)
        others = [other]
        channel_id, key = pair_channel_id(ctype, acting, other), pair_key(acting, other)
    else:
        others = _group_members(others_ids, directory)
        channel_id, key = group_channel_id(), None
    plan = Plan(
        conversation_type=ctype,
        acting=acting,
        others=others,
        directory=directory,
        placeholders=frozenset(placeholders),
        name=request.name if not is_pair else None,  # pairs never get a name: the app shows the other party's
        channel_id=channel_id,
        pair_key=key,
    )
    log.info(
        "conversation.resolved",
        conversation_type=ctype.value,
        acting=acting.stream_id,
        participants=len(plan.identities),
        placeholders=len(placeholders),
        channel_id=channel_id,
        ms=round((time.perf_counter() - started) * 1000, 2),
    )
    return plan
