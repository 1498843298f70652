"""The Stream error tree: every failure of a Stream call becomes one of these, classified by what to do about it."""

from __future__ import annotations

import re
import time
from typing import Any

# Stream's "members don't exist" messages, every variant seen in the wild
# (docs/reference/stream-api.md#members-that-do-not-exist):
#   ... involved in channel create operation, but don't exist: [a b]. Please create ...
#   ... involved in channel update operation, but don't exist: [a, b]. ...
#   ... specified in channel.members but don't exist:[5027],please create ...
#   ... could not find user <id> from add_members
_BRACKETED_MISSING = re.compile(r"(?:don't|do not|doesn't|does not) exist\s*:\s*\[([^\]]*)\]", re.IGNORECASE)
_ADD_MEMBERS_MISSING = re.compile(r"could not find users? \[?([^\s\]\"]+)\]? from add_members", re.IGNORECASE)
_ID_SEPARATORS = re.compile(r"[\s,]+")


def parse_missing_user_ids(message: str) -> list[str] | None:
    """The user ids a "don't exist" message names, in order and without duplicates; None if it is not one."""
    if not message:
        return None
    found = _BRACKETED_MISSING.search(message)
    if found:
        raw = [part.strip().strip("\"'`") for part in _ID_SEPARATORS.split(found.group(1))]
    else:
        found = _ADD_MEMBERS_MISSING.search(message)
        if not found:
            return None
        raw = [found.group(1).strip().strip("\"'`")]
    ids = [part for part in raw if part]
    return list(dict.fromkeys(ids))


class StreamError(Exception):
    """A Stream call failed; `operation` is Stream's operation name (GetOrCreateChannel, UpdateUsers, ...)."""

    def __init__(self, message: str, *, operation: str, status: int | None = None, code: int | None = None):
        super().__init__(message)
        self.message = message
        self.operation = operation
        self.status = status
        self.code = code

    def __str__(self) -> str:
        parts = [self.operation]
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.code is not None:
            parts.append(f"code {self.code}")
        return f"{' '.join(parts)}: {self.message}"


