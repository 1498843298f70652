"""Message pagination of a channel query (`messages: {limit, id_lt | id_lte | id_gt | id_gte |
created_at_before | created_at_before_or_equal | created_at_after | created_at_after_or_equal}`).

As Stream documents it: a page is always returned oldest first; the "before" bounds give the
newest `limit` messages older than the bound, the "after" bounds the oldest `limit` newer than it.
A bound naming a message the channel does not have gives an empty page (nothing is before or after
a message that is not there).
"""

from __future__ import annotations

from typing import Any

from ..call import check_count
from ..clock import parse_time
from ..errors import input_error
from ..state import Channel, Message

DEFAULT_LIMIT = 25
MAX_LIMIT = 300
_BEFORE = {"id_lt": False, "id_lte": True}
_AFTER = {"id_gt": False, "id_gte": True}
_TIME_BEFORE = {"created_at_before": False, "created_at_before_or_equal": True}
_TIME_AFTER = {"created_at_after": False, "created_at_after_or_equal": True}


def page(channel: Channel, options: Any) -> list[Message]:
    """The page of the channel's messages that the options ask for, oldest first."""
    options = options if isinstance(options, dict) else {}
    limit = check_count("messages.limit", options.get("limit"), DEFAULT_LIMIT, MAX_LIMIT)
    shown = [m for m in channel.messages if m.in_channel]
    if limit == 0:
        return []
    for key, inclusive in _BEFORE.items():
        if options.get(key):
            at = _index(shown, str(options[key]))
            if at is None:
                return []
            end = at + 1 if inclusive else at
            return shown[max(0, end - limit) : end]
    for key, inclusive in _AFTER.items():
        if options.get(key):
            at = _index(shown, str(options[key]))
            if at is None:
                return []
            start = at if inclusive else at + 1
            return shown[start : start + limit]
    for key, inclusive in _TIME_BEFORE.items():
        if options.get(key):
            bound = _time(options, key)
            older = [m for m in shown if m.created_at < bound or (inclusive and m.created_at == bound)]
            return older[-limit:]
    for key, inclusive in _TIME_AFTER.items():
        if options.get(key):
            bound = _time(options, key)
            newer = [m for m in shown if m.created_at > bound or (inclusive and m.created_at == bound)]
            return newer[:limit]
    return shown[-limit:]


def _index(messages: list[Message], message_id: str) -> int | None:
    for at in range(len(messages) - 1, -1, -1):
        if messages[at].id == message_id:
            return at
    return None


def _time(options: dict, key: str) -> int:
    bound = parse_time(options[key])
    if bound is None:
        raise input_error(f"messages.{key} must be a time (RFC 3339)", **{key: "invalid"})
    return bound
