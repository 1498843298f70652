"""StreamGateway: the only code that calls Stream, with every failure classified.

The operations the service uses, each one request built by stream/wire.py and sent through `_call`
(stream/calls.py), the one choke point that classifies, meters and counts. Its values: stream/models.py.
"""

from __future__ import annotations

import json
from typing import Any

from getstream.models import (
    GetApplicationResponse,
    QueryChannelsRequest,
    QueryUsersPayload,
    SortParamRequest,
    UpdateAppRequest,
    UpdateUserPartialRequest,
    UpdateUsersPartialRequest,
)
from getstream.utils import build_query_param

from onecrew_chat.stream.calls import CallCount, StreamCalls, counting_calls
from onecrew_chat.stream.models import (
    CHANNEL_STATE_MEMBERS,
    MAX_BATCH,
    MAX_CHANNELS_PER_QUERY,
    ROLE,
    STREAM_ADMIN,
    ChannelState,
    StreamUser,
    StreamUserState,
    channel_state,
    check_batch,
)
from onecrew_chat.stream.wire import (
    APP_PATH,
    CHANNEL_PATH,
    CHANNEL_QUERY_PATH,
    CHANNELS_PATH,
    MEMBERS_PATH,
    MESSAGE_PATH,
    PUSH_TEMPLATES_PATH,
    USERS_PATH,
    add_members_body,
    api_exception,
    get_or_create_body,
    send,
    strip_none,
    upsert_users_body,
)

__all__ = [
    "MAX_BATCH",
    "MAX_CHANNELS_PER_QUERY",
    "STREAM_ADMIN",
    "CallCount",
    "ChannelState",
    "StreamGateway",
    "StreamUser",
    "StreamUserState",
    "add_members_body",
    "api_exception",
    "counting_calls",
    "get_or_create_body",
    "strip_none",
    "upsert_users_body",
]


