"""The answer to a create whose Stream channel is not ready within the deadline: one the unchanged app retries.

The app never reads `chat.status`: after a 2xx it watches `data.id` at once, and fails if the channel is not
there. Its own retry of a create reacts to the error words `timeout`, `Missing:` and `don't exist in StreamChat
yet` (docs/reference/app-contract.md#the-apps-retries-of-a-create), and its ApiClient turns a timed-out call into
`ApiError("Request timeout", 408)`. So a create still provisioning at the deadline is answered like the timeouts
the app already retries: HTTP 408, error
`Request timeout: ...`, code `provisioning_timeout`, `Retry-After: 1`. The retry is idempotent (the same pair
finds the same conversation and finishes provisioning within its own deadline), so it answers 200 with the same
`id`, ready, once Stream has caught up; the outbox worker keeps finishing it in between.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from onecrew_chat.errors import AppError
from onecrew_chat.identity import ConversationType

PROVISIONING = "provisioning"
RETRY_AFTER_S = 1


class ProvisioningTimeout(AppError):
    """The conversation exists but its Stream channel is not ready yet (408): retry the same request."""

    status_code = 408
    code = "provisioning_timeout"

    def __init__(self, channel_id: str) -> None:
        super().__init__(
            f"Request timeout: the chat channel {channel_id} is still being set up; send the same request again "
            "to open it",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )


def is_deferred(data: dict[str, Any]) -> bool:
    """True when a create's conversation is still provisioning in Stream."""
    return (data.get("chat") or {}).get("status") == PROVISIONING


def retry_finds_it(data: dict[str, Any]) -> bool:
    """True when the same create sent again finds this conversation: a pair (one conversation per pair).

    A group sent again without an Idempotency-Key is a new group, so an unkeyed group still provisioning at the
    deadline is answered 200 with `chat.status: "provisioning"` instead (the worker finishes it; the app itself
    never creates groups, and a client that does can read the status or GET the id).
    """
    return data.get("conversation_type") != ConversationType.GROUP


def deferred_answer(data: dict[str, Any]) -> JSONResponse:
    """The 408 the app retries, naming the conversation's channel id (it is the same on every retry)."""
    error = ProvisioningTimeout(str(data.get("id")))
    return JSONResponse(
        {"success": False, "error": error.message, "code": error.code},
        status_code=error.status_code,
        headers=error.headers,
    )
