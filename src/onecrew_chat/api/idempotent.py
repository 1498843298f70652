"""Idempotency-Key at the API edge: run a keyed request once, store the answer it rendered, replay it as stored.

The key's life (claim, bind, store, release) is `conversations/idempotency.py`; what is stored is rendered here,
so an answer stored by any version replays byte for byte. Client errors (4xx) are stored and replayed like a
200; server errors are not (the key is released, so that a retry runs the request again).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from fastapi.responses import JSONResponse

from onecrew_chat.api.errors import error_body
from onecrew_chat.conversations import idempotency
from onecrew_chat.conversations.idempotency import Answer, Claim
from onecrew_chat.errors import AppError
from onecrew_chat.runtime import Runtime

T = TypeVar("T")


@dataclass(frozen=True)
class Ran(Generic[T]):
    """This request ran under the key: what the service returned, and the claim its answer is stored under."""

    result: T
    claim: Claim


async def run_keyed(
    runtime: Runtime, *, caller: str, key: str, print_: str, work: Callable[[Claim], Awaitable[T]]
) -> Answer | Ran[T]:
    """The stored answer of an earlier run with this key, or `work` run under the key (a client error it raises is
    stored for replays before it propagates). `work` gets the claim: `claim.bind` ties the conversation it records
    to the key, `claim.resume_id` is the conversation an earlier, interrupted run recorded."""
    claimed = await idempotency.claim(runtime, caller, key, print_)
    if isinstance(claimed, Answer):
        return claimed
    try:
        result = await work(claimed)
    except AppError as exc:
        if exc.status_code < 500:
            await idempotency.store(runtime, claimed, Answer(exc.status_code, error_body(exc.message, exc.code)))
        else:
            await idempotency.release(runtime, claimed)
        raise
    except Exception:
        await idempotency.release(runtime, claimed)
        raise
    return Ran(result, claimed)


async def keep(runtime: Runtime, claim: Claim, body: dict[str, Any]) -> JSONResponse:
    """Store `body` as the key's answer (200), then send it."""
    await idempotency.store(runtime, claim, Answer(200, body))
    return JSONResponse(body)


def replay(answer: Answer) -> JSONResponse:
    """A stored answer sent again, marked as a replay."""
    return JSONResponse(answer.body, status_code=answer.status, headers={idempotency.REPLAY_HEADER: "true"})
