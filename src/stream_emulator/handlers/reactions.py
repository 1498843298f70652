"""Send a reaction (POST /messages/{id}/reaction), enough for the `reaction.new` event Stream sends to webhooks.

Body `{"reaction": {"type", "user_id" | "user": {"id"}, "score"?}, "enforce_unique"?}` (a user token acts as
itself). A user's reaction of the same type replaces the earlier one; `enforce_unique` replaces all of theirs on
the message. The reactions are kept per message (and in the state file); messages do not show them yet
(`latest_reactions` and `reaction_counts` stay empty).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import events
from ..call import Call, drop_nulls
from ..clock import now_ns, rfc3339
from ..errors import input_error, not_found
from ..state import Channel, Message


def _find(call: Call, message_id: str) -> tuple[Channel, Message]:
    for channel in call.state.channels.values():
        message = channel.message(message_id)
        if message is not None:
            return channel, message
    raise not_found(f"message {message_id} does not exist")


def send(call: Call) -> dict:
    """POST /messages/{id}/reaction."""
    channel, message = _find(call, call.params[0])
    body = drop_nulls(call.body)
    raw = body.get("reaction")
    if not isinstance(raw, dict) or not raw.get("type"):
        raise input_error("reaction.type is a required field", **{"reaction.type": "required"})
    user = call.require_user(call.acting_user_id(raw, "reaction."))
    now = now_ns()
    reaction = {
        "type": str(raw["type"]),
        "user_id": user.id,
        "score": int(raw.get("score") or 1),
        "created_at": now,
        "updated_at": now,
    }
    kept = [
        r
        for r in call.state.reactions.get(message.id, [])
        if r["user_id"] != user.id or (r["type"] != reaction["type"] and not body.get("enforce_unique"))
    ]
    call.state.reactions[message.id] = [*kept, reaction]
    if call.webhooks_on:
        v1 = call.emulator.v1
        events.channel_event(
            call,
            "reaction.new",
            channel,
            user_id=user.id,
            message=v1.message(channel, message, call.state.users),
            reaction=rendered(reaction, message, v1.user(user), rfc3339),
        )
    return {
        "message": call.dialect.message(channel, message, call.state.users),
        "reaction": rendered(reaction, message, call.dialect.user(user), call.dialect.time),
    }


def rendered(reaction: dict, message: Message, user: dict, render: Callable[[int], Any]) -> dict:
    """A reaction as Stream shows it (ReactionResponse), times written by `render`."""
    return {
        "message_id": message.id,
        "user_id": reaction["user_id"],
        "user": user,
        "type": reaction["type"],
        "score": reaction["score"],
        "created_at": render(reaction["created_at"]),
        "updated_at": render(reaction["updated_at"]),
        "custom": {},
    }
