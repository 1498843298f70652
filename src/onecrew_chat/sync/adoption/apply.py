"""Writing decisions: repair the identities Stream holds wrongly, then conversations and ledger rows per batch.

Each batch first sends the identities (no transaction open while Stream answers: mirror rows are held back by
an IdentityBatch and written after the calls), then writes its conversations and ledger rows in one short
transaction. A batch that meets a conversation created meanwhile is written again one channel at a time.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from onecrew_chat.db import unit_of_work, utcnow
from onecrew_chat.identity import Identity
from onecrew_chat.logging import get_logger
from onecrew_chat.models import AdoptionChannel, Conversation, ConversationParticipant, new_uuid
from onecrew_chat.runtime import Runtime
from onecrew_chat.sync.adoption.plan import PAIR, SKIPPED, Decision
from onecrew_chat.sync.adoption.report import AdoptionReport
from onecrew_chat.sync.deadline import Deadline
from onecrew_chat.sync.mirror import IdentityBatch, is_fresh, load_mirror, save
from onecrew_chat.sync.participants import Profile, load_profiles
from onecrew_chat.sync.queue import READY

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


async def repair(runtime: Runtime, decisions: list[Decision], report: AdoptionReport) -> None:
    """Full upserts (role user, the directory's name and image) of the batch's identities Stream needs again."""
    profiles, damage = await identities_to_send(runtime, decisions, report.repaired_ids)
    if profiles and not report.dry_run:
        calls = runtime.stream.calls
        batch = IdentityBatch({p.identity: p for p in profiles}, {})
        try:
            await batch.upsert(runtime.stream, profiles, Deadline(REPAIR_DEADLINE_S))  # no transaction open
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


def conversation_for(decision: Decision) -> Conversation:
    """The conversation row (ready and verified: Stream was just seen to hold every member) with its participants."""
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
        chat_status=READY,
        stream_verified_at=now,
        last_message_at=record.last_message_at,
        last_message_preview=record.preview,
        created_at=created,
        updated_at=now,
    )
    conversation.participants = [
        ConversationParticipant(
            id=new_uuid(),
            participant_type=identity.kind.value,
            participant_id=identity.entity_id,
            joined_at=created,
            last_read_at=record.read_at(identity.stream_id),
            created_at=now,
        )
        for identity in decision.identities
    ]
    return conversation


async def write(runtime: Runtime, decisions: list[Decision]) -> None:
    """Conversations and ledger outcomes of these decisions in one transaction."""
    async with unit_of_work(runtime.sessionmaker) as session:
        for decision in decisions:
            conversation_id = None
            if decision.outcome != SKIPPED:
                conversation = conversation_for(decision)
                session.add(conversation)
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
) -> None:
    """Repair, then write, BATCH channels at a time (a dry run only reports)."""
    total = len(decisions)
    for start in range(0, total, BATCH):
        batch = decisions[start : start + BATCH]
        await repair(runtime, batch, report)
        if not report.dry_run:
            batch = await write_batch(runtime, batch)
        for decision in batch:
            report.add(decision)
        if progress is not None:
            progress(min(start + BATCH, total), total)
