"""Query members of one channel.

Paged as Stream documents it: oldest member first by default, `limit` and `offset` (offset at most 1000, refused
beyond, never capped), or by `user_id` / `created_at` with the `user_id_gt|gte|lt|lte` and
`created_at_after|after_or_equal|before|before_or_equal` bounds (getstream's QueryMembersPayload), which page a
channel of any size.
"""

from __future__ import annotations

import operator
from typing import Any

from .. import permissions
from ..call import Call, check_offset, drop_nulls
from ..clock import parse_time
from ..errors import input_error, not_found
from ..filters import matches, normalize_sort, sort_items
from ..state import Member

MAX_OFFSET = 1000
MAX_LIMIT = 300
_COMPARE = {"$gt": operator.gt, "$gte": operator.ge, "$lt": operator.lt, "$lte": operator.le}
_USER_ID_BOUNDS = {"user_id_gt": "$gt", "user_id_gte": "$gte", "user_id_lt": "$lt", "user_id_lte": "$lte"}
_CREATED_BOUNDS = {
    "created_at_after": "$gt",
    "created_at_after_or_equal": "$gte",
    "created_at_before": "$lt",
    "created_at_before_or_equal": "$lte",
}


def _bounds(payload: dict) -> dict:
    """The keyset bounds of the payload as one more filter."""
    conditions: dict[str, dict[str, object]] = {}
    for key, op in _USER_ID_BOUNDS.items():
        if payload.get(key) is not None:
            conditions.setdefault("user_id", {})[op] = str(payload[key])
    for key, op in _CREATED_BOUNDS.items():
        if payload.get(key) is not None:
            conditions.setdefault("created_at", {})[op] = parse_time(payload[key])
    return conditions


def query(call: Call) -> dict:
    """GET /members?payload={type, id, filter_conditions, sort, limit, offset}."""
    payload = drop_nulls(call.payload())
    channel_type, channel_id = payload.get("type"), payload.get("id")
    if not channel_type or not channel_id:
        raise input_error("type and id are required fields", type="required", id="required")
    cid = f"{channel_type}:{channel_id}"
    channel = call.state.channels.get(cid)
    if channel is None:
        raise not_found(f"Can't find channel with id {cid}")
    permissions.check(call, channel, permissions.READ_CHANNEL)
    users = call.state.users

    def field(member: Member, name: str) -> Any:
        if name in ("id", "user_id"):
            return member.user_id
        if name in ("channel_role", "role", "created_at", "updated_at"):
            return getattr(member, name)
        if name in ("banned", "shadow_banned"):
            return False
        if name == "invite":
            return "pending" if member.invited else None
        if name == "joined":
            return not member.invited
        if name == "cid":
            return cid
        user = users.get(member.user_id)
        if name.startswith("user."):
            name = name[5:]
        if user is not None and name in ("name", "image", "language"):
            return getattr(user, name)
        if name in member.custom:
            return member.custom[name]
        return user.custom.get(name) if user is not None else None

    bounds = _bounds(payload)
    found = [
        m
        for m in channel.members.values()
        if matches(m, payload.get("filter_conditions") or {}, field) and _within(m, bounds)
    ]
    found = sort_items(found, normalize_sort(payload.get("sort")) or [("created_at", 1)], field)
    limit = min(int(payload.get("limit") or 100), MAX_LIMIT)
    offset = check_offset(payload, MAX_OFFSET)
    return {"members": [call.dialect.member(m, users) for m in found[offset : offset + limit]]}


def _within(member: Member, bounds: dict) -> bool:
    """Whether the member lies inside the keyset bounds (user id as a string, created_at in nanoseconds)."""
    for name, condition in bounds.items():
        value = member.user_id if name == "user_id" else member.created_at
        for op, operand in condition.items():
            if operand is None or not _COMPARE[op](value, operand):
                return False
    return True
