"""Who may be a member: existence, visibility delay, and the member lists requests carry."""

from __future__ import annotations

from typing import Any

from .. import clock
from ..call import Call, check_batch, check_user_id
from ..errors import input_error

MEMBER_BUILTINS = frozenset(
    {
        "user_id",
        "user",
        "channel_role",
        "role",
        "invited",
        "is_moderator",
        "custom",
        "status",
        "created_at",
        "updated_at",
        "banned",
        "shadow_banned",
        "notifications_muted",
    }
)


def parse_members(name: str, items: Any) -> list[tuple[str, str | None, dict]]:
    """(user_id, channel_role, custom) for each entry: a bare id or a {user_id, ...} object."""
    parsed = []
    for item in check_batch(name, items):
        if isinstance(item, str):
            parsed.append((item, None, {}))
        elif isinstance(item, dict):
            user_id = item.get("user_id") or (item.get("user") or {}).get("id")
            if not user_id:
                raise input_error(f"{name}[].user_id is a required field", **{name: "user_id required"})
            custom = dict(item.get("custom") or {})
            custom.update((k, v) for k, v in item.items() if k not in MEMBER_BUILTINS and v is not None)
            parsed.append((user_id, item.get("channel_role"), custom))
        else:
            raise input_error(f"{name} must hold user ids or member objects")
    return parsed


def missing_ids(call: Call, user_ids: list[str]) -> list[str]:
    """The ids that do not (yet) name a usable user, each once, in the order given."""
    users = call.state.users
    delay_s = call.emulator.faults.visibility_delay_ms / 1000.0
    now = clock.monotonic() if delay_s else 0.0
    born = call.state.user_born
    missing: list[str] = []
    for user_id in user_ids:
        user = users.get(user_id)
        usable = (
            user is not None and user.deleted_at is None and (not delay_s or now - born.get(user_id, 0.0) >= delay_s)
        )
        if not usable and user_id not in missing:
            missing.append(user_id)
    return missing


def creator_id(call: Call, data: dict) -> str | None:
    """The creator named by data.created_by / data.created_by_id, with Stream's server rules."""
    created_by = data.get("created_by")
    created_by_id = data.get("created_by_id")
    if created_by is not None and created_by_id is not None:
        raise input_error("cannot set both data.created_by and data.created_by_id.")
    if isinstance(created_by, dict):
        created_by_id = created_by.get("id")
    elif isinstance(created_by, str):
        created_by_id = created_by
    if created_by_id is None:
        if call.caller.is_server:
            raise input_error(
                "either data.created_by or data.created_by_id must be provided when using server side auth."
            )
        return call.caller.user_id
    return check_user_id(created_by_id, "data.created_by_id")
