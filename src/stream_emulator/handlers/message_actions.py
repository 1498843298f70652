"""What a chat screen does to one message or channel besides sending: get, update (full and
partial), delete, react and unreact, and the typing/custom events of `/channels/{type}/{id}/event`."""

from __future__ import annotations

from .. import events, permissions
from ..call import Call, check_object, check_type, drop_nulls
from ..clock import now_ns, parse_time
from ..errors import input_error, not_found
from ..state import Channel, Message
from .messages import MESSAGE_BUILTINS, _attachments

# Event types a client may not send through /event: Stream sends these itself.
_RESERVED_PREFIXES = (
    "message.",
    "channel.",
    "member.",
    "reaction.",
    "notification.",
    "user.",
    "health.",
    "connection.",
)
MAX_REACTION_TYPE = 30


def _pin(call: Call, message: Message, fields: dict, actor: dict) -> None:
    """`pinned` (true pins now, by the acting user named in `actor`; false unpins) and `pin_expires`."""
    if "pinned" in fields:
        if fields["pinned"]:
            message.pinned_at = message.pinned_at or now_ns()
            message.pinned_by = call.acting_user_id(actor)
        else:
            message.pinned_at = message.pinned_by = message.pin_expires = None
    if fields.get("pin_expires") is not None:
        expires = parse_time(fields["pin_expires"])
        if expires is None:
            raise input_error("pin_expires must be a time (RFC 3339)", pin_expires="invalid")
        message.pin_expires = expires


def _render(call: Call, channel: Channel, message: Message) -> dict:
    return call.dialect.message(channel, message, call.state.users, call.caller.user_id)


def _message_event(call: Call, event_type: str, channel: Channel, message: Message, **extra: object) -> None:
    if events.wanted(call, channel):
        events.channel_event(
            call,
            event_type,
            channel,
            user_id=call.caller.user_id or message.user_id,
            message=call.emulator.v1.message(channel, message, call.state.users),
            message_id=message.id,
            **extra,
        )


def get_message(call: Call) -> dict:
    """GET /messages/{id}."""
    channel, message = call.message(call.params[0])
    permissions.check(call, channel, permissions.READ_CHANNEL)
    return {"message": _render(call, channel, message)}


def update_message(call: Call) -> dict:
    """POST /messages/{id} {message}: replace the message's text, attachments and custom data."""
    channel, message = call.message(call.params[0])
    permissions.check_own(call, channel, message, permissions.UPDATE_MESSAGE)
    raw = drop_nulls(check_object(call.body, "message"))
    if raw.get("id") not in (None, message.id):
        raise input_error(f"message.id {raw.get('id')} does not match the message {message.id} of the path")
    _check_not_deleted(message)
    message.text = str(raw.get("text") or "")
    message.attachments = _attachments(raw.get("attachments"))
    _pin(call, message, raw, raw)
    custom = dict(raw.get("custom") or {})
    custom.update((k, v) for k, v in raw.items() if k not in MESSAGE_BUILTINS)
    message.custom = custom
    return _updated(call, channel, message)


def _check_not_deleted(message: Message) -> None:
    if message.deleted_at is not None:
        raise input_error(f"message {message.id} is deleted and cannot be updated")


def _updated(call: Call, channel: Channel, message: Message) -> dict:
    """The message changed: stamped, message.updated to the watchers, and the response."""
    message.updated_at = now_ns()
    _message_event(call, "message.updated", channel, message)
    return {"message": _render(call, channel, message)}


def update_message_partial(call: Call) -> dict:
    """PUT /messages/{id} {set, unset}: change some fields of the message."""
    channel, message = call.message(call.params[0])
    permissions.check_own(call, channel, message, permissions.UPDATE_MESSAGE)
    to_set = drop_nulls(call.body.get("set"))
    to_unset = call.body.get("unset") or []
    _check_not_deleted(message)
    _pin(call, message, to_set, call.body)
    for key, value in to_set.items():
        if key in ("pinned", "pin_expires"):
            continue
        if key == "text":
            message.text = str(value)
        elif key == "attachments":
            message.attachments = _attachments(value)
        elif key not in MESSAGE_BUILTINS:
            message.custom[key] = value
    for key in to_unset:
        if key == "text":
            message.text = ""
        elif key == "attachments":
            message.attachments = []
        else:
            message.custom.pop(key, None)
    return _updated(call, channel, message)


