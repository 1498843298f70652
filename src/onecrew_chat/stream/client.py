"""StreamGateway: the only code that calls Stream, with every failure classified.

Every call goes through the getstream SDK's one shared keep-alive HTTP client (its auth, headers, timeouts and
pool), but is sent and read here: JSON in and out in this thread, no SDK request pipeline (two thread hops a call,
a telemetry span, the answer parsed twice). Answers and failures become the SDK's own types (StreamApiException
from its `build_api_exception`, transport errors from its `wrap_transport_error`, rate limits from its
`extract_rate_limit`), so errors are classified exactly as the SDK would raise them. Bodies are the SDK's wire
format: built from its request models, or, on the hot calls, as the plain dicts those models serialise to
(tests/unit/test_stream_wire_format.py proves it).
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
import structlog
from getstream import AsyncStream
from getstream.exceptions import (
    StreamApiException,
    StreamRateLimitException,
    StreamTransportException,
    build_api_exception,
    parse_retry_after,
    wrap_transport_error,
)
from getstream.models import (
    GetApplicationResponse,
    QueryChannelsRequest,
    QueryUsersPayload,
    SortParamRequest,
    UpdateAppRequest,
    UpdateUserPartialRequest,
    UpdateUsersPartialRequest,
)
from getstream.rate_limit import RateLimitInfo, extract_rate_limit
from getstream.utils import build_query_param

from onecrew_chat import metrics
from onecrew_chat.stream.errors import (
    StreamBatchError,
    StreamError,
    StreamRateLimited,
    StreamRequestError,
    StreamUnavailable,
    StreamUsersMissing,
    from_api_exception,
)

if TYPE_CHECKING:
    from onecrew_chat.config import Settings

log = structlog.get_logger(__name__)  # structlog directly: this package imports nothing else of ours

MAX_BATCH = 100  # Stream's limit for users per upsert/partial update and members per create/add call
_ROLE = "user"  # every identity is a plain app-level user; there is deliberately no parameter for this
STREAM_ADMIN = "admin"  # Stream's app-wide admin role: only ever searched for, to take it away (demote_to_user)
_CHANNEL_STATE_MEMBERS = 100
MAX_CHANNELS_PER_QUERY = 30  # Stream answers at most 30 channels per QueryChannels call

# Paths are the SDK's.
_USERS_PATH = "/api/v2/users"
_CHANNELS_PATH = "/api/v2/chat/channels"
_CHANNEL_PATH = "/api/v2/chat/channels/{type}/{id}"
_CHANNEL_QUERY_PATH = "/api/v2/chat/channels/{type}/{id}/query"
_MEMBERS_PATH = "/api/v2/chat/members"
_MESSAGE_PATH = "/api/v2/chat/channels/{type}/{id}/message"
_APP_PATH = "/api/v2/app"
_PUSH_TEMPLATES_PATH = "/api/v2/chat/push_templates"


@dataclass(frozen=True)
class StreamUser:
    """A Stream user profile as we send it; the role is not part of it (the adapter always sends "user")."""

    id: str
    name: str
    image: str | None = None
    custom: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StreamUserState:
    """What Stream shows of a user: the fields the mirror compares."""

    id: str
    name: str | None
    image: str | None
    role: str | None


@dataclass(frozen=True)
class ChannelState:
    """What Stream says about a channel: its members (at most the first 100) and, when known, whether we created it."""

    channel_type: str
    channel_id: str
    member_ids: list[str]
    created: bool | None = None
    member_count: int | None = None

    @property
    def cid(self) -> str:
        """Stream's "type:id"."""
        return f"{self.channel_type}:{self.channel_id}"


@dataclass
class CallCount:
    """Stream calls made within a `counting_calls` block (a request, a run); nested blocks count into their outer ones."""

    calls: int = 0
    outer: CallCount | None = None


_COUNT: ContextVar[CallCount | None] = ContextVar("onecrew_stream_call_count", default=None)


