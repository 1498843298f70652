"""Stream user tokens for the acting identity, whose profile is queued for Stream unless the mirror holds it."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from onecrew_chat.accounts.access import may_act_as, requested_identity
from onecrew_chat.db import unit_of_work
from onecrew_chat.errors import BadRequest
from onecrew_chat.identity import Identity, Kind
from onecrew_chat.logging import get_logger
from onecrew_chat.runtime import Runtime
from onecrew_chat.sync.coalescer import coalescer
from onecrew_chat.sync.mirror import read_identities

log = get_logger(__name__)


@dataclass(frozen=True)
class TokenRequest:
    """profile_type and company_id as the app and the old scripts send them."""

    profile_type: str | None = None
    company_id: str | None = None

    @classmethod
    def from_parts(cls, query: dict[str, str], body: bytes, header_company_id: str | None = None) -> TokenRequest:
        """Query string first, then a JSON body (which may be empty), then the X-Company-Id header."""
        fields = _body_fields(body)
        profile_type = query.get("profile_type") or fields.get("profile_type")
        company_id = query.get("company_id") or fields.get("company_id") or header_company_id
        return cls(_text(profile_type, "profile_type"), _text(company_id, "company_id"))


def _body_fields(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        fields = json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError; RecursionError: nested too deep
        raise BadRequest("Request body is not valid JSON", code="invalid_json") from None
    if not isinstance(fields, dict):
        raise BadRequest("Request body must be a JSON object", code="invalid_json")
    return fields


def _text(value: object, name: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string", code=f"invalid_{name}")
    return value.strip() or None


async def mirror_or_queue(runtime: Runtime, identity: Identity) -> bool:
    """Make sure Stream will hold the identity (no call when the mirror is fresh), without waiting for Stream.

    A new or changed identity is queued in the process's identity batch (`sync.coalescer.queue`), which sends up
    to 100 per call and hands what Stream does not take to the outbox. The token does not wait for it: it is signed
    locally, and the app's `connectUser` creates the user in Stream itself (`{id, name, image}`), so a login works
    while the batch fills, while Stream is slow and while it is unreachable. Returns True when the mirror says Stream
    holds the identity's current profile already.
    """
    batches = coalescer(runtime)
    async with unit_of_work(runtime.sessionmaker) as session:
        read = await read_identities(session, [identity])
    if read.settled([identity]):
        return True
    batches.queue(identity, read)
    return False


@dataclass(frozen=True)
class IssuedToken:
    """A Stream user token, the identity it is for, and the API key the app connects with."""

    token: str
    identity: Identity
    api_key: str


async def issue_token(runtime: Runtime, user_id: str, request: TokenRequest) -> IssuedToken:
    """A token for the caller or a company they own or administer (403 for another company)."""
    started = time.perf_counter()
    identity = requested_identity(user_id, request.profile_type, request.company_id, required=False)
    if identity.kind is Kind.COMPANY:  # the caller's own token needs no membership check (and no transaction)
        async with unit_of_work(runtime.sessionmaker) as session:
            await may_act_as(session, user_id, identity)
    in_stream = await mirror_or_queue(runtime, identity)
    token = runtime.stream.create_user_token(identity.stream_id, runtime.settings.stream_token_ttl_s)
    log.info(
        "token.issued",
        stream_id=identity.stream_id,
        in_stream=in_stream,
        ms=round((time.perf_counter() - started) * 1000, 2),
    )
    return IssuedToken(token, identity, runtime.stream.api_key)
