"""The built-in channel types' permissions for user tokens (server tokens bypass them, as on Stream).

On every built-in type but `livestream`, only members read and write a channel (Stream: "The
livestream type ... does not require membership to read or write"). A refused action answers
HTTP 403, code 17: `User '<id>' with role '<role>' is not allowed to perform action <Action> in
scope '<type>'`, the text Stream sends (the action names are those of Stream's permissions reference).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import NOT_ALLOWED, StreamError

if TYPE_CHECKING:
    from .call import Call
    from .state import Channel, Message, User

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

# Channel types whose channels anyone may read and write.
OPEN_TYPES = frozenset({"livestream"})
# Stream's app-wide admin role may do anything in any channel.
APP_ADMIN_ROLE = "admin"
# Moderators may change and delete others' messages.
MODERATOR_ROLES = frozenset({"channel_moderator"})


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


# The channel's `own_capabilities` (Stream's names; the client SDKs gate their UI on them): what a
# member of a built-in type may do here, what a non-member may do on an open type, what moderators
# and the server may do besides. Capabilities of what the emulator does not serve (flag, mute, ban,
# search, polls) are left out, so a client offers no action that would fail.
READER_CAPABILITIES = ("connect-events", "read-events", "typing-events")
WRITER_CAPABILITIES = (
    "create-attachment",
    "delete-own-message",
    "quote-message",
    "send-custom-events",
    "send-links",
    "send-message",
    "send-reaction",
    "send-reply",
    "send-typing-events",
    "update-own-message",
    "upload-file",
)
MEMBER_CAPABILITIES = (
    "delete-channel",
    "leave-channel",
    "pin-message",
    "update-channel",
    "update-channel-members",
)
MODERATOR_CAPABILITIES = ("delete-any-message", "update-any-message")


_EVERYTHING = tuple(sorted({*READER_CAPABILITIES, *WRITER_CAPABILITIES, *MEMBER_CAPABILITIES, *MODERATOR_CAPABILITIES}))
_MEMBER = tuple(sorted({*READER_CAPABILITIES, *WRITER_CAPABILITIES, *MEMBER_CAPABILITIES}))
_OPEN_VISITOR = tuple(sorted({*READER_CAPABILITIES, *WRITER_CAPABILITIES, "join-channel"}))


def capabilities(channel: Channel, viewer: str | None, users: dict[str, User]) -> list[str]:
    """own_capabilities of the channel for the user `viewer` (None: the server, which may do everything)."""
    if viewer is None:
        return list(_EVERYTHING)
    member = channel.members.get(viewer)
    user = users.get(viewer)
    if (user is not None and user.role == APP_ADMIN_ROLE) or (
        member is not None and member.channel_role in MODERATOR_ROLES
    ):
        return list(_EVERYTHING)
    if member is not None:
        return list(_MEMBER)
    return list(_OPEN_VISITOR) if channel.type in OPEN_TYPES else []
