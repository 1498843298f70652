"""PUT /api/internal/users, /companies, /members: up to 1,000 rows at once, one outcome per row, one transaction.

The main OneCrew backend's own syncs send whole pages of its directory here. Every row is validated with
the rules of the per-item PUT; valid rows are written with a few bulk statements, invalid ones come back
`rejected` with the reason, by index, and nothing else in the request is affected by them.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError

from onecrew_chat.accounts.directory_import.batch import FirstOfEachKey, apply_rows
from onecrew_chat.accounts.directory_import.kinds import COMPANIES, MEMBERS, USERS, DirectoryKind, Outcome
from onecrew_chat.api.deps import ServiceCaller, SessionDep
from onecrew_chat.api.openapi import error_responses
from onecrew_chat.api.schemas import ErrorEnvelope
from onecrew_chat.errors import AppError, BadRequest, Conflict
from onecrew_chat.identity import normalize_uuid

router = APIRouter(prefix="/api/internal", tags=["internal"])

MAX_ROWS = 1000


class TooManyRows(AppError):
    """More rows than one bulk request takes (413)."""

    status_code = 413
    code = "too_many_rows"


class RowResult(BaseModel):
    """What became of the row at `index`."""

    index: int
    outcome: Literal["created", "updated", "unchanged", "rejected"]
    error: str | None = Field(description="Why the row was rejected (null otherwise)")


class PartyResult(RowResult):
    """A user's or company's outcome; `id` is the normalised uuid (or the value sent, when it is not one)."""

    id: str | None
    identity_sync_queued: bool = Field(description="A Stream profile update was queued (Stream knows this identity)")


class MemberResult(RowResult):
    """A membership's outcome."""

    company_id: str | None
    user_id: str | None


class BulkCounts(BaseModel):
    """How many rows had each outcome."""

    created: int
    updated: int
    unchanged: int
    rejected: int


class PartyBulkOut(BulkCounts):
    """Counts and one result per user or company, in the order sent."""

    results: list[PartyResult]


class MemberBulkOut(BulkCounts):
    """Counts and one result per membership, in the order sent."""

    results: list[MemberResult]


class PartyBulkEnvelope(BaseModel):
    """`{success: true, data: {created, updated, unchanged, rejected, results}}`."""

    success: Literal[True] = True
    data: PartyBulkOut


class MemberBulkEnvelope(BaseModel):
    """`{success: true, data: {created, updated, unchanged, rejected, results}}`."""

    success: Literal[True] = True
    data: MemberBulkOut


def _body_doc(kind: DirectoryKind) -> dict[str, Any]:
    fields = ", ".join(kind.columns)
    schema = {
        "type": "array",
        "description": f"Up to {MAX_ROWS:,} {kind.name} ({fields}); each row is validated on its own (413 beyond)",
        "items": {"type": "object", "description": f"{fields}, as the per-item PUT takes them"},
    }
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


async def _rows(request: Request, kind: DirectoryKind) -> list[dict[str, Any]]:
    """The body as a list of at most MAX_ROWS objects; 400 or 413 with words otherwise."""
    raw = await request.body()
    what = f"a JSON array of up to {MAX_ROWS:,} {kind.name} ({', '.join(kind.columns)})"
    if not raw.strip():
        raise BadRequest(f"Request body is empty; send {what}", code="invalid_json")
    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadRequest("Request body is not valid JSON", code="invalid_json") from None
    if not isinstance(payload, list):
        raise BadRequest(f"Request body must be {what}", code="not_a_list")
    if len(payload) > MAX_ROWS:
        raise TooManyRows(f"Request body has {len(payload):,} rows; at most {MAX_ROWS:,} are taken at once: split it")
    for index, row in enumerate(payload):
        if not isinstance(row, dict):
            raise BadRequest(f"Row {index} is not a JSON object; every row must be an object", code="not_an_object")
    return payload


def _key_value(row: dict[str, Any], field: str) -> str | None:
    value = row.get(field)
    if not isinstance(value, str):
        return None
    try:
        return normalize_uuid(value)
    except ValueError:
        return value[:64]


def _result(kind: DirectoryKind, index: int, row: dict[str, Any], outcome: Outcome) -> dict[str, Any]:
    result: dict[str, Any] = {"index": index, "outcome": outcome.status, "error": outcome.error}
    result.update({field: _key_value(row, field) for field in kind.key_fields})
    if kind.party is not None:
        result["identity_sync_queued"] = outcome.sync_queued
    return result


async def _put_many(request: Request, session: SessionDep, kind: DirectoryKind) -> dict[str, Any]:
    rows = await _rows(request, kind)
    try:
        outcomes = await apply_rows(session, kind, rows, range(len(rows)), FirstOfEachKey(kind, "row"))
    except IntegrityError:  # a company or user deleted by a concurrent request after our check
        raise Conflict("A company or user was deleted while this batch was written; send it again") from None
    counts = dict.fromkeys(("created", "updated", "unchanged", "rejected"), 0)
    for outcome in outcomes:
        counts[outcome.status] += 1
    results = [
        _result(kind, index, row, outcome) for index, (row, outcome) in enumerate(zip(rows, outcomes, strict=True))
    ]
    return {"success": True, "data": {**counts, "results": results}}


_RACE = {409: {"model": ErrorEnvelope, "description": "A company or user was deleted meanwhile; send the batch again"}}
_ERRORS = error_responses(400, 401, 413) | _RACE
_PARTIES: dict[str, Any] = {"response_model": PartyBulkEnvelope, "responses": _ERRORS}
_MEMBERS: dict[str, Any] = {"response_model": MemberBulkEnvelope, "responses": _ERRORS}


@router.put("/users", openapi_extra=_body_doc(USERS), summary="Create or update up to 1,000 users", **_PARTIES)
async def put_users(_caller: ServiceCaller, request: Request, session: SessionDep) -> dict[str, Any]:
    """Users `{id, name, image_url?, category?}`; one outcome per row, all in one transaction."""
    return await _put_many(request, session, USERS)


@router.put(
    "/companies", openapi_extra=_body_doc(COMPANIES), summary="Create or update up to 1,000 companies", **_PARTIES
)
async def put_companies(_caller: ServiceCaller, request: Request, session: SessionDep) -> dict[str, Any]:
    """Companies `{id, name, logo_url?, subcategory?}`; one outcome per row, all in one transaction."""
    return await _put_many(request, session, COMPANIES)


@router.put(
    "/members", openapi_extra=_body_doc(MEMBERS), summary="Create or update up to 1,000 memberships", **_MEMBERS
)
async def put_members(_caller: ServiceCaller, request: Request, session: SessionDep) -> dict[str, Any]:
    """Memberships `{company_id, user_id, role, invitation_status}`; unknown company or user: that row is rejected."""
    return await _put_many(request, session, MEMBERS)
