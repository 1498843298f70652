"""Who the participants are: directory rows and Stream profiles, loaded in one query per table."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, String, and_, any_, bindparam, literal, null, or_, select, union_all
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from onecrew_chat.driver_reads import DriverRead
from onecrew_chat.identity import Identity, Kind
from onecrew_chat.models import Company, CompanyMember, Conversation, StreamIdentity, User

PLACEHOLDER_NAMES = {Kind.USER: "OneCrew user", Kind.COMPANY: "OneCrew company"}
_NIL = "00000000-0000-0000-0000-000000000000"


ACTING_ROLES = ("owner", "admin")
ACCEPTED = "accepted"


def acting_memberships(user_id: Any) -> ColumnElement[bool]:
    """The memberships through which `user_id` (a value or a bind parameter) may act as its company: accepted owner
    or admin. A company's channel members and acting as a company (accounts.access) share it. The roles are one
    comparison each, not an expanding IN, so that the statement compiles once in full (driver_reads.py)."""
    return and_(
        CompanyMember.user_id == user_id,
        or_(*(CompanyMember.role == role for role in ACTING_ROLES)),
        CompanyMember.invitation_status == ACCEPTED,
    )


@dataclass(frozen=True)
class Profile:
    """What Stream should hold for an identity: name, image, role user, custom onecrew_kind."""

    identity: Identity
    name: str
    image: str | None
    placeholder: bool = False
    # The directory row's updated_at when this profile was read (None for placeholders): the mirror never lets an
    # older profile replace a newer one.
    version: datetime | None = field(default=None, compare=False)

    @property
    def stream_id(self) -> str:
        """The identity's Stream user id."""
        return self.identity.stream_id

    @property
    def custom(self) -> dict[str, Any]:
        """Custom Stream fields (a placeholder says so, so that it can be found and healed)."""
        custom: dict[str, Any] = {"onecrew_kind": self.identity.kind.value}
        if self.placeholder:
            custom["onecrew_placeholder"] = True
        return custom

    @property
    def profile_hash(self) -> str:
        """sha256 over exactly what is sent to Stream; a different hash means the mirror is stale."""
        payload = {"name": self.name, "image": self.image, "role": "user", "custom": self.custom}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    @classmethod
    def placeholder_for(cls, identity: Identity) -> Profile:
        """A minimal profile for an id the directory does not know yet (policy `placeholder`)."""
        return cls(identity, PLACEHOLDER_NAMES[identity.kind], None, placeholder=True)


def user_profile(user: DirectoryUser) -> Profile:
    """The Stream profile of a OneCrew user (image = image_url)."""
    return Profile(Identity.user(user.id), user.name, user.image_url or None, version=user.updated_at)


def company_profile(company: DirectoryCompany) -> Profile:
    """The Stream profile of a OneCrew company (image = logo_url)."""
    return Profile(Identity.company(company.id), company.name, company.logo_url or None, version=company.updated_at)


@dataclass
class Directory:
    """Directory rows loaded for a request, keyed by uuid."""

    users: dict[str, DirectoryUser] = field(default_factory=dict)
    companies: dict[str, DirectoryCompany] = field(default_factory=dict)
    # With load_directory(with_mirror=True): the mirror row (None: no row) of every user and company loaded (a
    # MirrorRow, or a StreamIdentity read by the mirror).
    mirror: dict[str, StreamIdentity | None] = field(default_factory=dict)

    # With load_directory(member=...): the user may act as the company (an accepted owner or admin).
    acting_member: bool = False

    def kinds_of(self, entity_id: str) -> set[Kind]:
        """The kinds under which this uuid exists (empty when unknown, two when ambiguous)."""
        kinds = set()
        if entity_id in self.users:
            kinds.add(Kind.USER)
        if entity_id in self.companies:
            kinds.add(Kind.COMPANY)
        return kinds

    def profile(self, identity: Identity) -> Profile | None:
        """The identity's profile, or None when the directory has no such row."""
        if identity.kind is Kind.USER:
            user = self.users.get(identity.entity_id)
            return user_profile(user) if user else None
        company = self.companies.get(identity.entity_id)
        return company_profile(company) if company else None

    def update(self, other: Directory) -> None:
        """Add the rows another load found."""
        self.users.update(other.users)
        self.companies.update(other.companies)
        self.mirror.update(other.mirror)


def stream_id_prefix(kind: Kind) -> str:
    """What a kind's Stream ids start with (`onecrew_user_`), derived from the one module that builds them."""
    return Identity(kind, _NIL).stream_id.removesuffix(_NIL)


@dataclass(frozen=True)
class DirectoryUser:
    """The columns of a user row that profiles and the app's JSON read (stands in for a User)."""

    id: str
    name: str
    image_url: str | None
    category: str | None
    updated_at: datetime


@dataclass(frozen=True)
class DirectoryCompany:
    """The columns of a company row that profiles and the app's JSON read (stands in for a Company)."""

    id: str
    name: str
    logo_url: str | None
    subcategory: str | None
    updated_at: datetime


