"""Refusing a user's call that the channel's rules (capabilities.py) do not allow; server tokens
bypass them, as on Stream. A refused action answers HTTP 403, code 17, in the text Stream sends:
`User '<id>' with role '<role>' is not allowed to perform action <Action> in scope '<type>'` (the
action names are those of Stream's permissions reference).
"""

from __future__ import annotations

from .call import Call
from .capabilities import APP_ADMIN_ROLE, MODERATOR_ROLES, OPEN_TYPES
from .errors import NOT_ALLOWED, StreamError
from .state import Channel, Message

READ_CHANNEL = "ReadChannel"
CREATE_MESSAGE = "CreateMessage"
UPDATE_CHANNEL = "UpdateChannel"
UPDATE_CHANNEL_MEMBERS = "UpdateChannelMembers"
DELETE_CHANNEL = "DeleteChannel"
CREATE_REACTION = "CreateReaction"
DELETE_REACTION = "DeleteReaction"
UPDATE_MESSAGE = "UpdateMessage"
DELETE_MESSAGE = "DeleteMessage"
SEND_CUSTOM_EVENT = "SendCustomEvent"
UPLOAD_ATTACHMENT = "UploadAttachment"


def refused(call: Call, channel: Channel, action: str) -> StreamError:
    """Stream's 403 for a user who may not perform `action` on the channel."""
    user = call.state.users.get(call.caller.user_id or "")
    role = user.role if user is not None else "user"
    return StreamError(
        NOT_ALLOWED,
        f"User '{call.caller.user_id}' with role '{role}' is not allowed to perform action {action} "
        f"in scope '{channel.type}'",
    )


def can(call: Call, channel: Channel, action: str) -> bool:
    """Whether the caller may perform the action on the channel (on the built-in types every action
    a member may take needs membership, so the action only names the refusal)."""
    if call.caller.is_server or channel.type in OPEN_TYPES:
        return True
    user_id = call.caller.user_id
    if user_id is None:
        return False
    user = call.state.users.get(user_id)
    return user_id in channel.members or (user is not None and user.role == APP_ADMIN_ROLE)


def check(call: Call, channel: Channel, action: str) -> None:
    """Raise Stream's 403 unless the caller may perform the action on the channel."""
    if not can(call, channel, action):
        raise refused(call, channel, action)


def check_own(call: Call, channel: Channel, message: Message, action: str) -> None:
    """Update or delete a message: members their own, channel moderators anyone's."""
    check(call, channel, action)
    if call.caller.is_server or message.user_id == call.caller.user_id:
        return
    member = channel.members.get(call.caller.user_id or "")
    if member is None or member.channel_role not in MODERATOR_ROLES:
        raise refused(call, channel, action)
