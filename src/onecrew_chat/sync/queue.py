"""What the sync layer queues in the outbox: a conversation's provisioning and an identity's profile sync.

Both are written in the caller's transaction, so the work is stored with the change that needs it.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncSession

from onecrew_chat.identity import ChatStatus
from onecrew_chat.logging import get_logger
from onecrew_chat.models import OutboxMessage
from onecrew_chat.outbox import repository as outbox
from onecrew_chat.sync.read_model import Provisionable

log = get_logger(__name__)

PROVISION = "conversation.provision"
IDENTITY_SYNC = "identity.sync"


def provision_dedupe_key(conversation_id: str) -> str:
    """The outbox dedupe key of a conversation's provisioning row."""
    return f"{PROVISION}:{conversation_id}"


async def enqueue_provision(
    session: AsyncSession, conversation: Provisionable, *, delay_s: float = 0.0, known_new: bool = False
) -> OutboxMessage:
    """Queue the row that finishes provisioning (reusing a pending one); a conversation that had failed is retried.

    Create, GET and prepare call this for a conversation that is not provisioned, so a `failed` one (its row was
    dead-lettered) goes back to `provisioning` with a fresh row. `known_new`: the conversation was inserted in
    this transaction, so there is no row to reuse.
    """
    if conversation.chat_status is ChatStatus.FAILED:
        conversation.chat_status = ChatStatus.PROVISIONING
        log.info(
            "conversation.provisioning_requeued", channel_id=conversation.channel_id, conversation_id=conversation.id
        )
    return await outbox.add(
        session,
        PROVISION,
        {"conversation_id": conversation.id},
        dedupe_key=provision_dedupe_key(conversation.id),
        delay_s=delay_s,
        known_new=known_new,
    )


def identity_sync_dedupe_key(stream_id: str) -> str:
    """The outbox dedupe key of an identity's `identity.sync` row."""
    return f"{IDENTITY_SYNC}:{stream_id}"


async def enqueue_identity_sync(session: AsyncSession, stream_id: str) -> None:
    """One pending `identity.sync` outbox message per identity: the worker sends its current profile to Stream.

    The worker runs up to 100 due `identity.sync` rows together (`sync.handlers.sync_identity_batch`): one
    `UpdateUsers` call for the identities Stream does not have, one `UpdateUsersPartial` for those it has.
    """
    await outbox.add(session, IDENTITY_SYNC, {"stream_id": stream_id}, dedupe_key=identity_sync_dedupe_key(stream_id))


# A changed profile is sent once more this long after the change: longer than any request's or worker run's Stream
# calls can last (their deadline, 3 s by default, and the 11 s takeover of a stuck run), so a writer that read the
# older profile before the change and whose call lands after the newer one (or that was killed before it could
# record what it sent) is overwritten. Without it Stream could keep the older name until `reconcile` (hourly).
PROFILE_SETTLE_S = 15.0


async def settle_profiles(session: AsyncSession, stream_ids: Iterable[str]) -> int:
    """Queue, for identities whose directory profile just changed, one more `identity.sync` PROFILE_SETTLE_S later
    (rows of their own, not folded into the pending one); returns how many."""
    payloads = [{"stream_id": stream_id} for stream_id in sorted(set(stream_ids))]
    return await outbox.add_later(session, IDENTITY_SYNC, payloads, delay_s=PROFILE_SETTLE_S)


async def enqueue_identity_syncs(session: AsyncSession, stream_ids: Iterable[str]) -> int:
    """`enqueue_identity_sync` for many identities in one statement (a directory batch); returns how many."""
    items = [({"stream_id": stream_id}, identity_sync_dedupe_key(stream_id)) for stream_id in stream_ids]
    return await outbox.add_many(session, IDENTITY_SYNC, items)