@dataclass(frozen=True)
class MirrorRow:
    """The columns of a mirror row that freshness checks and repairs read (stands in for a StreamIdentity)."""

    stream_id: str
    profile_hash: str
    placeholder: bool


def _rows_of(model: type[User] | type[Company], kind: Kind, ids: str, *, array: bool) -> Any:
    """One table's rows by id in the union's columns, its mirror row joined on: ids as one array parameter
    (`= ANY`, PostgreSQL) or as an expanding `IN` (any database)."""
    image, extra = (User.image_url, User.category) if model is User else (Company.logo_url, Company.subcategory)
    stream_id = literal(stream_id_prefix(kind)) + model.id
    return (
        select(
            literal(kind.value).label("kind"),
            model.id,
            model.name,
            image.label("image"),
            extra.label("extra"),
            model.updated_at,
            StreamIdentity.stream_id.label("mirror_id"),
            StreamIdentity.profile_hash,
            StreamIdentity.placeholder,
        )
        .outerjoin(StreamIdentity, StreamIdentity.stream_id == stream_id)
        .where(
            model.id == any_(bindparam(ids, type_=ARRAY(String)))
            if array
            else model.id.in_(bindparam(ids, expanding=True))
        )
    )


_MEMBER = "member"


def _membership() -> Any:
    """The acting membership (accepted owner or admin of the company) as a row of the union: kind "member"."""
    return select(
        literal(_MEMBER).label("kind"),
        CompanyMember.company_id,
        *(null() for _ in range(7)),
    ).where(acting_memberships(bindparam("member_user_id")), CompanyMember.company_id == bindparam("member_company_id"))


def _union(wanted: tuple[bool, ...], *, array: bool) -> Any:
    """One UNION ALL of the parts asked (users?, companies?, membership?)."""
    parts = (
        _rows_of(User, Kind.USER, "user_ids", array=array),
        _rows_of(Company, Kind.COMPANY, "company_ids", array=array),
        _membership(),
    )
    chosen = [part for part, asked in zip(parts, wanted, strict=True) if asked]
    return chosen[0] if len(chosen) == 1 else union_all(*chosen)


# Built once, by (users?, companies?, membership?), as reads sent on the driver where they can be.
_STATEMENTS = {
    wanted: DriverRead(_union(wanted, array=True), _union(wanted, array=False))
    for wanted in itertools.product((False, True), repeat=3)
    if any(wanted)
}


async def load_directory(
    session: AsyncSession,
    user_ids: Iterable[str] = (),
    company_ids: Iterable[str] = (),
    *,
    with_mirror: bool = False,
    member: tuple[str, str] | None = None,
) -> Directory:
    """Users and companies by id in one query, whatever the count (their mirror rows too, kept when asked).

    `member` = (user id, company id) also asks, in the same query, whether the user may act as the company
    (`Directory.acting_member`; access.can_act_as_company is the same check on its own).
    """
    directory = Directory()
    users, companies = sorted(set(user_ids)), sorted(set(company_ids))
    statement = _STATEMENTS.get((bool(users), bool(companies), member is not None))
    if statement is None:
        return directory
    parameters: dict[str, Any] = {"user_ids": users, "company_ids": companies}
    if member is not None:
        parameters["member_user_id"], parameters["member_company_id"] = member
    rows = await statement.rows(session, parameters)
    user_kind = Kind.USER.value
    for kind, entity_id, name, image, extra, updated_at, mirror_id, profile_hash, placeholder in rows:
        if kind == _MEMBER:
            directory.acting_member = True
            continue
        if kind == user_kind:
            directory.users[entity_id] = DirectoryUser(entity_id, name, image, extra, updated_at)
            identity = Identity(Kind.USER, entity_id)
        else:
            directory.companies[entity_id] = DirectoryCompany(entity_id, name, image, extra, updated_at)
            identity = Identity(Kind.COMPANY, entity_id)
        if with_mirror:
            mirrored = MirrorRow(mirror_id, profile_hash, placeholder) if mirror_id is not None else None
            directory.mirror[identity.stream_id] = cast(StreamIdentity | None, mirrored)
    return directory


async def load_directory_for(session: AsyncSession, conversations: Iterable[Conversation]) -> Directory:
    """The users and companies taking part in these conversations (participants must be loaded)."""
    user_ids: set[str] = set()
    company_ids: set[str] = set()
    for conversation in conversations:
        for participant in conversation.participants:
            (user_ids if participant.participant_type == Kind.USER.value else company_ids).add(
                participant.participant_id
            )
    return await load_directory(session, user_ids, company_ids)


async def load_profiles(session: AsyncSession, identities: Iterable[Identity]) -> dict[Identity, Profile]:
    """Profiles of the identities the directory knows (one query per table); unknown ones are left out."""
    wanted = list(dict.fromkeys(identities))
    directory = await load_directory(
        session,
        (i.entity_id for i in wanted if i.kind is Kind.USER),
        (i.entity_id for i in wanted if i.kind is Kind.COMPANY),
    )
    profiles = {}
    for identity in wanted:
        profile = directory.profile(identity)
        if profile is not None:
            profiles[identity] = profile
    return profiles
