"""Response models and small request bodies of the HTTP API (the shapes the OneCrew app sends and reads).

They document the wire shapes in the OpenAPI document (the routes build plain dicts, and the fuzz tests check
that the two agree); the create's body, which validates, is conversations/request.py.
"""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

# --- the answer (documented in OpenAPI; api/presenters.py builds the same shape as plain dicts) --

# Answers list exactly their keys (`additionalProperties: false`), so the tests catch a serialiser that drifts.
_ANSWER = ConfigDict(extra="forbid")


class UserOut(BaseModel):
    """A OneCrew user as the app reads it."""

    model_config = _ANSWER

    id: str
    name: str | None
    image_url: str | None
    category: str | None


class CompanyOut(BaseModel):
    """A OneCrew company as the app reads it."""

    model_config = _ANSWER

    id: str
    name: str | None
    logo_url: str | None
    subcategory: str | None


class ParticipantOut(BaseModel):
    """A conversation participant; `conversation_id` is the Stream channel id, like the conversation's `id`."""

    model_config = _ANSWER

    id: str
    conversation_id: str
    participant_type: Literal["user", "company"]
    participant_id: str
    joined_at: str
    last_read_at: str | None
    user: UserOut | None = None
    company: CompanyOut | None = None


class ChatOut(BaseModel):
    """Where the conversation lives in Stream and whether every member is there yet."""

    model_config = _ANSWER

    channel_type: str
    channel_id: str
    cid: str
    status: Literal["provisioning", "ready", "failed"]
    members: list[str]


class ConversationOut(BaseModel):
    """A conversation; `id` and `conversation_id` are both the Stream channel id."""

    model_config = _ANSWER

    id: str
    conversation_id: str
    conversation_type: str
    name: str | None
    created_at: str
    updated_at: str
    last_message_at: str | None
    last_message_preview: str | None
    participants: list[ParticipantOut]
    chat: ChatOut


DataT = TypeVar("DataT")


class Envelope(BaseModel, Generic[DataT]):
    """`{success: true, data: ...}`, every successful answer."""

    model_config = _ANSWER

    success: Literal[True] = True
    data: DataT


class ConversationEnvelope(Envelope[ConversationOut]):
    """`{success: true, data: <conversation>}`."""


class Pagination(BaseModel):
    """Where a page sits in the whole list."""

    model_config = _ANSWER

    page: int
    limit: int
    total: int
    totalPages: int  # noqa: N815 (the app reads this camelCase name)


class ConversationPage(BaseModel):
    """One page of the acting profile's conversations, newest activity first."""

    model_config = _ANSWER

    data: list[ConversationOut]
    pagination: Pagination


class ConversationPageEnvelope(Envelope[ConversationPage]):
    """`{success: true, data: {data: [...], pagination}}` (nested, as the app reads it)."""


class UnreadCountOut(BaseModel):
    """How many conversations have a message the profile has not read."""

    model_config = _ANSWER

    unread_count: int
    profile_type: Literal["user", "company"]
    profile_id: str
    cached: bool = Field(description="True when served from the per-profile cache")


class UnreadCountEnvelope(Envelope[UnreadCountOut]):
    """`{success: true, data: {unread_count, profile_type, profile_id, cached}}`."""


class PrepareOut(BaseModel):
    """The conversation's channel id, whether Stream holds it with every member, and those members."""

    model_config = _ANSWER

    id: str
    chat_status: Literal["provisioning", "ready", "failed"]
    members: list[str] = Field(description="Stream user ids: onecrew_user_<uuid> / onecrew_company_<uuid>")


class PrepareEnvelope(Envelope[PrepareOut]):
    """`{success: true, data: {id, chat_status, members}}`."""


class TokenBody(BaseModel):
    """Optional body of POST /api/chat/token (the query string and X-Company-Id work as well)."""

    model_config = ConfigDict(extra="allow")

    profile_type: Literal["user", "company"] | None = Field(
        default=None, description="Act as the user (default) or as a company they own or administer"
    )
    company_id: str | None = Field(default=None, description="The company's uuid; implies profile_type company")


