"""Answers of the internal directory API (`/api/internal/*`), as api/presenters.py (party_json, member_json) builds them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from onecrew_chat.api.schemas import Envelope


class _Out(BaseModel):
    # `additionalProperties: false` in the document: a key the code adds without its model fails the tests.
    model_config = ConfigDict(extra="forbid")


class UserRecordOut(_Out):
    """A user as stored."""

    id: str
    name: str
    image_url: str | None
    category: str | None
    kind: Literal["user"]
    created_at: str = Field(description="ISO 8601")
    updated_at: str = Field(description="ISO 8601")
    created: bool = Field(description="True when this call added the row")


class CompanyRecordOut(_Out):
    """A company as stored."""

    id: str
    name: str
    logo_url: str | None
    subcategory: str | None
    kind: Literal["company"]
    created_at: str
    updated_at: str
    created: bool


class MemberRecordOut(_Out):
    """A membership as stored."""

    company_id: str
    user_id: str
    role: Literal["owner", "admin", "manager", "member"]
    invitation_status: Literal["pending", "accepted", "rejected"]
    created_at: str
    updated_at: str
    created: bool


class DeletedOut(_Out):
    """Whether the user or company was there to delete."""

    id: str
    deleted: bool


class MemberDeletedOut(_Out):
    """Whether the membership was there to delete."""

    company_id: str
    user_id: str
    deleted: bool


class UserRecordEnvelope(Envelope[UserRecordOut]):
    """`{success: true, data: <user>}`."""


class CompanyRecordEnvelope(Envelope[CompanyRecordOut]):
    """`{success: true, data: <company>}`."""


class MemberRecordEnvelope(Envelope[MemberRecordOut]):
    """`{success: true, data: <membership>}`."""


class DeletedEnvelope(Envelope[DeletedOut]):
    """`{success: true, data: {id, deleted}}`."""


class MemberDeletedEnvelope(Envelope[MemberDeletedOut]):
    """`{success: true, data: {company_id, user_id, deleted}}`."""
