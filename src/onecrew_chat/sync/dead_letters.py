"""Dead letters that a passing failure left behind heal by themselves once Stream answers again.

A row is dead-lettered when its failure is classed as one no retry can fix, or when it ran out of attempts. When
that failure was in fact one that passes (Stream, or a gateway or balancer in front of it, down or overloaded: a
5xx in any words, 408, 429, a timeout; an error answer recorded before such answers were classified by their
status; or our secret refused, which today pauses the worker instead), the row is made due again with a fresh
attempt count, and a conversation marked `failed` for it is `provisioning` again, so the worker finishes it. Rows
are revived only while Stream answers an authenticated ping: during an outage (or while the secret is wrong)
nothing churns. A refusal of the request itself (another 4xx) stays dead for an operator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from onecrew_chat.db import unit_of_work
from onecrew_chat.logging import get_logger
from onecrew_chat.metrics import OUTBOX_REVIVED
from onecrew_chat.outbox import maintenance
from onecrew_chat.stream.errors import StreamError, recorded_failure_heals
from onecrew_chat.sync.handlers import provisioning_revived
from onecrew_chat.sync.queue import PROVISION

if TYPE_CHECKING:
    from onecrew_chat.runtime import Runtime

log = get_logger(__name__)

PAGE = 500
MAX_ROWS = 5000  # revived per pass; a later pass takes the rest


async def revive_passing(runtime: Runtime, *, max_rows: int = MAX_ROWS) -> int:
    """Make dead rows whose recorded failure is a passing one due again, if Stream answers; returns how many."""
    candidates: list[maintenance.DeadLetter] = []
    after = 0
    while len(candidates) < max_rows:
        async with unit_of_work(runtime.sessionmaker) as session:
            page = await maintenance.dead_letters(session, after_id=after, limit=PAGE)
        if not page:
            break
        after = page[-1].id
        candidates.extend(letter for letter in page if recorded_failure_heals(letter.last_error))
    candidates = candidates[:max_rows]
    if not candidates:
        return 0
    try:
        await runtime.stream.ping()
    except StreamError as exc:
        log.info("outbox.revive_waits", rows=len(candidates), error=str(exc)[:300])
        return 0
    async with unit_of_work(runtime.sessionmaker) as session:
        revived = await maintenance.revive(session, candidates)
        for _, kind, payload in revived:
            if kind == PROVISION:
                await provisioning_revived(session, payload)
    for _, kind, _ in revived:
        OUTBOX_REVIVED.labels(kind).inc()
    if revived:
        log.warning(
            "outbox.revived",
            ids=[message_id for message_id, _, _ in revived][:10],
            rows=len(revived),
            reason="their failure was a passing one and Stream answers again",
        )
    return len(revived)