class TokenOut(BaseModel):
    """A Stream user token for the acting identity."""

    model_config = _ANSWER

    token: str = Field(description="HS256 Stream user token, valid ONECREW_STREAM_TOKEN_TTL seconds")
    user_id: str = Field(description="The Stream user id the token is for")
    api_key: str
    profile_type: Literal["user", "company"]
    company_id: str | None


class TokenEnvelope(Envelope[TokenOut]):
    """`{success: true, data: {token, user_id, api_key, profile_type, company_id}}`."""


class HeartbeatOut(BaseModel):
    """When the user was last seen (now)."""

    model_config = _ANSWER

    last_seen_at: str


class HeartbeatEnvelope(Envelope[HeartbeatOut]):
    """`{success: true, data: {last_seen_at}}`."""


class StreamWebhookEvent(BaseModel):
    """The fields of a Stream webhook event the service reads (v1 dialect); any others are ignored."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": "message.new",
                    "cid": "messaging:user_company-c517418f62739ad65cb487501061b8b7",
                    "created_at": "2026-01-01T10:00:00.000000Z",
                    "message": {
                        "id": "m1",
                        "text": "Hello",
                        "created_at": "2026-01-01T10:00:00.000000Z",
                        "user": {"id": "onecrew_user_dda3aaa6-d123-4e57-aeef-f0661ec61352"},
                    },
                }
            ]
        },
    )

    type: str = Field(description="message.new, message.read, notification.mark_read, channel.deleted, ...")
    cid: str | None = None
    channel_type: str | None = None
    channel_id: str | None = None
    created_at: str | None = Field(default=None, description="RFC 3339")
    user: dict[str, Any] | None = None
    message: dict[str, Any] | None = None
    member: dict[str, Any] | None = None


class WebhookOut(BaseModel):
    """What became of one webhook event."""

    model_config = _ANSWER

    webhook_id: str
    type: str
    status: Literal["applied", "duplicate", "ignored"]
    reason: str | None


class WebhookEnvelope(Envelope[WebhookOut]):
    """`{success: true, data: {webhook_id, type, status, reason}}`."""


class HealthOut(BaseModel):
    """Liveness."""

    model_config = _ANSWER

    status: Literal["ok"]
    version: str = Field(description="This process's version (pyproject's `version`), e.g. `0.2.0`.")


class CheckOut(BaseModel):
    """One readiness check of this instance (database, worker)."""

    model_config = _ANSWER

    status: Literal["ok"]
    ms: float | None = None


class StreamHealthOut(BaseModel):
    """Stream's health from its last ping (at most one a minute); never decides readiness."""

    status: Literal["up", "down"]
    checked_at: str
    ms: float
    error: str | None = None
    target: str = Field(
        description='Which Stream: its base URL (no credentials) or "embedded emulator" (development)',
        examples=["https://chat.stream-io-api.com", "embedded emulator"],
    )


class ReadyOut(BaseModel):
    """Readiness of this instance: database at the migration head, worker alive and not paused; Stream apart."""

    model_config = _ANSWER

    status: Literal["ready"]
    mode: Literal["development", "production"] = Field(
        description="production, or development: the embedded fallbacks stand in for settings not given"
    )
    checks: dict[str, CheckOut]
    stream: StreamHealthOut


class HealthEnvelope(Envelope[HealthOut]):
    """`{success: true, data: {status: "ok"}}`."""


class ReadyEnvelope(Envelope[ReadyOut]):
    """`{success: true, data: {status: "ready", mode, checks, stream}}`."""


class ErrorEnvelope(BaseModel):
    """`{success: false, error, code}`."""

    model_config = _ANSWER

    success: Literal[False] = False
    error: str = Field(description="Human readable message", examples=["User must be a member of this company"])
    code: str = Field(description="Stable machine readable code", examples=["not_company_member"])
