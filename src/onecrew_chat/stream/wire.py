"""One Stream request as the SDK sends it, read here: the wire format of the calls and of their failures.

Answers and failures become the SDK's own types (StreamApiException from its `build_api_exception`, transport
errors from its `wrap_transport_error`, rate limits from its `extract_rate_limit`), so errors are classified
exactly as the SDK would raise them. Bodies are the SDK's wire format: built from its request models, or, on the
hot calls, as the plain dicts those models serialise to (tests/unit/test_stream_wire_format.py proves it).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from getstream.exceptions import (
    StreamApiException,
    StreamRateLimitException,
    build_api_exception,
    parse_retry_after,
    wrap_transport_error,
)
from getstream.rate_limit import RateLimitInfo, extract_rate_limit

from onecrew_chat.stream.endpoint import Endpoint
from onecrew_chat.stream.models import ROLE, StreamUser

# Paths are the SDK's.
USERS_PATH = "/api/v2/users"
CHANNELS_PATH = "/api/v2/chat/channels"
CHANNEL_PATH = "/api/v2/chat/channels/{type}/{id}"
CHANNEL_QUERY_PATH = "/api/v2/chat/channels/{type}/{id}/query"
MEMBERS_PATH = "/api/v2/chat/members"
MESSAGE_PATH = "/api/v2/chat/channels/{type}/{id}/message"
APP_PATH = "/api/v2/app"
PUSH_TEMPLATES_PATH = "/api/v2/chat/push_templates"


@dataclass(frozen=True)
class Answer:
    """A successful answer: its JSON body and the x-ratelimit-* headers (as the SDK's RateLimitInfo)."""

    data: dict[str, Any]
    limits: RateLimitInfo | None


Send = Callable[[Endpoint], Awaitable[Answer]]


def send(
    method: str,
    path: str,
    *,
    where: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
    query: dict[str, str] | None = None,
    parse: Any = None,
) -> Send:
    """One request as the SDK sends it (path parameters quoted, None dropped from the body, a client request id),
    its answer read as JSON; a 4xx/5xx becomes the SDK's StreamApiException, a network failure its
    StreamTransportException. `parse`: an SDK response model the answer must fit (as the SDK's typed calls do)."""
    url = path.format(**{k: quote(str(v), safe="") for k, v in where.items()}) if where else path
    headers = [(b"x-client-request-id", str(uuid.uuid4()).encode("ascii"))]
    content = None
    if body is not None:
        content = json.dumps(strip_none(body)).encode("utf-8")
        headers.append((b"Content-Type", b"application/json"))

    async def exchange(endpoint: Endpoint) -> Answer:
        try:
            response = await endpoint.send(method, url, headers=headers, content=content, query=query)
        except httpx.RequestError as err:
            raise wrap_transport_error(err) from err
        if response.status_code >= 399:
            raise api_exception(response)
        try:  # as the SDK's _parse_response: an answer it cannot read is an API error of the answer's status
            data = json.loads(response.content) if response.content else {}
            if parse is not None:
                parse.from_dict(data, infer_missing=True)
        except (ValueError, AttributeError) as err:
            raise StreamApiException(response=response) from err
        return Answer(data, extract_rate_limit(response))

    return exchange


def api_exception(response: httpx.Response) -> StreamApiException:
    """The SDK's exception for an error answer, whatever its body: Stream's error envelope, or the words of a
    gateway or balancer in front of Stream (`{"message": ...}`, HTML, nothing), which the SDK cannot read. Either
    way the status is kept, so the failure is classified by it (a 502 is passing whoever says it)."""
    try:
        return build_api_exception(response)
    except (KeyError, ValueError, TypeError, AttributeError) as err:  # JSON, but not Stream's envelope
        said = _gateway_message(response)
        fields: dict[str, Any] = {
            "status_code": response.status_code,
            "message": "an answer in a gateway's words, not Stream's error format" + (f": {said}" if said else ""),
            "raw_response_body": response.text[:2000],
            "rate_limit_info": extract_rate_limit(response),
        }
        exc: StreamApiException
        if response.status_code == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            exc = StreamRateLimitException(retry_after=retry_after, **fields)
        else:
            exc = StreamApiException(**fields)
        exc.http_response = response
        exc.__cause__ = err
        return exc


def _gateway_message(response: httpx.Response) -> str:
    """What a non-Stream error answer says, in one short line (its JSON `message`/`error`, else nothing)."""
    try:
        body = json.loads(response.content)
    except ValueError:
        return ""
    if isinstance(body, dict):
        said = body.get("message") or body.get("error") or ""
        return str(said).splitlines()[0][:200] if said else ""
    return ""


def strip_none(value: Any) -> Any:
    """The body without None values, at any depth (the SDK leaves unset optional fields out)."""
    if isinstance(value, dict):
        return {k: strip_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_none(item) for item in value]
    return value


# The hot calls' bodies as plain dicts: what the SDK's request models serialise to (without None), built without
# dataclasses_json (half a millisecond a call); tests/unit/test_stream_wire_format.py compares them with the models.


def upsert_users_body(users: list[StreamUser]) -> dict[str, Any]:
    """UpdateUsersRequest(users={id: UserRequest(id, name, image, role="user", custom)}) as the SDK sends it."""
    requests: dict[str, Any] = {}
    for user in users:
        request: dict[str, Any] = {"id": user.id, "name": user.name, "role": ROLE, "custom": dict(user.custom)}
        if user.image is not None:
            request["image"] = user.image
        requests[user.id] = request
    return {"users": requests}


def get_or_create_body(created_by_id: str, member_ids: list[str], custom: dict[str, Any] | None) -> dict[str, Any]:
    """ChannelGetOrCreateRequest(data=ChannelInput(created_by_id, members, custom)) as the SDK sends it."""
    data: dict[str, Any] = {"created_by_id": created_by_id}
    if member_ids:
        data["members"] = [{"user_id": member_id} for member_id in member_ids]
    if custom:
        data["custom"] = dict(custom)
    return {"data": data}


def add_members_body(member_ids: list[str]) -> dict[str, Any]:
    """UpdateChannelRequest(add_members=[ChannelMemberRequest(user_id)]) as the SDK sends it."""
    return {"add_members": [{"user_id": member_id} for member_id in member_ids]}
