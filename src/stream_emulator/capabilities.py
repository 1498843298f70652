"""Who may do what in a channel: the roles that widen it, and the channel's `own_capabilities`.

On every built-in type but `livestream`, only members read and write a channel (Stream: "The
livestream type ... does not require membership to read or write"). permissions.py refuses a call
by these rules; the dialects render `own_capabilities` from them.
"""

from __future__ import annotations

from .state import Channel, User

# Channel types whose channels anyone may read and write.
OPEN_TYPES = frozenset({"livestream"})
# Stream's app-wide admin role may do anything in any channel.
APP_ADMIN_ROLE = "admin"
# Moderators may change and delete others' messages.
MODERATOR_ROLES = frozenset({"channel_moderator"})


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
