"""One API call as the handlers see it: who called, which dialect, what they sent."""

from __future__ import annotations

import json
import re
from typing import Any

from .auth import Caller
from .dialects import Dialect
from .emulator import Emulator
from .errors import StreamError, input_error, not_found
from .state import Channel, Message, User
from .webhooks import delivers_anything

# Stream's documented id rules, matched whole (fullmatch: `$` would let a trailing newline
# through) and in ASCII only (`\w` would take "café" and "日本"). User ids: a-z, 0-9, @ _ -.
USER_ID = re.compile(r"[a-z0-9@_-]+")
CHANNEL_ID = re.compile(r"[A-Za-z0-9_-]+")
MAX_BATCH = 100


class Call:
    """The parsed request handed to a handler."""

    __slots__ = (
        "emulator",
        "state",
        "dialect",
        "method",
        "params",
        "query",
        "body",
        "caller",
        "operation",
        "files",
        "base_url",
    )

    def __init__(
        self,
        emulator: Emulator,
        dialect: Dialect,
        method: str,
        params: tuple[str, ...],
        query: dict[str, str],
        body: Any,
        caller: Caller,
        operation: str,
        files: dict[str, tuple[str, str, bytes]] | None = None,
        base_url: str = "",
    ) -> None:
        """`files`: multipart file fields, name -> (file name, content type, bytes); `base_url`:
        where the caller reached the emulator (for the URLs of uploads)."""
        self.emulator = emulator
        self.state = emulator.state
        self.dialect = dialect
        self.method = method
        self.params = params
        self.query = query
        self.body = body
        self.caller = caller
        self.operation = operation
        self.files = files or {}
        self.base_url = base_url

    @property
    def v2(self) -> bool:
        """Whether the caller speaks the /api/v2 dialect."""
        return self.dialect.name == "v2"

    def payload(self) -> dict:
        """The JSON object a GET carries in `?payload=`, or the body of other methods."""
        if self.method != "GET":
            return self.body
        raw = self.query.get("payload")
        if not raw:
            return {}
        try:
            value = json.loads(raw)
        except ValueError:
            raise input_error("payload is not valid JSON") from None
        if not isinstance(value, dict):
            raise input_error("payload must be a JSON object")
        return value

    def acting_user_id(self, container: dict, prefix: str = "") -> str:
        """The user a server-side call acts as (`user_id` or `user.id`); the token's for users."""
        if not self.caller.is_server:
            return self.caller.user_id  # type: ignore[return-value]
        user = container.get("user")
        user_id = container.get("user_id")
        if isinstance(user, dict):
            user_id = user_id or user.get("id")
        if not user_id:
            raise input_error(f"either {prefix}user or {prefix}user_id must be provided when using server side auth.")
        return user_id

    def require_user(self, user_id: str, deleted_ok: bool = False) -> User:
        """The stored (by default not soft-deleted) user, or code 16."""
        user = self.state.users.get(user_id)
        if user is None or (user.deleted_at is not None and not deleted_ok):
            raise not_found(f"user {user_id} does not exist")
        return user

    def channel(self) -> Channel:
        """The channel named by the path, or Stream's "Can't find channel" error."""
        cid = f"{self.params[0]}:{self.params[1]}"
        channel = self.state.channels.get(cid)
        if channel is None:
            raise not_found(f"Can't find channel with id {cid}")
        return channel

    def message(self, message_id: str) -> tuple[Channel, Message]:
        """The message with this id and its channel, or Stream's code 16."""
        for channel in self.state.channels.values():
            message = channel.message(message_id)
            if message is not None:
                return channel, message
        raise not_found(f"Message with id {message_id} not found")

    def emit(self, event: dict) -> None:
        """Hand an event to webhook delivery (a no-op when no webhook_url is set)."""
        self.emulator.webhooks.emit(event)

    @property
    def webhooks_on(self) -> bool:
        """Whether events are delivered at all, so handlers skip building them when not."""
        return delivers_anything(self.state.app)


def check_batch(name: str, items: Any) -> list:
    """A list of at most 100 items, or code 4 naming the field."""
    if items is None:
        return []
    if not isinstance(items, list):
        raise input_error(f"{name} must be a list", **{name: "must be a list"})
    if len(items) > MAX_BATCH:
        raise StreamError(
            4,
            f"{name} has {len(items)} items, the maximum is {MAX_BATCH}",
            exception_fields={name: f"max {MAX_BATCH} items"},
        )
    return items


def check_user_id(user_id: Any, field: str = "id") -> str:
    """A valid user id (^[@\\w-]*$, at most 255 characters), or code 4."""
    if not isinstance(user_id, str) or not user_id:
        raise input_error(f"{field} is a required field", **{field: "required"})
    if len(user_id) > 255 or not USER_ID.fullmatch(user_id):
        raise input_error(
            f"{field} {user_id} is not a valid user id: only a-z, 0-9 and @ _ - are allowed, at most 255 characters",
            **{field: "invalid user id"},
        )
    return user_id


def check_object(body: dict, name: str) -> dict:
    """body[name] as an object, or code 4: "{name} is a required field"."""
    value = body.get(name)
    if not isinstance(value, dict):
        raise input_error(f"{name} is a required field", **{name: "required"})
    return value


def check_type(raw: dict, name: str) -> str:
    """The object's non-empty "type", or code 4: "{name}.type is a required field"."""
    kind = raw.get("type")
    if not isinstance(kind, str) or not kind:
        raise input_error(f"{name}.type is a required field", type="required")
    return kind


def check_count(name: str, value: Any, default: int, maximum: int) -> int:
    """A whole number 0..maximum (`default` when absent), or code 4 naming the field."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise input_error(f"{name} must be a number", **{name: "invalid"})
    try:
        number = int(value)
    except ValueError:
        raise input_error(f"{name} must be a number", **{name: "invalid"}) from None
    if number < 0 or number > maximum:
        raise input_error(f"{name} must be between 0 and {maximum}", **{name: "invalid"})
    return number


def check_offset(payload: dict, maximum: int) -> int:
    """The query's offset; beyond Stream's maximum it is refused (code 4), never capped, so an
    offset pager cannot loop on the same last page."""
    try:
        offset = int(payload.get("offset") or 0)
    except (TypeError, ValueError):
        raise input_error("offset must be a number", offset="invalid") from None
    if offset < 0 or offset > maximum:
        raise input_error(f"offset must be between 0 and {maximum}", offset="invalid")
    return offset


def drop_nulls(value: Any) -> dict:
    """The object without null members (getstream sends explicit nulls; Stream ignores them)."""
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if v is not None}
