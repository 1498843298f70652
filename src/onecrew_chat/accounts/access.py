"""Who a caller may act as: themselves, or a company where they are an accepted owner or admin."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from onecrew_chat.errors import BadRequest, not_a_member
from onecrew_chat.identity import Identity, Kind, normalize_uuid
from onecrew_chat.models import CompanyMember
from onecrew_chat.sync.participants import acting_memberships


async def managed_company_ids(session: AsyncSession, user_id: str) -> list[str]:
    """Companies the user may act as (accepted owner or admin membership)."""
    return list(await session.scalars(select(CompanyMember.company_id).where(acting_memberships(user_id))))


async def can_act_as_company(session: AsyncSession, user_id: str, company_id: str) -> bool:
    """True when the user is an accepted owner or admin of the company."""
    row = await session.scalar(
        select(CompanyMember.company_id).where(acting_memberships(user_id), CompanyMember.company_id == company_id)
    )
    return row is not None


def parse_company_id(company_id: str | None, *, field: str = "company_id") -> str | None:
    """A normalised company uuid, None when absent; 400 when it is not a uuid."""
    if company_id is None or str(company_id).strip() == "":
        return None
    try:
        return normalize_uuid(company_id)
    except (ValueError, AttributeError, TypeError):
        raise BadRequest(f"{field} must be a UUID, got {str(company_id)[:64]!r}", code="invalid_company_id") from None


async def acting_identity(session: AsyncSession, user_id: str, company_id: str | None) -> Identity:
    """The caller's identity, or the company's after checking membership (403 otherwise)."""
    company = parse_company_id(company_id)
    if company is None:
        return Identity.user(user_id)
    if not await can_act_as_company(session, user_id, company):
        raise not_a_member()
    return Identity.company(company)


def requested_identity(user_id: str, profile_type: str | None, company_id: str | None, *, required: bool) -> Identity:
    """Who `profile_type` + `company_id` (token, list, unread-count) name, with 400s for bad ones; no membership check.

    The caller itself needs no database; a company must still pass `may_act_as` (acting_identity_for_profile does both).
    """
    if profile_type is None or profile_type == "":
        if required:
            raise BadRequest("profile_type is required and must be 'user' or 'company'", code="invalid_profile_type")
        profile_type = "company" if company_id else "user"
    if profile_type not in ("user", "company"):
        raise BadRequest(
            f"profile_type must be 'user' or 'company', got {str(profile_type)[:32]!r}", code="invalid_profile_type"
        )
    if profile_type == "user":
        return Identity.user(user_id)
    company = parse_company_id(company_id)
    if company is None:
        raise BadRequest("company_id is required when profile_type is 'company'", code="missing_company_id")
    return Identity.company(company)


async def may_act_as(session: AsyncSession, user_id: str, identity: Identity) -> None:
    """403 unless the user is `identity` or an accepted owner or admin of it (no query for the user themselves)."""
    if identity.kind is Kind.COMPANY and not await can_act_as_company(session, user_id, identity.entity_id):
        raise not_a_member()


async def acting_identity_for_profile(
    session: AsyncSession, user_id: str, profile_type: str | None, company_id: str | None, *, required: bool
) -> Identity:
    """Resolve `profile_type` + `company_id` query parameters (token, list, unread-count) with 400s for bad ones."""
    identity = requested_identity(user_id, profile_type, company_id, required=required)
    await may_act_as(session, user_id, identity)
    return identity
