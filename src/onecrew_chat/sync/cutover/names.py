"""The old backend's generic pair names ("Conversation <id>"): removed from Stream through the outbox.

The app's list shows a channel's `name` before the other member's name, so an adopted pair whose channel still
carries the old backend's generic name would be listed as "Conversation 1f0c..." instead of the other person. Our
records never give a pair a name; this removes the generic one from the channel in Stream (UpdateChannelPartial,
`unset: ["name"]`), as an outbox row written with the adoption, so that the worker does it with its retries. A pair
channel with any other name keeps it.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from onecrew_chat.logging import get_logger
from onecrew_chat.models import OutboxMessage
from onecrew_chat.outbox import repository as outbox
from onecrew_chat.runtime import Runtime
from onecrew_chat.stream.errors import StreamRequestError

log = get_logger(__name__)

UNSET_NAME = "channel.unset_name"
NOT_FOUND = 404
# What the old backend named every pair channel: "Conversation " and an id (a uuid, or a channel id).
GENERIC_NAME = re.compile(r"Conversation [0-9A-Za-z_:-]+")


def is_generic(name: str | None) -> bool:
    """Whether a pair channel's name is the old backend's generic one."""
    return name is not None and GENERIC_NAME.fullmatch(name.strip()) is not None


def dedupe_key(channel_type: str, channel_id: str) -> str:
    """One pending row per channel."""
    return f"{UNSET_NAME}:{channel_type}:{channel_id}"


async def queue_unset_names(session: AsyncSession, channels: list[tuple[str, str]]) -> list[str]:
    """Queue the removal of the generic name of these (channel_type, channel_id) in the caller's transaction;
    returns the channel ids queued now (a pending row is left as it is)."""
    keys = {dedupe_key(t, i): (t, i) for t, i in channels}
    if not keys:
        return []
    pending = set(
        await session.scalars(
            select(OutboxMessage.dedupe_key).where(
                OutboxMessage.kind == UNSET_NAME,
                OutboxMessage.status == outbox.PENDING,
                OutboxMessage.dedupe_key.in_(sorted(keys)),
            )
        )
    )
    new = {key: value for key, value in keys.items() if key not in pending}
    items = [({"channel_type": t, "channel_id": i}, key) for key, (t, i) in new.items()]
    await outbox.add_many(session, UNSET_NAME, items)  # one statement
    return sorted(channel_id for _, channel_id in new.values())


async def unset_name(runtime: Runtime, payload: dict[str, Any]) -> None:
    """Outbox handler: remove the channel's name in Stream (safe to repeat: unsetting an absent field is a no-op);
    a channel deleted from Stream meanwhile has no name left to remove (done, not a dead letter)."""
    channel_type, channel_id = str(payload["channel_type"]), str(payload["channel_id"])
    try:
        await runtime.stream.unset_channel_fields(channel_type, channel_id, ["name"])
    except StreamRequestError as exc:
        if exc.status != NOT_FOUND:
            raise
        log.info("adoption.generic_name_gone", channel_id=channel_id, reason="the channel is not in Stream")
        return
    log.info("adoption.generic_name_removed", channel_id=channel_id)
