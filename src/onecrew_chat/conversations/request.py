"""The body of a create: POST /api/chat/conversations and the internal ensure take the same request.

It validates what the app sends (bare uuids, a known conversation type, bounded sizes), with an error that names
the field and the value; the create service takes it as its input.
"""

from __future__ import annotations

from typing import Any

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
                # The demo data's Sat Education (acting company, owned by the caller) with Amr (onecrew_chat.accounts.demo).
                {
                    "conversation_type": "user_company",
                    "participant_ids": ["dda3aaa6-d123-4e57-aeef-f0661ec61352"],
                    "company_id": "5a7e0c1d-2b3f-4c8a-9d6e-0f1a2b3c4d5e",
                }
            ]
        },
    )

    conversation_type: ConversationType = Field(description="user_user, user_company, company_company or group")
    participant_ids: list[str] = Field(
        description="Bare uuids of the other parties (1 to 1,000); the caller is implied",
        max_length=MAX_PARTICIPANTS,
        json_schema_extra={"minItems": 1, "items": {"type": "string", "format": "uuid"}},
    )
    company_id: str | None = Field(
        default=None,
        description="Write as this company (accepted owner or admin); empty means none",
        json_schema_extra={
            "anyOf": [{"type": "string", "format": "uuid"}, {"type": "string", "maxLength": 0}, {"type": "null"}]
        },
    )
    name: str | None = Field(
        default=None,
        description="Group name (at most 255 characters); ignored for pairs",
        json_schema_extra={"anyOf": [{"type": "string", "maxLength": MAX_NAME_LENGTH}, {"type": "null"}]},
    )

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
