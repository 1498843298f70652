"""The internal directory API by which the main OneCrew backend keeps users, companies and members current."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy.ext.asyncio import AsyncSession

from onecrew_chat.accounts import directory
from onecrew_chat.accounts.directory_schemas import CompanyIn, DirectoryBody, MemberIn, UserIn
from onecrew_chat.api.deps import ServiceCaller, SessionDep
from onecrew_chat.api.internal_schemas import (
    CompanyRecordEnvelope,
    DeletedEnvelope,
    MemberDeletedEnvelope,
    MemberRecordEnvelope,
    UserRecordEnvelope,
)
from onecrew_chat.api.presenters import member_json, ok, party_json
from onecrew_chat.errors import Unprocessable
from onecrew_chat.identity import normalize_uuid

router = APIRouter(prefix="/api/internal", tags=["internal"])


def _uuid(value: str, what: str) -> str:
    try:
        return normalize_uuid(value)
    except ValueError:
        raise Unprocessable(f"{what} must be a uuid, got {value[:64]!r}", code="invalid_id") from None


async def _put(session: AsyncSession, party: directory.Party, entity_id: str, body: DirectoryBody) -> dict[str, Any]:
    """Upsert a user or company; empty optional fields are stored as absent."""
    entity_id = _uuid(entity_id, f"{party.kind.value} id")
    result = await directory.upsert_party(session, party, entity_id, body.values())
    return ok(party_json(party, result.row) | {"created": result.created})


async def _delete(session: AsyncSession, party: directory.Party, entity_id: str) -> dict[str, Any]:
    """Remove a user or company (and its memberships); `deleted` says whether it was there."""
    entity_id = _uuid(entity_id, f"{party.kind.value} id")
    return ok({"id": entity_id, "deleted": await directory.delete_party(session, party, entity_id)})


@router.put("/users/{user_id}", response_model=None, responses={200: {"model": UserRecordEnvelope}})
async def put_user(_caller: ServiceCaller, user_id: str, body: UserIn, session: SessionDep) -> dict[str, Any]:
    """Create or update a user (name, image_url, category)."""
    return await _put(session, directory.USER, user_id, body)


@router.delete("/users/{user_id}", response_model=None, responses={200: {"model": DeletedEnvelope}})
async def delete_user(_caller: ServiceCaller, user_id: str, session: SessionDep) -> dict[str, Any]:
    """Remove a user and their memberships from the directory; their conversations stay."""
    return await _delete(session, directory.USER, user_id)


@router.put("/companies/{company_id}", response_model=None, responses={200: {"model": CompanyRecordEnvelope}})
async def put_company(_caller: ServiceCaller, company_id: str, body: CompanyIn, session: SessionDep) -> dict[str, Any]:
    """Create or update a company (name, logo_url, subcategory)."""
    return await _put(session, directory.COMPANY, company_id, body)


@router.delete("/companies/{company_id}", response_model=None, responses={200: {"model": DeletedEnvelope}})
async def delete_company(_caller: ServiceCaller, company_id: str, session: SessionDep) -> dict[str, Any]:
    """Remove a company and its memberships from the directory; its conversations stay."""
    return await _delete(session, directory.COMPANY, company_id)


@router.put(
    "/companies/{company_id}/members/{user_id}", response_model=None, responses={200: {"model": MemberRecordEnvelope}}
)
async def put_member(
    _caller: ServiceCaller, company_id: str, user_id: str, body: MemberIn, session: SessionDep
) -> dict[str, Any]:
    """Create or update a membership (role, invitation_status); 404 for an unknown company or user."""
    result = await directory.upsert_member(
        session,
        _uuid(company_id, "company id"),
        _uuid(user_id, "user id"),
        role=body.role,
        invitation_status=body.invitation_status,
    )
    return ok(member_json(result.row) | {"created": result.created})


@router.delete(
    "/companies/{company_id}/members/{user_id}", response_model=None, responses={200: {"model": MemberDeletedEnvelope}}
)
async def delete_member(_caller: ServiceCaller, company_id: str, user_id: str, session: SessionDep) -> dict[str, Any]:
    """Remove a membership."""
    company_id, user_id = _uuid(company_id, "company id"), _uuid(user_id, "user id")
    deleted = await directory.delete_member(session, company_id, user_id)
    return ok({"company_id": company_id, "user_id": user_id, "deleted": deleted})
