"""The emulator's in-memory state: users, channels with members, messages and reads, tasks, app."""

from __future__ import annotations

from typing import Any

from . import clock

# User fields Stream keeps as built-ins; anything else a client sends is custom data.
USER_BUILTINS = frozenset(
    {
        "id",
        "role",
        "name",
        "image",
        "language",
        "teams",
        "invisible",
        "teams_role",
        "privacy_settings",
        "revoke_tokens_issued_before",
    }
)
# Read-only user fields a client may echo back; they are ignored on write.
USER_READ_ONLY = frozenset(
    {
        "created_at",
        "updated_at",
        "last_active",
        "online",
        "deactivated_at",
        "deleted_at",
        "banned",
        "shadow_banned",
        "blocked_user_ids",
        "devices",
        "mutes",
        "channel_mutes",
        "unread_count",
        "total_unread_count",
        "unread_channels",
        "unread_threads",
        "custom",
        "ban_expires",
        "avg_response_time",
        "bypass_moderation",
        "latest_hidden_channels",
    }
)
# Channel data keys that are not custom data (name and image are custom in Stream's model).
CHANNEL_BUILTINS = frozenset(
    {
        "members",
        "created_by",
        "created_by_id",
        "frozen",
        "disabled",
        "team",
        "invites",
        "config_overrides",
        "auto_translation_enabled",
        "auto_translation_language",
        "filter_tags",
        "truncated_by_id",
        "custom",
    }
)
CHANNEL_READ_ONLY = frozenset(
    {
        "id",
        "type",
        "cid",
        "created_at",
        "updated_at",
        "deleted_at",
        "last_message_at",
        "member_count",
        "message_count",
        "config",
        "own_capabilities",
        "hidden",
        "blocked",
        "truncated_at",
        "cooldown",
    }
)


class User:
    """A Stream user; `custom` holds every non-built-in field."""

    __slots__ = (
        "id",
        "role",
        "name",
        "image",
        "language",
        "teams",
        "invisible",
        "extra",
        "custom",
        "created_at",
        "updated_at",
        "deactivated_at",
        "deleted_at",
        "last_active",
        "version",
        "online",
    )
    # Not kept in the state file: a user is online only while a connection of theirs is open.
    _TRANSIENT = frozenset({"online"})

    def __init__(self, user_id: str, created_at: int) -> None:
        self.id = user_id
        self.role = "user"
        self.name: str | None = None
        self.image: str | None = None
        self.language = ""
        self.teams: list[str] = []
        self.invisible = False
        self.extra: dict[str, Any] = {}  # the other built-ins (teams_role, privacy_settings, ...)
        self.custom: dict[str, Any] = {}
        self.created_at = created_at
        self.updated_at = created_at
        self.deactivated_at: int | None = None
        self.deleted_at: int | None = None
        self.last_active: int | None = None
        self.version = 0  # bumped on every change, so rendered copies can be cached
        self.online = False

    def to_json(self) -> dict:
        """A plain dict for the state file."""
        return {k: getattr(self, k) for k in self.__slots__ if k not in self._TRANSIENT}

    @classmethod
    def from_json(cls, raw: dict) -> User:
        """The inverse of to_json."""
        user = cls(raw["id"], raw["created_at"])
        for key in cls.__slots__:
            if key in raw and key not in cls._TRANSIENT:
                setattr(user, key, raw[key])
        return user