def delete_message(call: Call) -> dict:
    """DELETE /messages/{id}[?hard=true]: soft delete (type "deleted") or remove it."""
    channel, message = call.message(call.params[0])
    permissions.check_own(call, channel, message, permissions.DELETE_MESSAGE)
    hard = call.query.get("hard") in ("true", "1")
    now = now_ns()
    message.deleted_at = message.deleted_at or now
    message.type = "deleted"
    message.updated_at = now
    rendered = _render(call, channel, message)
    _message_event(call, "message.deleted", channel, message, hard_delete=hard)
    if hard:
        channel.messages.remove(message)
    return {"message": rendered}


def send_reaction(call: Call) -> dict:
    """POST /messages/{id}/reaction {reaction: {type, score?}, enforce_unique?}."""
    channel, message = call.message(call.params[0])
    permissions.check(call, channel, permissions.CREATE_REACTION)
    raw = check_object(call.body, "reaction")
    kind = check_type(raw, "reaction")
    if len(kind) > MAX_REACTION_TYPE:
        raise input_error(f"reaction.type must be at most {MAX_REACTION_TYPE} characters", type="too long")
    user_id = call.require_user(call.acting_user_id(raw, "reaction.")).id
    score = raw.get("score", 1)
    if not isinstance(score, int) or isinstance(score, bool) or score < 1:
        raise input_error("reaction.score must be a positive whole number", score="invalid")
    now = now_ns()
    kept = [r for r in message.reactions if r["user_id"] != user_id or r["type"] != kind]
    if call.body.get("enforce_unique"):
        kept = [r for r in kept if r["user_id"] != user_id]
    old = next((r for r in message.reactions if r["user_id"] == user_id and r["type"] == kind), None)
    reaction = {
        "type": kind,
        "user_id": user_id,
        "score": score,
        "created_at": old["created_at"] if old else now,
        "updated_at": now,
    }
    message.reactions = [*kept, reaction]
    return _reacted(call, "reaction.new" if old is None else "reaction.updated", channel, message, reaction, user_id)


def delete_reaction(call: Call) -> dict:
    """DELETE /messages/{id}/reaction/{type}[?user_id=]: remove the caller's reaction of that type."""
    channel, message = call.message(call.params[0])
    permissions.check(call, channel, permissions.DELETE_REACTION)
    kind = call.params[1]
    user_id = call.caller.user_id or call.query.get("user_id")
    if not user_id:
        raise input_error("user_id is required for server side requests", user_id="required")
    reaction = next((r for r in message.reactions if r["user_id"] == user_id and r["type"] == kind), None)
    if reaction is None:
        raise not_found(f"reaction {kind} of user {user_id} on message {message.id} does not exist")
    message.reactions.remove(reaction)
    return _reacted(call, "reaction.deleted", channel, message, reaction, user_id)


def _reacted(call: Call, event_type: str, channel: Channel, message: Message, reaction: dict, user_id: str) -> dict:
    """A reaction changed: the event to the watchers, and the response."""
    rendered = call.dialect.reaction(message, reaction, call.state.users)
    if events.wanted(call, channel):
        events.channel_event(
            call,
            event_type,
            channel,
            user_id=user_id,
            message=call.emulator.v1.message(channel, message, call.state.users),
            reaction=call.emulator.v1.reaction(message, reaction, call.state.users),
        )
    return {"message": _render(call, channel, message), "reaction": rendered}


def send_event(call: Call) -> dict:
    """POST /channels/{type}/{id}/event {event}: typing.start/stop and custom events to the watchers."""
    channel = call.channel()
    permissions.check(call, channel, permissions.SEND_CUSTOM_EVENT)
    raw = check_object(call.body, "event")
    kind = check_type(raw, "event")
    if not kind.startswith("typing.") and kind.startswith(_RESERVED_PREFIXES):
        raise input_error(f"event type {kind} is reserved for events Stream sends itself", type="reserved")
    user_id = call.require_user(call.acting_user_id(raw, "event.")).id
    extra = {k: v for k, v in drop_nulls(raw).items() if k not in ("type", "user", "user_id", "cid", "channel")}
    now = now_ns()
    event = events.channel_body(call, kind, channel, user_id, **extra)
    del event["channel"]
    # Typing and custom events go to the watchers only: Stream's webhook events list names neither.
    events.deliver(call.emulator, event, channel=channel, webhook=False)
    user = call.state.users[user_id]
    return {"event": dict(event, user=call.dialect.user(user), created_at=call.dialect.time(now))}