@contextlib.contextmanager
def counting_calls() -> Iterator[CallCount]:
    """Count the Stream calls this task (and the tasks it starts) makes inside the block."""
    count = CallCount(outer=_COUNT.get())
    token = _COUNT.set(count)
    try:
        yield count
    finally:
        _COUNT.reset(token)


@dataclass(frozen=True)
class Answer:
    """A successful answer: its JSON body and the x-ratelimit-* headers (as the SDK's RateLimitInfo)."""

    data: dict[str, Any]
    limits: RateLimitInfo | None


Send = Callable[[httpx.AsyncClient], Awaitable[Answer]]


class StreamGateway:
    """Thin async adapter over Stream's REST API (the SDK's HTTP client) exposing only the operations the service uses."""

    def __init__(self, api_key: str, api_secret: str, base_url: str, timeout_s: float = 2.0):
        self.api_key = api_key
        self._api_secret = api_secret
        self.base_url = base_url
        self.timeout_s = timeout_s
        self.calls = 0
        # The x-ratelimit-* headers of the latest answer per operation (callers pace themselves by them).
        self.rate_limits: dict[str, RateLimitInfo] = {}
        self._sdk: AsyncStream | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> StreamGateway:
        """Build from Settings (STREAM_API_KEY, STREAM_API_SECRET, STREAM_BASE_URL, ONECREW_STREAM_TIMEOUT_S)."""
        # A plain str when the settings were copied with model_copy(update=...), which skips validation.
        secret: Any = settings.stream_api_secret
        return cls(
            api_key=settings.stream_api_key or "",
            api_secret=secret.get_secret_value() if hasattr(secret, "get_secret_value") else (secret or ""),
            base_url=settings.stream_base_url,
            timeout_s=settings.stream_timeout_s,
        )

    # --- users -----------------------------------------------------------------------------------

    async def upsert_users(self, users: list[StreamUser]) -> None:
        """Create or fully replace up to 100 users, each with role "user"; a refused batch raises StreamBatchError."""
        _check_batch("users", users)
        if not users:
            return
        for user in users:
            if "role" in user.custom:
                raise ValueError("a custom field named role would shadow Stream's role in the v1 dialect")
        body = upsert_users_body(users)
        await self._call("UpdateUsers", _send("POST", _USERS_PATH, body=body), batch_ids=list(body["users"]))

    async def partial_update_users(self, updates: list[tuple[str, dict[str, Any], list[str]]]) -> None:
        """Apply (id, set, unset) partial updates to up to 100 users; the role can be neither set nor unset."""
        _check_batch("updates", updates)
        if not updates:
            return
        requests = []
        for user_id, set_fields, unset_fields in updates:
            if "role" in (set_fields or {}) or "role" in (unset_fields or []):
                raise ValueError("the Stream adapter never changes a user's role")
            requests.append(UpdateUserPartialRequest(id=user_id, set=set_fields or None, unset=unset_fields or None))
        body = UpdateUsersPartialRequest(users=requests).to_dict()
        await self._call(
            "UpdateUsersPartial", _send("PATCH", _USERS_PATH, body=body), batch_ids=[request.id for request in requests]
        )

    async def query_user_ids(self, ids: list[str]) -> set[str]:
        """Which of these user ids exist in Stream (one QueryUsers call per 100 ids)."""
        return set(await self.query_users(ids))

    async def query_users(self, ids: list[str]) -> dict[str, StreamUserState]:
        """The Stream users among these ids with what Stream shows of them (one QueryUsers call per 100 ids)."""
        wanted = list(dict.fromkeys(ids))
        found: dict[str, StreamUserState] = {}
        for start in range(0, len(wanted), MAX_BATCH):
            chunk = wanted[start : start + MAX_BATCH]
            payload = QueryUsersPayload(filter_conditions={"id": {"$in": chunk}}, limit=len(chunk))
            query = build_query_param(payload=payload)
            response = await self._call("QueryUsers", _send("GET", _USERS_PATH, query=query))
            for user in response.data.get("users") or []:
                found[user["id"]] = StreamUserState(
                    id=user["id"], name=user.get("name"), image=user.get("image"), role=user.get("role")
                )
        return found

    async def query_admins_page(self, *, after_id: str | None = None, limit: int = MAX_BATCH) -> list[StreamUserState]:
        """One page of the users Stream holds with the app-wide admin role (deactivated ones too), by id after `after_id`.

        Paged by id rather than offset: demoting users while paging moves no one into a page already read, and
        there is no offset ceiling (1000).
        """
        if not 1 <= limit <= MAX_BATCH:
            raise ValueError(f"limit must be between 1 and {MAX_BATCH}, got {limit}")
        conditions: dict[str, Any] = {"role": {"$eq": STREAM_ADMIN}}
        if after_id is not None:
            conditions["id"] = {"$gt": after_id}
        payload = QueryUsersPayload(
            filter_conditions=conditions,
            sort=[SortParamRequest(field="id", direction=1)],
            limit=limit,
            include_deactivated_users=True,
        )
        response = await self._call("QueryUsers", _send("GET", _USERS_PATH, query=build_query_param(payload=payload)))
        return [
            StreamUserState(id=user["id"], name=user.get("name"), image=user.get("image"), role=user.get("role"))
            for user in response.data.get("users") or []
        ]

    async def demote_to_user(self, user_ids: list[str]) -> None:
        """Set the role of up to 100 users to "user" (one partial update; nothing else of them changes)."""
        ids = list(dict.fromkeys(user_ids))
        _check_batch("users", ids)
        if not ids:
            return
        requests = [UpdateUserPartialRequest(id=user_id, set={"role": _ROLE}) for user_id in ids]
        body = UpdateUsersPartialRequest(users=requests).to_dict()
        await self._call("UpdateUsersPartial", _send("PATCH", _USERS_PATH, body=body), batch_ids=ids)

    # --- channels --------------------------------------------------------------------------------

    async def get_or_create_channel(
        self,
        channel_type: str,
        channel_id: str,
        *,
        created_by_id: str,
        member_ids: list[str],
        custom: dict[str, Any] | None = None,
    ) -> ChannelState:
        """Get or create the channel with these (≤100) members, created by `created_by_id`; returns Stream's state."""
        if not created_by_id:
            raise ValueError("created_by_id is required for server-side channel creation")
        members = list(dict.fromkeys(member_ids))
        _check_batch("members", members)
        body = get_or_create_body(created_by_id, members, custom)
        where = {"type": channel_type, "id": channel_id}
        response = await self._call("GetOrCreateChannel", _send("POST", _CHANNEL_QUERY_PATH, where=where, body=body))
        return _channel_state(channel_type, channel_id, response.data)

    async def add_members(self, channel_type: str, channel_id: str, member_ids: list[str]) -> None:
        """Add up to 100 members to an existing channel (adding a member twice is harmless)."""
        members = list(dict.fromkeys(member_ids))
        _check_batch("members", members)
        if not members:
            return
        body = add_members_body(members)
        where = {"type": channel_type, "id": channel_id}
        await self._call("UpdateChannel", _send("POST", _CHANNEL_PATH, where=where, body=body))

    async def unset_channel_fields(self, channel_type: str, channel_id: str, fields: list[str]) -> None:
        """UpdateChannelPartial with `unset`: the fields disappear from the channel's data (e.g. an old generic name)."""
        where = {"type": channel_type, "id": channel_id}
        await self._call("UpdateChannelPartial", _send("PATCH", _CHANNEL_PATH, where=where, body={"unset": fields}))

    async def get_channel(self, channel_type: str, channel_id: str) -> ChannelState | None:
        """The channel's state found by cid through QueryChannels, or None when Stream has no such channel."""
        cid = f"{channel_type}:{channel_id}"
        body = QueryChannelsRequest(
            filter_conditions={"cid": cid}, limit=1, member_limit=_CHANNEL_STATE_MEMBERS, message_limit=0
        ).to_dict()
        response = await self._call("QueryChannels", _send("POST", _CHANNELS_PATH, body=body))
        for state in response.data.get("channels") or []:
            channel = state.get("channel") or {}
            if channel.get("cid", cid) == cid:
                return _channel_state(channel_type, channel_id, state)
        return None

    async def get_channels(self, cids: list[str]) -> dict[str, ChannelState]:
        """States of up to 30 channels by cid ("type:id") in one QueryChannels call; absent channels are left out."""
        wanted = list(dict.fromkeys(cids))
        if len(wanted) > MAX_CHANNELS_PER_QUERY:
            raise ValueError(f"at most {MAX_CHANNELS_PER_QUERY} channels per Stream query, got {len(wanted)}")
        if not wanted:
            return {}
        body = QueryChannelsRequest(
            filter_conditions={"cid": {"$in": wanted}},
            limit=len(wanted),
            member_limit=_CHANNEL_STATE_MEMBERS,
            message_limit=0,
        ).to_dict()
        response = await self._call("QueryChannels", _send("POST", _CHANNELS_PATH, body=body))
        found: dict[str, ChannelState] = {}
        for state in response.data.get("channels") or []:
            cid = (state.get("channel") or {}).get("cid") or ""
            channel_type, _, channel_id = cid.partition(":")
            if cid in wanted:
                found[cid] = _channel_state(channel_type, channel_id, state)
        return found

    async def query_member_ids(self, channel_type: str, channel_id: str, member_ids: list[str]) -> set[str]:
        """Which of these users are members of the channel (QueryMembers, 100 ids per call): verifies large groups."""
        found: set[str] = set()
        wanted = list(dict.fromkeys(member_ids))
        for start in range(0, len(wanted), MAX_BATCH):
            chunk = wanted[start : start + MAX_BATCH]
            payload = json.dumps(
                {
                    "type": channel_type,
                    "id": channel_id,
                    "filter_conditions": {"id": {"$in": chunk}},
                    "limit": len(chunk),
                }
            )
            response = await self._call("QueryMembers", _send("GET", _MEMBERS_PATH, query={"payload": payload}))
            for member in response.data.get("members") or []:
                user_id = member.get("user_id") or (member.get("user") or {}).get("id")
                if user_id:
                    found.add(user_id)
        return found

    async def query_members_page(
        self, channel_type: str, channel_id: str, *, after_user_id: str | None = None, limit: int = MAX_BATCH
    ) -> list[dict[str, Any]]:
        """One page of a channel's members as plain JSON (with their users), by user id ascending after `after_user_id`.

        Stream documents paging members by user_id as well as by offset; by user id no page is skipped or read twice
        while members join or leave, and there is no offset ceiling (1000), so a channel of any size can be read.
        """
        if not 1 <= limit <= MAX_BATCH:
            raise ValueError(f"limit must be between 1 and {MAX_BATCH}, got {limit}")
        payload: dict[str, Any] = {
            "type": channel_type,
            "id": channel_id,
            "filter_conditions": {},
            "sort": [{"field": "user_id", "direction": 1}],
            "limit": limit,
        }
        if after_user_id is not None:
            payload["user_id_gt"] = after_user_id
        query = {"payload": json.dumps(payload)}
        response = await self._call("QueryMembers", _send("GET", _MEMBERS_PATH, query=query))
        return list(response.data.get("members") or [])

    async def query_channels_page(
        self,
        filter_conditions: dict[str, Any],
        *,
        sort: list[dict[str, Any]],
        limit: int,
        offset: int = 0,
        member_limit: int = 100,
    ) -> list[dict[str, Any]]:
        """One page (at most 30) of channel states as plain JSON: channel, members, the last message and read state."""
        if not 1 <= limit <= MAX_CHANNELS_PER_QUERY:
            raise ValueError(f"limit must be between 1 and {MAX_CHANNELS_PER_QUERY}, got {limit}")
        body = {
            "filter_conditions": filter_conditions,
            "sort": sort,
            "limit": limit,
            "offset": offset,
            "member_limit": member_limit,
            "message_limit": 1,
            "state": True,
        }
        response = await self._call("QueryChannels", _send("POST", _CHANNELS_PATH, body=body))
        return list(response.data.get("channels") or [])

    # --- messages ------------------------------------------------------------------------------------

    async def send_message(
        self,
        channel_type: str,
        channel_id: str,
        *,
        message_id: str,
        user_id: str,
        text: str,
        custom: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Send a message with a caller-chosen id as `user_id` (server side); Stream refuses an id it already has."""
        if not message_id or not user_id:
            raise ValueError("message_id and user_id are required")
        message: dict[str, Any] = {"id": message_id, "text": text, "user_id": user_id}
        if custom:
            message["custom"] = dict(custom)
        where = {"type": channel_type, "id": channel_id}
        body = {"message": message}
        response = await self._call("SendMessage", _send("POST", _MESSAGE_PATH, where=where, body=body))
        return dict(response.data.get("message") or {})

    # --- app ---------------------------------------------------------------------------------------

    async def get_app_settings(self) -> dict[str, Any]:
        """The app's settings as plain JSON (GetApp)."""
        response = await self._call("GetApp", _send("GET", _APP_PATH))
        return dict(response.data.get("app") or {})

    async def patch_app_settings(self, fields: dict[str, Any]) -> None:
        """Change these app settings (UpdateApp); fields not named stay as they are."""
        await self._call("UpdateApp", _send("PATCH", _APP_PATH, body=dict(fields)))

    async def get_push_templates(self, provider_type: str, provider_name: str | None = None) -> list[dict[str, Any]]:
        """The chat push templates of one push provider (GetPushTemplates)."""
        query = {"push_provider_type": provider_type}
        if provider_name:
            query["push_provider_name"] = provider_name
        response = await self._call("GetPushTemplates", _send("GET", _PUSH_TEMPLATES_PATH, query=query))
        return list(response.data.get("templates") or [])

    async def upsert_push_template(self, template: dict[str, Any]) -> None:
        """Enable (and optionally template) push for one event type and provider (UpsertPushTemplate)."""
        await self._call("UpsertPushTemplate", _send("POST", _PUSH_TEMPLATES_PATH, body=dict(template)))

    async def update_app_settings(self, *, webhook_url: str | None) -> None:
        """Point Stream's webhooks at `webhook_url` (None switches them off)."""
        body = UpdateAppRequest(webhook_url=webhook_url or "").to_dict()
        await self._call("UpdateApp", _send("PATCH", _APP_PATH, body=body))

    async def ping(self) -> None:
        """A cheap authenticated call (GetApp), for readiness checks."""
        await self._call("GetApp", _send("GET", _APP_PATH, parse=GetApplicationResponse))

    def create_user_token(self, user_id: str, ttl_s: int) -> str:
        """A Stream user token (HS256 with user_id, iat and exp), signed locally; no HTTP call."""
        if not user_id:
            raise ValueError("user_id is required")
        token: str = self._client("CreateToken").create_token(user_id, expiration=int(ttl_s))
        return token

    async def close(self) -> None:
        """Close the HTTP pool."""
        if self._sdk is not None:
            sdk, self._sdk = self._sdk, None
            await sdk.aclose()

    # --- the one choke point ------------------------------------------------------------------------

    def _client(self, operation: str) -> AsyncStream:
        if self._sdk is None:
            if not self.api_key or not self._api_secret:
                raise StreamRequestError("Stream API key and secret are not configured", operation=operation)
            # connect_timeout too: the SDK's default of 10 s would outlive every deadline we have.
            self._sdk = AsyncStream(
                api_key=self.api_key,
                api_secret=self._api_secret,
                base_url=self.base_url,
                timeout=self.timeout_s,
                connect_timeout=self.timeout_s,
            )
        return self._sdk

    async def _call(self, operation: str, send: Send, *, batch_ids: list[str] | None = None) -> Answer:
        http = self._client(operation).client  # the SDK's shared httpx.AsyncClient: auth, headers, timeouts, pool
        self.calls += 1
        count = _COUNT.get()
        while count is not None:
            count.calls += 1
            count = count.outer
        started = time.perf_counter()
        try:
            response = await send(http)
        except StreamApiException as exc:
            error = from_api_exception(operation, exc, batch_ids)
            if exc.rate_limit_info is not None:
                self.rate_limits[operation] = exc.rate_limit_info
            _record(operation, error, exc.rate_limit_info, started)
            raise error from exc
        except (StreamTransportException, httpx.HTTPError) as exc:
            kind = getattr(exc, "error_type", type(exc).__name__)
            error = StreamUnavailable(f"transport error ({kind}): {exc.__cause__ or exc}", operation=operation)
            _record(operation, error, None, started)
            raise error from exc
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            # The answer could not be read as the SDK's model (it parses strictly); no retry will change that.
            error = StreamRequestError(f"unexpected answer from Stream: {exc!r}", operation=operation)
            _record(operation, error, None, started)
            raise error from exc
        if response.limits is not None:
            self.rate_limits[operation] = response.limits
        _record(operation, None, response.limits, started)
        return response


def _send(
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
    headers = {"x-client-request-id": str(uuid.uuid4())}
    content = None
    if body is not None:
        content = json.dumps(strip_none(body))
        headers["Content-Type"] = "application/json"

    async def send(http: httpx.AsyncClient) -> Answer:
        try:
            response = await http.request(method, url, params=query, content=content, headers=headers)
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

    return send


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
        request: dict[str, Any] = {"id": user.id, "name": user.name, "role": _ROLE, "custom": dict(user.custom)}
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


def _check_batch(what: str, items: Iterable[object]) -> None:
    count = len(list(items))
    if count > MAX_BATCH:
        raise ValueError(f"at most {MAX_BATCH} {what} per Stream call, got {count}")


def _channel_state(channel_type: str, channel_id: str, data: dict[str, Any]) -> ChannelState:
    member_ids = []
    for member in data.get("members") or []:
        user_id = member.get("user_id") or (member.get("user") or {}).get("id")
        if user_id:
            member_ids.append(user_id)
    channel = data.get("channel") or {}
    return ChannelState(
        channel_type=channel_type,
        channel_id=channel_id,
        member_ids=member_ids,
        created=None,  # Stream's get-or-create answer does not say whether it created the channel
        member_count=channel.get("member_count"),
    )


def _record_rate_limit(operation: str, info: Any) -> None:
    """The x-ratelimit-remaining/limit/reset headers of the answer, as gauges per operation."""
    remaining = getattr(info, "remaining", None)
    if remaining is not None:
        metrics.STREAM_RATE_LIMIT_REMAINING.labels(operation).set(remaining)
    limit = getattr(info, "limit", None)
    if limit is not None:
        metrics.STREAM_RATE_LIMIT_LIMIT.labels(operation).set(limit)
    reset = getattr(info, "reset", None)
    if reset is not None:
        metrics.STREAM_RATE_LIMIT_RESET.labels(operation).set(reset.timestamp())


def _record(operation: str, error: StreamError | None, rate_limit: Any, started: float) -> None:
    outcome = "ok" if error is None else _OUTCOMES.get(type(error), "rejected")
    metrics.STREAM_CALLS.labels(operation, outcome).inc()
    if error is not None and error.status in (401, 403):
        metrics.STREAM_AUTH_FAILURES.labels(operation).inc()
    _record_rate_limit(operation, rate_limit)
    ms = round((time.perf_counter() - started) * 1000, 2)
    if error is None:
        log.debug("stream.call", operation=operation, outcome=outcome, ms=ms)
    else:
        log.info("stream.call", operation=operation, outcome=outcome, ms=ms, status=error.status, code=error.code)


_OUTCOMES = {
    StreamUnavailable: "unavailable",
    StreamRateLimited: "rate_limited",
    StreamUsersMissing: "users_missing",
    StreamBatchError: "batch_refused",
    StreamRequestError: "rejected",
}
