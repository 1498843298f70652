"""Stream's built-in channel types and the config each returns."""

from __future__ import annotations

from functools import cache

# Stream's Creating Channels and Channel Types pages between them
# (docs/reference/stream-api.md#channel-types).
BUILT_IN = frozenset({"messaging", "livestream", "team", "gaming", "commerce", "ai"})

# A fixed instant so the configs render identically in every run.
_CONFIG_TIME = 1_700_000_000_000_000_000


@cache
def config_for(channel_type: str) -> dict:
    """The config of a built-in type, modelled on a real `messaging` config
    (docs/reference/stream-api.md#channel-types)."""
    return {
        "name": channel_type,
        "created_at": _CONFIG_TIME,
        "updated_at": _CONFIG_TIME,
        "typing_events": True,
        "read_events": True,
        "connect_events": True,
        "delivery_events": True,
        "search": True,
        "reactions": True,
        "replies": True,
        "quotes": True,
        "mutes": True,
        "uploads": True,
        "url_enrichment": True,
        "custom_events": True,
        "push_notifications": True,
        "reminders": True,
        "polls": True,
        "shared_locations": True,
        "count_messages": True,
        "mark_messages_pending": False,
        "skip_last_msg_update_for_system_msgs": False,
        "user_message_reminders": False,
        "message_retention": "infinite",
        "max_message_length": 5000,
        "automod": "disabled",
        "automod_behavior": "flag",
        "blocklist_behavior": "flag",
        "commands": [
            {"name": "giphy", "description": "Post a random gif to the channel", "args": "[text]", "set": "fun_set"}
        ],
    }
