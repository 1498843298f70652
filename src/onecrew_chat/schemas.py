"""Request and response models of POST /api/chat/conversations (the shapes the OneCrew app sends and reads)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from onecrew_chat.identity import ConversationType, normalize_uuid

MAX_PARTICIPANTS = 1000
MAX_NAME_LENGTH = 255
CONVERSATION_TYPES = tuple(t.value for t in ConversationType)


def _shown(value: Any) -> str:
    """A short, safe rendering of a client value for an error message."""
    return repr(str(value)[:64])


class CreateConversationRequest(BaseModel):
    """Body of POST /api/chat/conversations; the caller (or `company_id`) is implied, ids are bare uuids."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "conversation_type": "user_company",
                    "participant_ids": ["3f1c2a9e-8d5b-4c7e-9a61-2b0f4e8d7c15"],
                    "company_id": "7a9e4b2c-1d3f-4e5a-8b6c-9d0e1f2a3b4c",
                }
            ]
        },
    )

    conversation_type: ConversationType = Field(description="user_user, user_company, company_company or group")
    participant_ids: list[str] = Field(
        description="Bare uuids of the other parties (1 to 1,000); the caller is implied", max_length=MAX_PARTICIPANTS
    )
    company_id: str | None = Field(default=None, description="Write as this company (accepted owner or admin)")
    name: str | None = Field(default=None, description="Group name (at most 255 characters); ignored for pairs")

    @field_validator("conversation_type", mode="before")
    @classmethod
    def _known_type(cls, value: Any) -> Any:
        if value not in CONVERSATION_TYPES:
            raise ValueError(f"must be one of {', '.join(CONVERSATION_TYPES)} (got {_shown(value)})")
        return value

    @field_validator("participant_ids", mode="before")
    @classmethod
    def _uuid_list(cls, value: Any) -> list[str]:
        if not isinstance(value, list):
            raise ValueError("must be a list of participant UUIDs")
        if not value:
            raise ValueError("must name at least one other participant")
        if len(value) > MAX_PARTICIPANTS:
            raise ValueError(f"has {len(value)} entries; at most {MAX_PARTICIPANTS} participants are allowed")
        ids: list[str] = []
        bad: list[str] = []
        for position, item in enumerate(value):
            try:
                if not isinstance(item, str):
                    raise ValueError
                ids.append(normalize_uuid(item))
            except ValueError:
                bad.append(f"[{position}] {_shown(item)}")
        if bad:
            shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
            raise ValueError(f"must be UUIDs; not a UUID: {shown}")
        return list(dict.fromkeys(ids))

    @field_validator("company_id", mode="before")
    @classmethod
    def _company_uuid(cls, value: Any) -> str | None:
        if value is None or (isinstance(value, str) and value.strip() == ""):
            return None
        try:
            if not isinstance(value, str):
                raise ValueError
            return normalize_uuid(value)
        except ValueError:
            raise ValueError(f"must be a UUID (got {_shown(value)})") from None

    @field_validator("name", mode="before")
    @classmethod
    def _short_name(cls, value: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError("must be a string")
        value = value.strip()
        if len(value) > MAX_NAME_LENGTH:
            raise ValueError(f"is {len(value)} characters long; at most {MAX_NAME_LENGTH} are allowed")
        return value or None

    def fingerprint_source(self) -> dict[str, Any]:
        """The canonical form hashed for Idempotency-Key checks (order and case of ids do not matter)."""
        return {
            "conversation_type": self.conversation_type.value,
            "participant_ids": sorted(self.participant_ids),
            "company_id": self.company_id,
            "name": self.name,
        }


# --- the answer (documented in OpenAPI; serialize.py builds the same shape as plain dicts) -------


class UserOut(BaseModel):
    """A OneCrew user as the app reads it."""

    id: str
    name: str | None
    image_url: str | None
    category: str | None


class CompanyOut(BaseModel):
    """A OneCrew company as the app reads it."""

    id: str
    name: str | None
    logo_url: str | None
    subcategory: str | None


class ParticipantOut(BaseModel):
    """A conversation participant; `conversation_id` is the Stream channel id, like the conversation's `id`."""

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

    channel_type: str
    channel_id: str
    cid: str
    status: Literal["provisioning", "ready", "failed"]
    members: list[str]


class ConversationOut(BaseModel):
    """A conversation; `id` and `conversation_id` are both the Stream channel id."""

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


class ConversationEnvelope(BaseModel):
    """`{success: true, data: <conversation>}`."""

    success: Literal[True] = True
    data: ConversationOut


class ErrorEnvelope(BaseModel):
    """`{success: false, error, code}`."""

    success: Literal[False] = False
    error: str = Field(description="Human readable message")
    code: str = Field(description="Stable machine readable code")