class StreamTransientError(StreamError):
    """Worth retrying later: network failure, timeout, 5xx or 429."""

    def __init__(self, message: str, *, retry_after_s: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after_s = retry_after_s


class StreamUnavailable(StreamTransientError):
    """Stream did not answer usefully: connection error, timeout or 5xx. The call may or may not have happened."""


class StreamRateLimited(StreamTransientError):
    """HTTP 429; `reset_at` is the epoch second from x-ratelimit-reset, `retry_after_s` the wait as of raising."""

    def __init__(self, message: str, *, reset_at: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.reset_at = reset_at


class StreamRequestError(StreamError):
    """Stream refused the request (a 4xx other than 429): repeating it unchanged will not help."""


class StreamAuthRejected(StreamRequestError):
    """Stream refuses our own credentials (HTTP 401, or an auth code such as 403 App Suspended): nothing works until
    the key or secret is fixed, and then everything does; work waiting on Stream pauses, it is never given up on."""


class StreamUsersMissing(StreamRequestError):
    """Stream's "users ... don't exist" error; `missing_ids` are the ids it named."""

    def __init__(self, message: str, *, missing_ids: list[str], **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.missing_ids = list(missing_ids)


class StreamBatchError(StreamRequestError):
    """A user batch (upsert or partial update) was refused as a whole; `bad_id` is the id Stream named, if any."""

    def __init__(self, message: str, *, bad_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.bad_id = bad_id

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base} (bad id: {self.bad_id})" if self.bad_id else base


class DeadlineExceeded(StreamTransientError):
    """Retries ran out of time; the last underlying error is `__cause__` (and copied into the fields)."""

    @classmethod
    def after(cls, operation: str, last: StreamError | None, waited_s: float) -> DeadlineExceeded:
        """The DeadlineExceeded for `operation` after `waited_s` seconds, describing the last error."""
        detail = f"gave up after {waited_s:.3f}s"
        if last is not None:
            detail += f"; last error: {last}"
        return cls(
            detail,
            operation=operation,
            status=getattr(last, "status", None),
            code=getattr(last, "code", None),
            retry_after_s=getattr(last, "retry_after_s", None),
        )


# Stream's codes that mean "your key, secret or app is refused", whatever the status
# (docs/reference/stream-api.md#error-codes).
AUTH_CODES = frozenset({2, 5, 40, 41, 42, 43, 99})
# Statuses that say nothing about the request itself: the call may work as it is later
# (docs/reference/stream-api.md#error-codes).
PASSING_STATUSES = frozenset({408, 429})


def is_passing_status(status: int) -> bool:
    """Whether an HTTP status is a passing failure: any 5xx, 408 or 429, whoever answered it (Stream, or a gateway
    or balancer in front of it in its own words)."""
    return status >= 500 or status in PASSING_STATUSES


def is_auth_failure(error: BaseException) -> bool:
    """Stream refused our own credentials (HTTP 401, or an auth code such as 403 App Suspended)."""
    if not isinstance(error, StreamRequestError):
        return False
    return error.status == 401 or (error.code is not None and error.code in AUTH_CODES)


def from_api_exception(operation: str, exc: Any, batch_ids: list[str] | None = None) -> StreamError:
    """Classify the SDK's StreamApiException (an HTTP answer) by its status, never by the body's shape: 429 rate
    limited; other 5xx/408 (and a non-error status) unavailable; 401 or an auth code our credentials refused; other
    4xx a refusal of this request. `batch_ids` are the user ids of a batch call."""
    status = exc.status_code
    code = exc.code or None
    message = exc.message or f"HTTP {status}"
    if status == 429:
        reset_at = _reset_at(exc)
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            retry_after_s = max(0.0, retry_after.total_seconds())
        elif reset_at is not None:
            retry_after_s = max(0.0, reset_at - time.time())
        else:
            retry_after_s = None
        return StreamRateLimited(
            message, operation=operation, status=status, code=code, reset_at=reset_at, retry_after_s=retry_after_s
        )
    if is_passing_status(status) or status < 400:
        return StreamUnavailable(message, operation=operation, status=status, code=code)
    if status == 401 or (code is not None and code in AUTH_CODES):
        return StreamAuthRejected(message, operation=operation, status=status, code=code)
    missing = parse_missing_user_ids(message)
    if missing:
        return StreamUsersMissing(message, operation=operation, status=status, code=code, missing_ids=missing)
    if batch_ids and status == 400:
        return StreamBatchError(
            message, operation=operation, status=status, code=code, bad_id=_named_id(exc, message, batch_ids)
        )
    return StreamRequestError(message, operation=operation, status=status, code=code)


def _named_id(exc: Any, message: str, batch_ids: list[str]) -> str | None:
    haystack = " ".join([message, *map(str, (exc.exception_fields or {}).values())])
    # Longest first, so an id that is a prefix of another does not shadow it.
    for candidate in sorted(batch_ids, key=len, reverse=True):
        if candidate and candidate in haystack:
            return candidate
    return None


def _reset_at(exc: Any) -> float | None:
    info = exc.rate_limit_info
    if info is not None:
        reset: float = info.reset.timestamp()
        return reset
    response = exc.http_response
    raw = response.headers.get("x-ratelimit-reset") if response is not None else None
    for part in (raw or "").split(","):
        try:
            return float(part.strip())
        except ValueError:
            continue
    return None


# How a failure reads once recorded (an outbox row's last_error: "<ErrorType>: <Operation> HTTP <status> code <c>").
_RECORDED_STATUS = re.compile(r"\bHTTP (\d{3})\b")
_RECORDED_CODE = re.compile(r"\bHTTP \d{3} code (-?\d+)\b")
_PASSING_TYPES = ("StreamUnavailable", "StreamRateLimited", "StreamTransientError", "DeadlineExceeded")
# What an answer in a gateway's words (`{"message": ...}` with a 5xx) was recorded as before it was classified by its
# status: the SDK could not read it (no `code`) and the failure was taken for Stream's final refusal.
_UNREADABLE_ERROR_ANSWER = re.compile(r"unexpected answer from Stream: KeyError\(")


def recorded_failure_heals(recorded: str | None) -> bool:
    """Whether a recorded failure (`f"{type(exc).__name__}: {exc}"`) is one that passes by itself: a passing error
    class or HTTP status (5xx, 408, 429), an error answer the SDK could not read, or our own credentials refused
    (401 or an auth code: it works again once the secret is fixed). A refusal of the request itself does not."""
    if not recorded:
        return False
    kind = recorded.split(":", 1)[0].strip()
    if kind in _PASSING_TYPES or kind == StreamAuthRejected.__name__:
        return True
    status = _RECORDED_STATUS.search(recorded)
    if status is not None:
        number = int(status.group(1))
        code = _RECORDED_CODE.search(recorded)
        if is_passing_status(number) or number == 401 or (code is not None and int(code.group(1)) in AUTH_CODES):
            return True
    return bool(_UNREADABLE_ERROR_ANSWER.search(recorded))
