"""The one error tree: every domain error knows its HTTP status, stable code and human message."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    """Base of every error a client may see; rendered as {success: false, error, code}."""

    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.headers = headers or {}


class BadRequest(AppError):
    """The request's parameters are wrong (400)."""

    status_code = 400
    code = "bad_request"


class Unauthorized(AppError):
    """No valid credentials (401)."""

    status_code = 401
    code = "invalid_token"

    def __init__(self, message: str = "Invalid or expired token", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)


class Forbidden(AppError):
    """Authenticated but not allowed to act as that identity (403)."""

    status_code = 403
    code = "forbidden"


class NotFound(AppError):
    """The thing does not exist or the caller may not know that it does (404)."""

    status_code = 404
    code = "not_found"


class UnknownIdentity(NotFound):
    """Ids that neither the directory nor the Stream mirror knows (and no placeholder may stand in for them).

    The sync layer raises it when it would have to send Stream a user or company it cannot describe; a client meets
    it as the other side of a conversation it asked for."""

    code = "participant_not_found"
    SHOWN = 10  # ids named in the message; the rest are counted

    def __init__(self, entity_ids: list[str]) -> None:
        shown = ", ".join(entity_ids[: self.SHOWN])
        if len(entity_ids) > self.SHOWN:
            shown += f" and {len(entity_ids) - self.SHOWN} more"
        super().__init__(f"Other participant not found: {shown}")
        self.entity_ids = entity_ids


class Conflict(AppError):
    """The request clashes with one still running or with stored state (409)."""

    status_code = 409
    code = "conflict"


class Unprocessable(AppError):
    """The body is well-formed JSON but says something invalid (422)."""

    status_code = 422
    code = "validation_error"


class ProvisioningTimeout(AppError):
    """The conversation exists but its Stream channel is not ready yet (408): send the same request again.

    The app never reads `chat.status`: after a 2xx it watches `data.id` at once, and fails if the channel is not
    there. Its own retry of a create reacts to the error words `timeout`, `Missing:` and `don't exist in StreamChat
    yet` (docs/reference/app-contract.md#the-apps-retries-of-a-create), and its ApiClient turns a timed-out call
    into `ApiError("Request timeout", 408)`. So a create still provisioning at the deadline is answered like the
    timeouts the app already retries: HTTP 408, error `Request timeout: ...`, `Retry-After: 1`. The retry finds the same conversation and finishes provisioning within its own
    deadline; the outbox worker keeps finishing it in between.
    """

    status_code = 408
    code = "provisioning_timeout"
    retry_after_s = 1

    def __init__(self, channel_id: str) -> None:
        super().__init__(
            f"Request timeout: the chat channel {channel_id} is still being set up; send the same request again "
            "to open it",
            headers={"Retry-After": str(self.retry_after_s)},
        )


class ServiceUnavailable(AppError):
    """A dependency (database, Stream) is not answering (503)."""

    status_code = 503
    code = "service_unavailable"


class StreamFailed(AppError):
    """Stream refused a request we made (a 4xx that retrying cannot fix): our fault or Stream's, never the client's.

    The same answer (502 `stream_error`) wherever it happens: create, prepare, the internal endpoints.
    """

    status_code = 502
    code = "stream_error"


NOT_A_MEMBER = "User must be a member of this company"


def not_a_member() -> Forbidden:
    """The 403 the app recognises when acting as a company it does not own or administer."""
    return Forbidden(NOT_A_MEMBER, code="not_company_member")
