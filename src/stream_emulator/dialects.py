"""How the two wire dialects write the same objects.

v1 (root paths: stream-chat for Python and JavaScript) flattens custom fields next to the built-in
ones and writes times as RFC 3339 strings; v2 (/api/v2: getstream) nests them under "custom" and
writes times as integer Unix nanoseconds (docs/reference/stream-api.md#wire-dialects).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .capabilities import capabilities
from .channel_types import config_for
from .clock import rfc3339
from .state import Channel, Member, Message, Read, User


class Dialect:
    """Renders state objects as one dialect's JSON-ready dicts."""

    def __init__(self, name: str, time: Callable[[int], Any], flatten: bool) -> None:
        self.name = name
        self.time = time
        self.flatten = flatten
        self._users: dict[str, tuple[User, int, dict]] = {}
        self._configs: dict[str, dict] = {}

    def _custom(self, body: dict, custom: dict) -> dict:
        if self.flatten:
            for key, value in custom.items():
                body.setdefault(key, value)
        else:
            body["custom"] = custom
        return body

    def user(self, user: User) -> dict:
        """The user as embedded in channels, members and messages (cached until it changes)."""
        cached = self._users.get(user.id)
        if cached is not None and cached[0] is user and cached[1] == user.version:
            return cached[2]
        body = {
            "id": user.id,
            "role": user.role,
            "created_at": self.time(user.created_at),
            "updated_at": self.time(user.updated_at),
            "banned": False,
            "online": user.online and not user.invisible,
            "invisible": user.invisible,
            "shadow_banned": False,
            "language": user.language,
            "teams": list(user.teams),
            "blocked_user_ids": [],
        }
        if user.name is not None:
            body["name"] = user.name
        if user.image is not None:
            body["image"] = user.image
        if user.last_active is not None:
            body["last_active"] = self.time(user.last_active)
        if user.deactivated_at is not None:
            body["deactivated_at"] = self.time(user.deactivated_at)
        if user.deleted_at is not None:
            body["deleted_at"] = self.time(user.deleted_at)
        for key, value in user.extra.items():
            body[key] = self.time(value) if key == "revoke_tokens_issued_before" else value
        self._custom(body, dict(user.custom))
        self._users[user.id] = (user, user.version, body)
        return body

    def full_user(self, user: User) -> dict:
        """The user as the users endpoints return it (FullUserResponse)."""
        body = dict(self.user(user))
        body.update(
            devices=[],
            mutes=[],
            channel_mutes=[],
            total_unread_count=0,
            unread_channels=0,
            unread_count=0,
            unread_threads=0,
        )
        return body

    def forget_user(self, user_id: str) -> None:
        """Drop a cached rendering (the user was deleted)."""
        self._users.pop(user_id, None)

    def config(self, channel_type: str) -> dict:
        """The channel type's config, rendered once."""
        cached = self._configs.get(channel_type)
        if cached is None:
            raw = config_for(channel_type)
            cached = dict(raw, created_at=self.time(raw["created_at"]), updated_at=self.time(raw["updated_at"]))
            self._configs[channel_type] = cached
        return cached

    def channel(self, channel: Channel, users: dict[str, User], viewer: str | None = None) -> dict:
        """The channel object (ChannelResponse); `own_capabilities` are the viewer's (None: the server's)."""
        body = {
            "id": channel.id,
            "type": channel.type,
            "cid": channel.cid,
            "created_at": self.time(channel.created_at),
            "updated_at": self.time(channel.updated_at),
            "frozen": channel.frozen,
            "disabled": channel.disabled,
            "member_count": len(channel.members),
            "message_count": len(channel.messages),
            "config": self.config(channel.type),
            "own_capabilities": capabilities(channel, viewer, users),
            "hidden": False,
            "blocked": False,
        }
        creator = users.get(channel.created_by_id) if channel.created_by_id else None
        if creator is not None:
            body["created_by"] = self.user(creator)
        if channel.last_message_at is not None:
            body["last_message_at"] = self.time(channel.last_message_at)
        if channel.team:
            body["team"] = channel.team
        body["filter_tags"] = list(channel.filter_tags)
        return self._custom(body, channel.custom)

    def member(self, member: Member, users: dict[str, User]) -> dict:
        """One channel member (ChannelMemberResponse)."""
        body = {
            "user_id": member.user_id,
            "status": "member",
            "created_at": self.time(member.created_at),
            "updated_at": self.time(member.updated_at),
            "banned": False,
            "shadow_banned": False,
            "role": member.role,
            "channel_role": member.channel_role,
            "notifications_muted": False,
        }
        user = users.get(member.user_id)
        if user is not None:
            body["user"] = self.user(user)
        if member.channel_role == "channel_moderator":
            body["is_moderator"] = True
        if member.invited:
            body["invited"] = True
        if member.invite_accepted_at is not None:
            body["invite_accepted_at"] = self.time(member.invite_accepted_at)
        if member.invite_rejected_at is not None:
            body["invite_rejected_at"] = self.time(member.invite_rejected_at)
        return self._custom(body, member.custom)

    def members(self, channel: Channel, users: dict[str, User], limit: int = 100, offset: int = 0) -> list[dict]:
        """The channel's members in the order they joined."""
        values = list(channel.members.values())[offset : offset + limit]
        return [self.member(m, users) for m in values]

    def message(self, channel: Channel, message: Message, users: dict[str, User], viewer: str | None = None) -> dict:
        """One message (MessageResponse); `own_reactions` are the viewer's."""
        user = users.get(message.user_id)
        counts: dict[str, int] = {}
        scores: dict[str, int] = {}
        groups: dict[str, dict] = {}
        for reaction in message.reactions:
            kind = reaction["type"]
            counts[kind] = counts.get(kind, 0) + 1
            scores[kind] = scores.get(kind, 0) + reaction["score"]
            group = groups.setdefault(
                kind,
                {
                    "count": 0,
                    "sum_scores": 0,
                    "first_reaction_at": self.time(reaction["created_at"]),
                    "last_reaction_at": self.time(reaction["created_at"]),
                    "latest_reactions_by": [],
                },
            )
            group["count"] += 1
            group["sum_scores"] += reaction["score"]
            group["last_reaction_at"] = self.time(reaction["created_at"])
            # The newest reactors of the type first, as Stream lists them.
            group["latest_reactions_by"].insert(
                0,
                {
                    "user_id": reaction["user_id"],
                    "created_at": self.time(reaction["created_at"]),
                    "user": self._user_or_id(reaction["user_id"], users),
                },
            )
        latest = [self.reaction(message, r, users) for r in reversed(message.reactions[-10:])]
        own = [self.reaction(message, r, users) for r in message.reactions if viewer and r["user_id"] == viewer]
        body = {
            "id": message.id,
            "text": message.text,
            "html": _html(message.text),
            "type": message.type,
            "cid": channel.cid,
            "user": self.user(user) if user is not None else {"id": message.user_id},
            "created_at": self.time(message.created_at),
            "updated_at": self.time(message.updated_at),
            "attachments": list(message.attachments),
            "latest_reactions": latest,
            "own_reactions": own,
            "mentioned_users": [],
            "reaction_counts": counts,
            "reaction_scores": scores,
            "reaction_groups": groups,
            "reply_count": message.reply_count,
            "deleted_reply_count": 0,
            "silent": False,
            "pinned": message.pinned_at is not None,
            "pinned_at": self.time(message.pinned_at) if message.pinned_at is not None else None,
            "pinned_by": self._user_or_id(message.pinned_by, users) if message.pinned_by is not None else None,
            "pin_expires": self.time(message.pin_expires) if message.pin_expires is not None else None,
            "shadowed": False,
            "mentioned_channel": False,
            "mentioned_here": False,
            "restricted_visibility": list(message.restricted_visibility),
        }
        if message.parent_id is not None:
            body["parent_id"] = message.parent_id
            body["show_in_channel"] = message.show_in_channel
        if message.deleted_at is not None:
            body["deleted_at"] = self.time(message.deleted_at)
        return self._custom(body, message.custom)

    def _user_or_id(self, user_id: str, users: dict[str, User]) -> dict:
        user = users.get(user_id)
        return self.user(user) if user is not None else {"id": user_id}

    def reaction(self, message: Message, reaction: dict, users: dict[str, User]) -> dict:
        """One reaction (ReactionResponse)."""
        user = users.get(reaction["user_id"])
        return {
            "message_id": message.id,
            "user_id": reaction["user_id"],
            "user": self.user(user) if user is not None else {"id": reaction["user_id"]},
            "type": reaction["type"],
            "score": reaction["score"],
            "created_at": self.time(reaction["created_at"]),
            "updated_at": self.time(reaction["updated_at"]),
            "custom": {},
        }

    def read(self, user_id: str, read: Read, users: dict[str, User]) -> dict:
        """One member's read state (ReadStateResponse)."""
        user = users.get(user_id)
        body = {
            "user": self.user(user) if user is not None else {"id": user_id},
            "last_read": self.time(read.last_read),
            "unread_messages": read.unread_messages,
        }
        if read.last_read_message_id:
            body["last_read_message_id"] = read.last_read_message_id
        return body

    def channel_state(
        self,
        channel: Channel,
        users: dict[str, User],
        *,
        messages: int | list[Message] = 25,
        member_limit: int = 100,
        watchers: list[str] | None = None,
        viewer: str | None = None,
    ) -> dict:
        """channel + members + messages + reads, as get-or-create and query channels return.

        `messages`: how many of the newest to show, or the page to show; `watchers`: the ids of
        the users watching; `viewer`: the user asking (their membership is shown)."""
        if isinstance(messages, int):
            # A thread-only reply lives in its thread: the channel's messages leave it out.
            shown = [m for m in channel.messages if m.in_channel]
            messages = shown[-messages:] if messages > 0 else []
        watching = watchers or []
        member = channel.members.get(viewer) if viewer is not None else None
        return {
            "channel": self.channel(channel, users, viewer),
            "members": self.members(channel, users, member_limit),
            "messages": [self.message(channel, m, users, viewer) for m in messages],
            "pinned_messages": [],
            "read": [self.read(uid, r, users) for uid, r in channel.reads.items()],
            "watcher_count": len(watching),
            "watchers": [self.user(users[w]) for w in watching if w in users],
            "threads": [],
            "hidden": False,
            "membership": self.member(member, users) if member is not None else None,
        }


def _html(text: str) -> str:
    if not text:
        return ""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f"<p>{escaped}</p>\n"


def _identity(ns: int) -> int:
    return ns


def make_v1() -> Dialect:
    """The root-path dialect: flattened custom fields, RFC 3339 times."""
    return Dialect("v1", rfc3339, flatten=True)


def make_v2() -> Dialect:
    """The /api/v2 dialect: nested custom fields, integer nanosecond times."""
    return Dialect("v2", _identity, flatten=False)
