"""Client sessions: a user connecting over `/connect` (created or updated from the connect
payload, like connectUser on Stream), going online and offline, and watching channels."""

from __future__ import annotations

import asyncio
from typing import Any

from .. import events
from ..call import check_user_id
from ..clock import now_ns
from ..emulator import Emulator
from ..errors import NOT_ALLOWED, StreamError
from ..hub import Connection
from ..state import User
from . import devices
from .users import apply_fields

# What a user may not set about themself on connect (Stream: role and teams are server-side only).
_PRIVILEGED = frozenset({"id", "role", "teams", "teams_role", "revoke_tokens_issued_before"})


def open_session(
    emulator: Emulator, user_id: str, details: Any, loop: asyncio.AbstractEventLoop
) -> tuple[Connection, bool, dict]:
    """Open a connection for the user: (connection, came online, the `me` of health.check)."""
    check_user_id(user_id, "user_id")
    state = emulator.state
    user = state.users.get(user_id)
    if user is not None and user.deactivated_at is not None:
        raise StreamError(NOT_ALLOWED, f"user {user_id} is deactivated")
    now = now_ns()
    fields = (
        {k: v for k, v in details.items() if k not in _PRIVILEGED and v is not None}
        if isinstance(details, dict)
        else {}
    )
    if user is None or user.deleted_at is not None:
        user = User(user_id, now)
        state.add_user(user)
    if fields:
        apply_fields(user, fields)
        user.updated_at = now
    connection, came_online = emulator.hub.open(user_id, loop)
    user.online = True
    user.last_active = now
    user.version += 1
    emulator.mark_dirty()
    return connection, came_online, me(emulator, user)


def me(emulator: Emulator, user: User) -> dict:
    """The connected user as health.check's `me` shows it (OwnUserResponse)."""
    body = emulator.v1.full_user(user)
    total = channels = 0
    for channel in emulator.state.channels.values():
        read = channel.reads.get(user.id)
        if user.id in channel.members and read is not None and read.unread_messages:
            total += read.unread_messages
            channels += 1
    body.update(total_unread_count=total, unread_count=total, unread_channels=channels)
    body["devices"] = [devices.render_v1(emulator, d) for d in emulator.state.devices.get(user.id, [])]
    return body


def presence(emulator: Emulator, user_id: str) -> None:
    """Tell the watchers of the user's channels that the user came online or went offline."""
    user = emulator.state.users.get(user_id)
    if user is not None:
        events.presence_changed(emulator, user)


def close_session(emulator: Emulator, connection: Connection) -> None:
    """Forget a closed connection; the user goes offline with their last one."""
    _, went_offline = emulator.hub.close(connection)
    user = emulator.state.users.get(connection.user_id)
    if user is None or not went_offline:
        return
    user.online = False
    user.last_active = now_ns()
    user.version += 1
    presence(emulator, user.id)
