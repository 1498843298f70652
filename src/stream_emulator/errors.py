"""Stream's error codes and the one exception every handler raises to answer with an error."""

from __future__ import annotations

MORE_INFO = "https://getstream.io/chat/docs/api_errors_response"

# Stream code -> HTTP status (docs/reference/stream-api.md#error-codes).
INTERNAL = -1
ACCESS_KEY = 2
INPUT = 4
AUTHENTICATION = 5
RATE_LIMIT = 9
DOES_NOT_EXIST = 16
NOT_ALLOWED = 17
TOKEN_EXPIRED = 40
TOKEN_NOT_VALID_YET = 41
TOKEN_SIGNATURE = 43

STATUS_OF = {
    INTERNAL: 500,
    ACCESS_KEY: 401,
    INPUT: 400,
    AUTHENTICATION: 401,
    RATE_LIMIT: 429,
    DOES_NOT_EXIST: 404,
    NOT_ALLOWED: 403,
    TOKEN_EXPIRED: 401,
    TOKEN_NOT_VALID_YET: 401,
    TOKEN_SIGNATURE: 401,
}


class StreamError(Exception):
    """An error answered with Stream's envelope; `detail` is the text inside the quotes."""

    def __init__(
        self, code: int, detail: str, *, status: int | None = None, exception_fields: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.status = status if status is not None else STATUS_OF.get(code, 400)
        self.exception_fields = exception_fields


def input_error(detail: str, **fields: str) -> StreamError:
    """Code 4, HTTP 400: the request was understood and refused."""
    return StreamError(INPUT, detail, exception_fields=fields or None)


def not_found(detail: str) -> StreamError:
    """Code 16, HTTP 404."""
    return StreamError(DOES_NOT_EXIST, detail)


def envelope(operation: str, error: StreamError, duration: str) -> dict:
    """The JSON body Stream sends for an error (docs/reference/stream-api.md#error-envelope)."""
    body = {
        "code": error.code,
        "message": f'{operation} failed with error: "{error.detail}"',
        "StatusCode": error.status,
        "duration": duration,
        "more_info": MORE_INFO,
        "details": [],
    }
    if error.exception_fields:
        body["exception_fields"] = error.exception_fields
    return body


def missing_users(action: str, ids: list[str]) -> StreamError:
    """The "don't exist" error of create (action "create") and add_members ("update").

    The ids are joined with "," and no space: Stream's sources leave the separator open
    (docs/reference/stream-api.md#members-that-do-not-exist).
    """
    return input_error(
        f"The following users are involved in channel {action} operation, but don't exist: "
        f"[{','.join(ids)}]. Please create the user objects before setting up the channel."
    )