class Member:
    """A user's membership of one channel."""

    __slots__ = (
        "user_id",
        "channel_role",
        "role",
        "custom",
        "created_at",
        "updated_at",
        "invited",
        "invite_accepted_at",
        "invite_rejected_at",
    )

    def __init__(
        self,
        user_id: str,
        created_at: int,
        channel_role: str = "channel_member",
        role: str = "member",
        custom: dict | None = None,
    ) -> None:
        self.user_id = user_id
        self.channel_role = channel_role
        self.role = role
        self.custom = custom or {}
        self.created_at = created_at
        self.updated_at = created_at
        self.invited = False
        self.invite_accepted_at: int | None = None
        self.invite_rejected_at: int | None = None

    def to_json(self) -> dict:
        """A plain dict for the state file."""
        return {k: getattr(self, k) for k in self.__slots__}

    @classmethod
    def from_json(cls, raw: dict) -> Member:
        """The inverse of to_json."""
        member = cls(raw["user_id"], raw["created_at"])
        for key in cls.__slots__:
            setattr(member, key, raw.get(key, getattr(member, key)))
        return member


class Read:
    """How far one member has read a channel."""

    __slots__ = ("last_read", "last_read_message_id", "unread_messages")

    def __init__(self, last_read: int, last_read_message_id: str | None = None, unread_messages: int = 0) -> None:
        self.last_read = last_read
        self.last_read_message_id = last_read_message_id
        self.unread_messages = unread_messages

    def to_json(self) -> dict:
        """A plain dict for the state file."""
        return {k: getattr(self, k) for k in self.__slots__}


class Message:
    """A message in a channel; a thread reply has `parent_id` (and type "reply")."""

    __slots__ = (
        "id",
        "text",
        "type",
        "user_id",
        "custom",
        "created_at",
        "updated_at",
        "parent_id",
        "show_in_channel",
        "reply_count",
        "restricted_visibility",
        "attachments",
        "reactions",
        "deleted_at",
        "pinned_at",
        "pinned_by",
        "pin_expires",
    )
    _CONSTRUCTED = ("id", "text", "type", "user_id", "custom", "created_at")  # from_json passes these to __init__

    def __init__(
        self,
        message_id: str,
        text: str,
        user_id: str,
        created_at: int,
        custom: dict | None = None,
        message_type: str = "regular",
    ) -> None:
        self.id = message_id
        self.text = text
        self.type = message_type
        self.user_id = user_id
        self.custom = custom or {}
        self.created_at = created_at
        self.updated_at = created_at
        self.parent_id: str | None = None
        self.show_in_channel = False
        self.reply_count = 0
        self.restricted_visibility: list[str] = []
        self.attachments: list[dict] = []
        # One per (user, type): {"type", "user_id", "score", "created_at", "updated_at"}, oldest first.
        self.reactions: list[dict] = []
        self.deleted_at: int | None = None
        self.pinned_at: int | None = None
        self.pinned_by: str | None = None
        self.pin_expires: int | None = None

    @property
    def in_channel(self) -> bool:
        """Whether the channel shows it: a regular message, or a reply sent with show_in_channel."""
        return self.parent_id is None or self.show_in_channel

    def to_json(self) -> dict:
        """A plain dict for the state file."""
        return {k: getattr(self, k) for k in self.__slots__}

    @classmethod
    def from_json(cls, raw: dict) -> Message:
        """The inverse of to_json."""
        message = cls(raw["id"], raw["text"], raw["user_id"], raw["created_at"], raw["custom"], raw["type"])
        for key in cls.__slots__:
            if key in raw and key not in cls._CONSTRUCTED:
                setattr(message, key, raw[key])
        return message


