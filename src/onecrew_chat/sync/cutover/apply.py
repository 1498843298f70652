"""Writing decisions: repair the identities Stream holds wrongly, then conversations and ledger rows per batch.

Each batch first sends the identities (no transaction open while Stream answers: mirror rows are held back by
an IdentityBatch and written after the calls), then writes its conversations and ledger rows in one short
transaction. A batch that meets a conversation created meanwhile is written again one channel at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from sqlalchemy import CursorResult, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from onecrew_chat.db import unit_of_work, utcnow
from onecrew_chat.identity import ChatStatus, Identity
from onecrew_chat.logging import get_logger
from onecrew_chat.models import AdoptionChannel, Conversation, new_uuid
from onecrew_chat.runtime import Runtime
from onecrew_chat.sync.cutover.names import is_generic, queue_unset_names
from onecrew_chat.sync.cutover.plan import DUPLICATE, PAIR, SKIPPED, Decision
from onecrew_chat.sync.cutover.report import AdoptionReport
from onecrew_chat.sync.deadline import Deadline
from onecrew_chat.sync.mirror import IdentityBatch, is_fresh, load_mirror
from onecrew_chat.sync.mirror_record import save
from onecrew_chat.sync.participants import Profile, load_profiles
from onecrew_chat.sync.writes import insert_participants

log = get_logger(__name__)

BATCH = 100  # channels per transaction (and identities per upsert)
REPAIR_DEADLINE_S = 90.0  # a batch of upserts may wait out a rate-limit window


async def identities_to_send(
    runtime: Runtime, decisions: list[Decision], done: set[str] | frozenset[str] = frozenset()
) -> tuple[list[Profile], dict[str, str]]:
    """Profiles Stream needs again (damaged by the old backend, or missing or stale in the mirror) and the damage seen.

    `done`: identities this run already repaired (the damage a channel recorded when it was read is old news then).
    """
    damage: dict[str, str] = {}
    wanted: dict[str, Identity] = {}
    for decision in decisions:
        if decision.outcome == SKIPPED:
            continue
        for identity in decision.identities:
            wanted[identity.stream_id] = identity
            problem = decision.record.damaged.get(identity.stream_id)
            if problem and identity.stream_id not in done:
                damage[identity.stream_id] = problem
    if not wanted:
        return [], damage
    async with runtime.sessionmaker() as session:
        profiles = await load_profiles(session, wanted.values())
        mirror = await load_mirror(session, wanted)
    send = [p for p in profiles.values() if p.stream_id in damage or not is_fresh(p, mirror.get(p.stream_id))]
    return sorted(send, key=lambda p: p.stream_id), damage


async def repair(
    runtime: Runtime, decisions: list[Decision], report: AdoptionReport, deadline: Deadline | None = None
) -> None:
    """Full upserts (role user, the directory's name and image) of the batch's identities Stream needs again."""
    profiles, damage = await identities_to_send(runtime, decisions, report.repaired_ids)
    if profiles and not report.dry_run:
        calls = runtime.stream.calls
        batch = IdentityBatch({p.identity: p for p in profiles}, {})
        try:
            await batch.upsert(runtime.stream, profiles, deadline or Deadline(REPAIR_DEADLINE_S))  # no transaction open
        finally:
            await save(runtime.sessionmaker, batch)
        log.info(
            "adoption.identities_sent",
            count=len(profiles),
            repaired=len(damage),
            stream_calls=runtime.stream.calls - calls,
        )
    for stream_id, problem in sorted(damage.items()):
        report.add_repaired(stream_id, problem)  # once per identity, however many channels and batches show it


def conversation_for(decision: Decision) -> tuple[Conversation, list[dict[str, Any]]]:
    """The conversation row (ready and verified: Stream was just seen to hold every member) and its participant
    rows (written by insert_participants, in key order with the rest of the batch's)."""
    record, now = decision.record, utcnow()
    created = record.created_at or now
    creator = decision.identities[0]
    conversation = Conversation(
        id=new_uuid(),
        channel_type=record.channel_type,
        channel_id=record.channel_id,
        conversation_type=decision.conversation_type,
        name=record.name if decision.conversation_type == "group" else None,
        pair_key=decision.pair_key if decision.outcome == PAIR else None,
        created_by_type=creator.kind.value,
        created_by_id=creator.entity_id,
        chat_status=ChatStatus.READY,
        stream_verified_at=now,
        last_message_at=record.last_message_at,
        last_message_preview=record.preview,
        created_at=created,
        updated_at=now,
    )
    participants = [
        {
            "id": new_uuid(),
            "conversation_id": conversation.id,
            "participant_type": identity.kind.value,
            "participant_id": identity.entity_id,
            "joined_at": created,
            "last_read_at": record.read_at(identity.stream_id),
            "created_at": now,
        }
        for identity in decision.identities
    ]
    return conversation, participants


async def take_over(session: AsyncSession, decision: Decision) -> None:
    """The pair's empty conversation gives up the pair to this channel, which has history (its ledger row, if it was
    adopted, says so); when it got a message meanwhile it keeps the pair, and this channel is its duplicate."""
    holder = decision.displaces
    result = await session.execute(
        update(Conversation)
        .where(
            Conversation.pair_key == decision.pair_key,
            Conversation.channel_id == holder,
            Conversation.last_message_at.is_(None),
        )
        .values(pair_key=None, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if cast(CursorResult[Any], result).rowcount != 1:
        decision.outcome, decision.winner, decision.displaces = DUPLICATE, holder, None
        decision.reason = f"the pair already has conversation {holder}"
        return
    await session.execute(
        update(AdoptionChannel)
        .where(AdoptionChannel.channel_id == holder, AdoptionChannel.outcome == PAIR)
        .values(
            outcome=DUPLICATE, reason=f"empty; {decision.record.channel_id}, which has messages, took the pair over"
        )
        .execution_options(synchronize_session=False)
    )
    log.info("adoption.pair_taken_over", channel_id=decision.record.channel_id, empty=holder)


async def write(runtime: Runtime, decisions: list[Decision]) -> None:
    """Conversations and ledger outcomes of these decisions in one transaction (and the removal of generic pair
    names from Stream, as outbox rows); the participants of all of them last, in key order, so that the counter
    locks they take never cross a live create's (sync.writes)."""
    participants: list[dict[str, Any]] = []
    async with unit_of_work(runtime.sessionmaker) as session:
        renamed = []
        for decision in decisions:
            conversation_id = None
            if decision.displaces is not None:
                await take_over(session, decision)
            if decision.outcome in (PAIR, DUPLICATE) and is_generic(decision.record.name):
                renamed.append((decision.record.channel_type, decision.record.channel_id))
            if decision.outcome != SKIPPED:
                conversation, rows = conversation_for(decision)
                session.add(conversation)
                participants.extend(rows)
                conversation_id = conversation.id
            await session.flush()
            await session.execute(
                update(AdoptionChannel)
                .where(AdoptionChannel.cid == decision.record.cid)
                .values(
                    outcome=decision.outcome,
                    reason=decision.reason,
                    pair_key=decision.pair_key,
                    conversation_id=conversation_id,
                    decided_at=utcnow(),
                )
                .execution_options(synchronize_session=False)
            )
        await insert_participants(session, participants)
        await queue_unset_names(session, renamed)


async def write_batch(runtime: Runtime, decisions: list[Decision]) -> list[Decision]:
    """Write the batch; when it meets a conversation created meanwhile, one channel at a time (that one skipped)."""
    try:
        await write(runtime, decisions)
        return decisions
    except IntegrityError:
        log.info("adoption.batch_conflict", channels=len(decisions))
    written = []
    for decision in decisions:
        try:
            await write(runtime, [decision])
        except IntegrityError:
            decision.outcome, decision.reason = SKIPPED, "already known: a conversation was created for it meanwhile"
            await write(runtime, [decision])
        written.append(decision)
    return written


async def apply_decisions(
    runtime: Runtime,
    decisions: list[Decision],
    report: AdoptionReport,
    progress: Callable[[int, int], None] | None = None,
    deadline: Deadline | None = None,
) -> None:
    """Repair, then write, BATCH channels at a time (a dry run only reports); `deadline` bounds the repairs'
    Stream calls (default REPAIR_DEADLINE_S per batch)."""
    total = len(decisions)
    for start in range(0, total, BATCH):
        batch = decisions[start : start + BATCH]
        await repair(runtime, batch, report, deadline)
        if not report.dry_run:
            batch = await write_batch(runtime, batch)
        for decision in batch:
            report.add(decision)
        if progress is not None:
            progress(min(start + BATCH, total), total)
