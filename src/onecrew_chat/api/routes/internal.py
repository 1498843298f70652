"""The internal directory API by which the main OneCrew backend keeps users, companies and members current."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter
from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints
from sqlalchemy.ext.asyncio import AsyncSession

from onecrew_chat import directory
from onecrew_chat.api.deps import ServiceCaller, SessionDep
from onecrew_chat.api.internal_schemas import (
    CompanyRecordEnvelope,
    DeletedEnvelope,
    MemberDeletedEnvelope,
    MemberRecordEnvelope,
    UserRecordEnvelope,
)
from onecrew_chat.errors import Unprocessable
from onecrew_chat.identity import normalize_uuid

router = APIRouter(prefix="/api/internal", tags=["internal"])


def _no_nul(value: str) -> str:
    # PostgreSQL cannot store the NUL character in text; without this it would be a 500 there (and kept on SQLite).
    if "\x00" in value:
        raise ValueError("must not contain the NUL character (\\u0000)")
    return value


def _text(max_length: int, *, min_length: int = 0):
    """A stripped string of at most `max_length` characters that every database can store."""
    return Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=min_length, max_length=max_length), AfterValidator(_no_nul)
    ]


Name = _text(255, min_length=1)
Url = _text(2048)


class _Body(BaseModel):
    # The main backend may send more fields than we keep; they are ignored rather than refused.
    model_config = ConfigDict(extra="ignore")


class UserIn(_Body):
    """PUT /api/internal/users/{id}."""

    name: Name
    image_url: Url | None = None
    category: _text(32) | None = None


class CompanyIn(_Body):
    """PUT /api/internal/companies/{id}."""

    name: Name
    logo_url: Url | None = None
    subcategory: _text(64) | None = None


class MemberIn(_Body):
    """PUT /api/internal/companies/{id}/members/{user_id}."""

    role: Literal["owner", "admin", "manager", "member"]
    invitation_status: Literal["pending", "accepted", "rejected"]


def _uuid(value: str, what: str) -> str:
    try:
        return normalize_uuid(value)
    except ValueError:
        raise Unprocessable(f"{what} must be a uuid, got {value[:64]!r}", code="invalid_id") from None


def _ok(data: dict) -> dict:
    return {"success": True, "data": data}


async def _put(session: AsyncSession, party: directory.Party, entity_id: str, body: _Body) -> dict:
    """Upsert a user or company; empty optional fields are stored as absent."""
    entity_id = _uuid(entity_id, f"{party.kind.value} id")
    values = {field: value or None for field, value in body.model_dump().items()}
    result = await directory.upsert_party(session, party, entity_id, values)
    return _ok(directory.party_out(party, result.row) | {"created": result.created})


async def _delete(session: AsyncSession, party: directory.Party, entity_id: str) -> dict:
    """Remove a user or company (and its memberships); `deleted` says whether it was there."""
    entity_id = _uuid(entity_id, f"{party.kind.value} id")
    return _ok({"id": entity_id, "deleted": await directory.delete_party(session, party, entity_id)})


@router.put("/users/{user_id}", response_model=None, responses={200: {"model": UserRecordEnvelope}})
async def put_user(_caller: ServiceCaller, user_id: str, body: UserIn, session: SessionDep) -> dict:
    """Create or update a user (name, image_url, category)."""
    return await _put(session, directory.USER, user_id, body)


@router.delete("/users/{user_id}", response_model=None, responses={200: {"model": DeletedEnvelope}})
async def delete_user(_caller: ServiceCaller, user_id: str, session: SessionDep) -> dict:
    """Remove a user and their memberships from the directory; their conversations stay."""
    return await _delete(session, directory.USER, user_id)


@router.put("/companies/{company_id}", response_model=None, responses={200: {"model": CompanyRecordEnvelope}})
async def put_company(_caller: ServiceCaller, company_id: str, body: CompanyIn, session: SessionDep) -> dict:
    """Create or update a company (name, logo_url, subcategory)."""
    return await _put(session, directory.COMPANY, company_id, body)


@router.delete("/companies/{company_id}", response_model=None, responses={200: {"model": DeletedEnvelope}})
async def delete_company(_caller: ServiceCaller, company_id: str, session: SessionDep) -> dict:
    """Remove a company and its memberships from the directory; its conversations stay."""
    return await _delete(session, directory.COMPANY, company_id)


@router.put(
    "/companies/{company_id}/members/{user_id}", response_model=None, responses={200: {"model": MemberRecordEnvelope}}
)
async def put_member(
    _caller: ServiceCaller, company_id: str, user_id: str, body: MemberIn, session: SessionDep
) -> dict:
    """Create or update a membership (role, invitation_status); 404 for an unknown company or user."""
    result = await directory.upsert_member(
        session, _uuid(company_id, "company id"), _uuid(user_id, "user id"),
        role=body.role, invitation_status=body.invitation_status,
    )
    return _ok(directory.member_out(result.row) | {"created": result.created})


@router.delete(
    "/companies/{company_id}/members/{user_id}", response_model=None, responses={200: {"model": MemberDeletedEnvelope}}
)
async def delete_member(_caller: ServiceCaller, company_id: str, user_id: str, session: SessionDep) -> dict:
    """Remove a membership."""
    company_id, user_id = _uuid(company_id, "company id"), _uuid(user_id, "user id")
    deleted = await directory.delete_member(session, company_id, user_id)
    return _ok({"company_id": company_id, "user_id": user_id, "deleted": deleted})