class Channel:
    """A channel; members keep their insertion order, as Stream lists them."""

    __slots__ = (
        "type",
        "id",
        "cid",
        "custom",
        "created_by_id",
        "created_at",
        "updated_at",
        "frozen",
        "disabled",
        "team",
        "members",
        "messages",
        "reads",
        "last_message_at",
        "distinct",
        "filter_tags",
        "thread_reads",
    )

    def __init__(self, channel_type: str, channel_id: str, created_by_id: str | None, created_at: int) -> None:
        self.type = channel_type
        self.id = channel_id
        self.cid = f"{channel_type}:{channel_id}"
        self.custom: dict[str, Any] = {}
        self.created_by_id = created_by_id
        self.created_at = created_at
        self.updated_at = created_at
        self.frozen = False
        self.disabled = False
        self.team: str | None = None
        self.members: dict[str, Member] = {}
        self.messages: list[Message] = []
        self.reads: dict[str, Read] = {}
        self.last_message_at: int | None = None
        self.distinct = channel_id.startswith("!members-")
        self.filter_tags: list[str] = []
        # user id -> parent message id -> that user's read state of the thread (participants only).
        self.thread_reads: dict[str, dict[str, Read]] = {}

    def message(self, message_id: str) -> Message | None:
        """The message (or reply) with this id, or None."""
        for message in reversed(self.messages):
            if message.id == message_id:
                return message
        return None

    def to_json(self) -> dict:
        """A plain dict for the state file."""
        raw = {k: getattr(self, k) for k in self.__slots__ if k not in ("members", "messages", "reads", "thread_reads")}
        raw["members"] = [m.to_json() for m in self.members.values()]
        raw["messages"] = [m.to_json() for m in self.messages]
        raw["reads"] = {uid: r.to_json() for uid, r in self.reads.items()}
        raw["thread_reads"] = {
            uid: {pid: r.to_json() for pid, r in threads.items()} for uid, threads in self.thread_reads.items()
        }
        return raw

    @classmethod
    def from_json(cls, raw: dict) -> Channel:
        """The inverse of to_json."""
        channel = cls(raw["type"], raw["id"], raw["created_by_id"], raw["created_at"])
        for key in ("custom", "updated_at", "frozen", "disabled", "team", "last_message_at", "filter_tags"):
            setattr(channel, key, raw.get(key, getattr(channel, key)))
        channel.thread_reads = {
            uid: {pid: Read(**r) for pid, r in threads.items()} for uid, threads in raw.get("thread_reads", {}).items()
        }
        channel.members = {m["user_id"]: Member.from_json(m) for m in raw.get("members", [])}
        channel.messages = [Message.from_json(m) for m in raw.get("messages", [])]
        channel.reads = {uid: Read(**r) for uid, r in raw.get("reads", {}).items()}
        return channel


class State:
    """Everything the emulator remembers; one instance is shared by both dialects."""

    def __init__(self) -> None:
        self.users: dict[str, User] = {}
        self.channels: dict[str, Channel] = {}
        self.tasks: dict[str, dict] = {}
        self.app: dict[str, Any] = {"webhook_url": "", "webhook_events": []}
        # Push devices per user id: {"id", "push_provider", "push_provider_name"?, "created_at"}.
        self.devices: dict[str, list[dict]] = {}
        # Uploaded files by id: (content type, file name, bytes). Kept in memory only.
        self.uploads: dict[str, tuple[str, str, bytes]] = {}
        # clock.monotonic() of each user's first creation, for the visibility-delay fault.
        # Not persisted: after a restart every stored user counts as long visible.
        self.user_born: dict[str, float] = {}

    def add_user(self, user: User) -> None:
        """Store a new user and start its visibility clock."""
        self.users[user.id] = user
        self.user_born.setdefault(user.id, clock.monotonic())

    def to_json(self) -> dict:
        """The whole state as plain data for the state file."""
        return {
            "version": 1,
            "users": [u.to_json() for u in self.users.values()],
            "channels": [c.to_json() for c in self.channels.values()],
            "tasks": self.tasks,
            "app": self.app,
            "devices": self.devices,
        }

    @classmethod
    def from_json(cls, raw: dict) -> State:
        """The inverse of to_json."""
        state = cls()
        state.users = {u["id"]: User.from_json(u) for u in raw.get("users", [])}
        state.channels = {c["type"] + ":" + c["id"]: Channel.from_json(c) for c in raw.get("channels", [])}
        state.tasks = raw.get("tasks", {})
        state.app.update(raw.get("app", {}))
        state.devices = raw.get("devices", {})
        return state