class StreamGateway(StreamCalls):
    """Thin async adapter over Stream's REST API exposing only the operations the service uses."""

    # --- users -----------------------------------------------------------------------------------

    async def upsert_users(self, users: list[StreamUser]) -> None:
        """Create or fully replace up to 100 users, each with role "user"; a refused batch raises StreamBatchError."""
        check_batch("users", users)
        if not users:
            return
        for user in users:
            if "role" in user.custom:
                raise ValueError("a custom field named role would shadow Stream's role in the v1 dialect")
        body = upsert_users_body(users)
        await self._call("UpdateUsers", send("POST", USERS_PATH, body=body), batch_ids=list(body["users"]))

    async def partial_update_users(self, updates: list[tuple[str, dict[str, Any], list[str]]]) -> None:
        """Apply (id, set, unset) partial updates to up to 100 users; the role can be neither set nor unset."""
        check_batch("updates", updates)
        if not updates:
            return
        requests = []
        for user_id, set_fields, unset_fields in updates:
            if "role" in (set_fields or {}) or "role" in (unset_fields or []):
                raise ValueError("the Stream adapter never changes a user's role")
            requests.append(UpdateUserPartialRequest(id=user_id, set=set_fields or None, unset=unset_fields or None))
        body = UpdateUsersPartialRequest(users=requests).to_dict()
        await self._call(
            "UpdateUsersPartial", send("PATCH", USERS_PATH, body=body), batch_ids=[request.id for request in requests]
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
            response = await self._call("QueryUsers", send("GET", USERS_PATH, query=query))
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
        response = await self._call("QueryUsers", send("GET", USERS_PATH, query=build_query_param(payload=payload)))
        return [
            StreamUserState(id=user["id"], name=user.get("name"), image=user.get("image"), role=user.get("role"))
            for user in response.data.get("users") or []
        ]

    async def demote_to_user(self, user_ids: list[str]) -> None:
        """Set the role of up to 100 users to "user" (one partial update; nothing else of them changes)."""
        ids = list(dict.fromkeys(user_ids))
        check_batch("users", ids)
        if not ids:
            return
        requests = [UpdateUserPartialRequest(id=user_id, set={"role": ROLE}) for user_id in ids]
        body = UpdateUsersPartialRequest(users=requests).to_dict()
        await self._call("UpdateUsersPartial", send("PATCH", USERS_PATH, body=body), batch_ids=ids)

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
        check_batch("members", members)
        body = get_or_create_body(created_by_id, members, custom)
        where = {"type": channel_type, "id": channel_id}
        response = await self._call("GetOrCreateChannel", send("POST", CHANNEL_QUERY_PATH, where=where, body=body))
        return channel_state(channel_type, channel_id, response.data)

    async def add_members(self, channel_type: str, channel_id: str, member_ids: list[str]) -> None:
        """Add up to 100 members to an existing channel (adding a member twice is harmless)."""
        members = list(dict.fromkeys(member_ids))
        check_batch("members", members)
        if not members:
            return
        body = add_members_body(members)
        where = {"type": channel_type, "id": channel_id}
        await self._call("UpdateChannel", send("POST", CHANNEL_PATH, where=where, body=body))

    async def unset_channel_fields(self, channel_type: str, channel_id: str, fields: list[str]) -> None:
        """UpdateChannelPartial with `unset`: the fields disappear from the channel's data (e.g. an old generic name)."""
        where = {"type": channel_type, "id": channel_id}
        await self._call("UpdateChannelPartial", send("PATCH", CHANNEL_PATH, where=where, body={"unset": fields}))

    async def get_channel(self, channel_type: str, channel_id: str) -> ChannelState | None:
        """The channel's state found by cid through QueryChannels, or None when Stream has no such channel."""
        cid = f"{channel_type}:{channel_id}"
        body = QueryChannelsRequest(
            filter_conditions={"cid": cid}, limit=1, member_limit=CHANNEL_STATE_MEMBERS, message_limit=0
        ).to_dict()
        response = await self._call("QueryChannels", send("POST", CHANNELS_PATH, body=body))
        for state in response.data.get("channels") or []:
            channel = state.get("channel") or {}
            if channel.get("cid", cid) == cid:
                return channel_state(channel_type, channel_id, state)
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
            member_limit=CHANNEL_STATE_MEMBERS,
            message_limit=0,
        ).to_dict()
        response = await self._call("QueryChannels", send("POST", CHANNELS_PATH, body=body))
        found: dict[str, ChannelState] = {}
        for state in response.data.get("channels") or []:
            cid = (state.get("channel") or {}).get("cid") or ""
            channel_type, _, channel_id = cid.partition(":")
            if cid in wanted:
                found[cid] = channel_state(channel_type, channel_id, state)
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
            response = await self._call("QueryMembers", send("GET", MEMBERS_PATH, query={"payload": payload}))
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
        response = await self._call("QueryMembers", send("GET", MEMBERS_PATH, query=query))
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
        response = await self._call("QueryChannels", send("POST", CHANNELS_PATH, body=body))
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
        response = await self._call("SendMessage", send("POST", MESSAGE_PATH, where=where, body=body))
        return dict(response.data.get("message") or {})

    # --- app ---------------------------------------------------------------------------------------

    async def get_app_settings(self) -> dict[str, Any]:
        """The app's settings as plain JSON (GetApp)."""
        response = await self._call("GetApp", send("GET", APP_PATH))
        return dict(response.data.get("app") or {})

    async def patch_app_settings(self, fields: dict[str, Any]) -> None:
        """Change these app settings (UpdateApp); fields not named stay as they are."""
        await self._call("UpdateApp", send("PATCH", APP_PATH, body=dict(fields)))

    async def get_push_templates(self, provider_type: str, provider_name: str | None = None) -> list[dict[str, Any]]:
        """The chat push templates of one push provider (GetPushTemplates)."""
        query = {"push_provider_type": provider_type}
        if provider_name:
            query["push_provider_name"] = provider_name
        response = await self._call("GetPushTemplates", send("GET", PUSH_TEMPLATES_PATH, query=query))
        return list(response.data.get("templates") or [])

    async def upsert_push_template(self, template: dict[str, Any]) -> None:
        """Enable (and optionally template) push for one event type and provider (UpsertPushTemplate)."""
        await self._call("UpsertPushTemplate", send("POST", PUSH_TEMPLATES_PATH, body=dict(template)))

    async def update_app_settings(self, *, webhook_url: str | None) -> None:
        """Point Stream's webhooks at `webhook_url` (None switches them off)."""
        body = UpdateAppRequest(webhook_url=webhook_url or "").to_dict()
        await self._call("UpdateApp", send("PATCH", APP_PATH, body=body))

    async def ping(self) -> None:
        """A cheap authenticated call (GetApp), for readiness checks."""
        await self._call("GetApp", send("GET", APP_PATH, parse=GetApplicationResponse))
