"""Query members of one channel (§3.11)."""

from __future__ import annotations

from typing import Any

from .. import permissions
from ..call import Call, drop_nulls
from ..errors import input_error, not_found
from ..filters import matches, normalize_sort, sort_items
from ..state import Member


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

    found = [m for m in channel.members.values() if matches(m, payload.get("filter_conditions") or {}, field)]
    found = sort_items(found, normalize_sort(payload.get("sort")), field)
    limit = min(int(payload.get("limit") or 100), 300)
    offset = int(payload.get("offset") or 0)
    return {"members": [call.dialect.member(m, users) for m in found[offset : offset + limit]]}
