"""Who the participants are: directory rows and Stream profiles, loaded in one query per table."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from onecrew_chat.identity import Identity, Kind
from onecrew_chat.models import Company, Conversation, StreamIdentity, User

PLACEHOLDER_NAMES = {Kind.USER: "OneCrew user", Kind.COMPANY: "OneCrew company"}
_NIL = "00000000-0000-0000-0000-000000000000"


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


def user_profile(user: User) -> Profile:
    """The Stream profile of a OneCrew user (image = image_url)."""
    return Profile(Identity.user(user.id), user.name, user.image_url or None, version=user.updated_at)


def company_profile(company: Company) -> Profile:
    """The Stream profile of a OneCrew company (image = logo_url)."""
    return Profile(Identity.company(company.id), company.name, company.logo_url or None, version=company.updated_at)


@dataclass
class Directory:
    """Directory rows loaded for a request, keyed by uuid."""

    users: dict[str, User] = field(default_factory=dict)
    companies: dict[str, Company] = field(default_factory=dict)
    # With load_directory(with_mirror=True): the mirror row (None: no row) of every user and company loaded.
    mirror: dict[str, StreamIdentity | None] = field(default_factory=dict)

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


def _statements(model: type[User] | type[Company], kind: Kind) -> tuple[Select[Any], Select[Any]]:
    """Rows of one table by id (an expanding `ids` parameter): alone, and with their mirror rows joined on.

    Built once per table: a load only binds its ids. The mirror rows are read with populate_existing, so a row
    this session loaded before is read again (as load_mirror does).
    """
    alone: Select[Any] = select(model).where(model.id.in_(bindparam("ids", expanding=True)))
    stream_id = literal(stream_id_prefix(kind)) + model.id
    joined: Select[Any] = (
        alone.add_columns(StreamIdentity)
        .outerjoin(StreamIdentity, StreamIdentity.stream_id == stream_id)
        .execution_options(populate_existing=True)
    )
    return alone, joined


_STATEMENTS = {User: _statements(User, Kind.USER), Company: _statements(Company, Kind.COMPANY)}


async def _load(
    session: AsyncSession,
    model: type[User] | type[Company],
    kind: Kind,
    ids: set[str],
    directory: Directory,
    with_mirror: bool,
) -> dict[str, Any]:
    """Rows of one directory table by id (one query), with their mirror rows joined on when asked."""
    if not ids:
        return {}
    alone, joined = _STATEMENTS[model]
    wanted = {"ids": sorted(ids)}
    if not with_mirror:
        return {row.id: row for row in await session.scalars(alone, wanted)}
    rows: dict[str, Any] = {}
    for row, mirrored in await session.execute(joined, wanted):
        rows[row.id] = row
        directory.mirror[Identity(kind, row.id).stream_id] = mirrored
    return rows


async def load_directory(
    session: AsyncSession, user_ids: Iterable[str] = (), company_ids: Iterable[str] = (), *, with_mirror: bool = False
) -> Directory:
    """Users and companies by id: at most one query per table, whatever the count (mirror rows joined on if asked)."""
    directory = Directory()
    directory.users = await _load(session, User, Kind.USER, set(user_ids), directory, with_mirror)
    directory.companies = await _load(session, Company, Kind.COMPANY, set(company_ids), directory, with_mirror)
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
