"""Channels: get-or-create (by id and distinct), update, partial update, delete, query."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from .. import events, permissions
from ..call import CHANNEL_ID, Call, check_batch, check_count, check_offset, drop_nulls
from ..channel_types import BUILT_IN
from ..clock import now_ns
from ..errors import NOT_ALLOWED, StreamError, input_error, missing_users, not_found
from ..filters import matches, normalize_sort, sort_items
from ..state import CHANNEL_BUILTINS, CHANNEL_READ_ONLY, Channel, Member, Read
from . import pagination
from .membership import creator_id, missing_ids, parse_members
from .messages import create_message
from .tasks import new_task

MAX_OFFSET = 1000
DISTINCT_ERROR = (
    "cannot add members to the distinct channel they don't belong to, please "
    "create a new distinct channel with the desired members"
)


def _check_type(channel_type: str) -> None:
    if channel_type not in BUILT_IN:
        raise not_found(f"channel type {channel_type} does not exist")


def _check_id(channel_id: str) -> None:
    if "!" in channel_id:
        raise input_error("Cannot create a channel with a '!' in the ID, this is a reserved character.")
    if len(channel_id) > 64 or not CHANNEL_ID.fullmatch(channel_id):
        raise input_error(
            f"channel id {channel_id} is not valid: only letters, numbers, _ and - are allowed, at most 64 characters",
            id="invalid channel id",
        )


def _tags(name: str, value: Any) -> list[str]:
    """A list of filter tags (strings), or code 4 naming the field."""
    tags = check_batch(name, value)
    if not all(isinstance(t, str) and t for t in tags):
        raise input_error(f"{name} must be a list of non-empty strings", **{name: "invalid"})
    return list(dict.fromkeys(tags))


def _invite_answer(call: Call, channel: Channel, body: dict) -> tuple[Member, bool] | None:
    """(member, accepted) for accept_invite / reject_invite; only an invited member may answer."""
    accept, reject = bool(body.get("accept_invite")), bool(body.get("reject_invite"))
    if not accept and not reject:
        return None
    if accept and reject:
        raise input_error("cannot set both accept_invite and reject_invite")
    user_id = call.acting_user_id(body)
    member = channel.members.get(user_id)
    if member is None or not member.invited:
        raise input_error(f"user {user_id} has no pending invite to channel {channel.cid}", user_id="not invited")
    return member, accept


def distinct_id(member_ids: list[str]) -> str:
    """The generated id of a member-based channel; the same for any order of the members."""
    digest = hashlib.sha256(",".join(sorted(set(member_ids))).encode()).digest()
    return "!members-" + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _write_data(channel: Channel, data: dict, replace: bool) -> None:
    """Custom and built-in channel fields from request data (custom is nested in v2)."""
    if replace:
        channel.custom = {}
    for key, value in data.items():
        if key == "custom" and isinstance(value, dict):
            channel.custom.update(value)
        elif key in ("frozen", "disabled"):
            setattr(channel, key, bool(value))
        elif key == "team":
            channel.team = value
        elif key not in CHANNEL_BUILTINS and key not in CHANNEL_READ_ONLY:
            channel.custom[key] = value


def _state(call: Call, channel: Channel, body: dict) -> dict:
    """The channel's state as the query asked for it; `watch` makes the calling connection a watcher."""
    if body.get("watch"):
        watch(call, channel)
    messages = [] if body.get("state") is False else pagination.page(channel, body.get("messages"))
    member_options = body.get("members")
    members = check_count(
        "members.limit",
        (member_options.get("limit") or None) if isinstance(member_options, dict) else None,
        100,
        10_000,
    )
    return call.dialect.channel_state(
        channel,
        call.state.users,
        messages=messages,
        member_limit=members,
        watchers=call.emulator.hub.watcher_ids(channel.cid),
        viewer=call.caller.user_id,
    )


def watch(call: Call, channel: Channel) -> None:
    """Make the connection named by `?connection_id=` (the caller's own) a watcher of the channel."""
    connection_id = call.query.get("connection_id")
    if not connection_id or call.caller.user_id is None:
        return
    hub = call.emulator.hub
    connection = hub.connection_of(connection_id, call.caller.user_id)
    if connection is not None and hub.watch(connection, channel.cid):
        events.channel_event(
            call,
            "user.watching.start",
            channel,
            user_id=call.caller.user_id,
            watcher_count=len(hub.watcher_ids(channel.cid)),
        )


def stop_watching(call: Call) -> dict:
    """POST /channels/{type}/{id}/stop-watching: the calling connection stops watching."""
    channel = call.channel()
    connection_id = call.query.get("connection_id")
    if not connection_id or call.caller.user_id is None:
        raise input_error("connection_id is required to stop watching a channel", connection_id="required")
    hub = call.emulator.hub
    connection = hub.connection_of(connection_id, call.caller.user_id)
    if connection is not None and hub.unwatch(connection, channel.cid):
        events.channel_event(
            call,
            "user.watching.stop",
            channel,
            user_id=call.caller.user_id,
            watcher_count=len(hub.watcher_ids(channel.cid)),
        )
    return {}


def _create(
    call: Call, channel_type: str, channel_id: str, data: dict, members: list[tuple[str, str | None, dict]]
) -> dict:
    body = call.body
    creator = creator_id(call, data)
    cid = f"{channel_type}:{channel_id}"
    existing = call.state.channels.get(cid)
    if existing is not None:
        # Stream ignores the data of a get-or-create on a channel that exists.
        permissions.check(call, existing, permissions.READ_CHANNEL)
        return _state(call, existing, body)
    invites = parse_members("data.invites", data.get("invites"))
    member_ids = {m[0] for m in members}
    invited_ids = {i[0] for i in invites}
    involved = [creator] if creator else []
    involved.extend(m[0] for m in members + invites)
    missing = missing_ids(call, involved)
    if missing:
        raise missing_users("create", missing)
    now = now_ns()
    channel = Channel(channel_type, channel_id, creator, now)
    _write_data(channel, data, replace=False)
    for user_id, role, custom in members + [i for i in invites if i[0] not in member_ids]:
        member = Member(user_id, now, role or "channel_member", "owner" if user_id == creator else "member", custom)
        member.invited = user_id in invited_ids
        channel.members[user_id] = member
        channel.reads[user_id] = Read(now)
    channel.filter_tags = _tags("data.filter_tags", data.get("filter_tags"))
    call.state.channels[cid] = channel
    events.channel_event(call, "channel.created", channel, user_id=creator)
    return _state(call, channel, body)


def get_or_create(call: Call) -> dict:
    """POST /channels/{type}/{id}/query."""
    channel_type, channel_id = call.params
    _check_type(channel_type)
    _check_id(channel_id)
    data = drop_nulls(call.body.get("data"))
    return _create(call, channel_type, channel_id, data, parse_members("data.members", data.get("members")))


def get_or_create_distinct(call: Call) -> dict:
    """POST /channels/{type}/query: the id is derived from the member set."""
    channel_type = call.params[0]
    _check_type(channel_type)
    data = drop_nulls(call.body.get("data"))
    members = parse_members("data.members", data.get("members"))
    if len({m[0] for m in members}) < 2:
        raise input_error("When using member based IDs specify at least 2 members")
    return _create(call, channel_type, distinct_id([m[0] for m in members]), data, members)


def update(call: Call) -> dict:
    """POST /channels/{type}/{id}: members, moderators, roles, invites, data, a message."""
    body = drop_nulls(call.body)
    channel = call.channel()
    adds = parse_members("add_members", body.get("add_members"))
    invites = parse_members("invites", body.get("invites"))
    removes = check_batch("remove_members", body.get("remove_members"))
    promote = check_batch("add_moderators", body.get("add_moderators"))
    demote = check_batch("demote_moderators", body.get("demote_moderators"))
    roles = parse_members("assign_roles", body.get("assign_roles"))
    add_tags = _tags("add_filter_tags", body.get("add_filter_tags"))
    remove_tags = _tags("remove_filter_tags", body.get("remove_filter_tags"))
    # add_moderators makes each user a member (if not one yet) with the moderator role.
    adds = adds + [
        (uid, "channel_moderator", {})
        for uid in promote
        if uid not in channel.members and uid not in {a[0] for a in adds}
    ]
    member_change = bool(adds or invites or removes or promote or demote or roles)
    permissions.check(
        call, channel, permissions.UPDATE_CHANNEL_MEMBERS if member_change else permissions.UPDATE_CHANNEL
    )
    if channel.distinct and any(m[0] not in channel.members for m in adds + invites):
        raise StreamError(NOT_ALLOWED, DISTINCT_ERROR)
    invite_answer = _invite_answer(call, channel, body)
    missing = missing_ids(call, [m[0] for m in adds + invites])
    if missing:
        raise missing_users("update", missing)
    now = now_ns()
    added = []
    for entries, invited in ((adds, False), (invites, True)):
        for user_id, role, custom in entries:
            if user_id not in channel.members:
                member = Member(user_id, now, role or "channel_member", custom=custom)
                member.invited = invited
                channel.members[user_id] = member
                channel.reads.setdefault(user_id, Read(now))
                added.append(member)
    removed = [channel.members.pop(uid) for uid in removes if uid in channel.members]
    for member in removed:
        channel.reads.pop(member.user_id, None)
    new_roles = [(uid, "channel_moderator") for uid in promote]
    new_roles += [(uid, "channel_member") for uid in demote]
    new_roles += [(uid, role) for uid, role, _ in roles if role]
    for user_id, role in new_roles:
        member = channel.members.get(user_id)
        if member is not None:
            member.channel_role = role
            member.updated_at = now
    if invite_answer is not None:
        member, accepted = invite_answer
        if accepted:
            member.invite_accepted_at = member.invite_accepted_at or now
        else:
            member.invite_rejected_at = member.invite_rejected_at or now
        member.updated_at = now
    if add_tags or remove_tags:
        kept = [t for t in channel.filter_tags if t not in remove_tags]
        channel.filter_tags = kept + [t for t in add_tags if t not in kept]
        channel.updated_at = now
    if "data" in body:
        _write_data(channel, drop_nulls(body["data"]), replace=True)
        if "filter_tags" in body["data"]:
            channel.filter_tags = _tags("data.filter_tags", body["data"]["filter_tags"])
        channel.updated_at = now
    response: dict[str, Any] = {}
    if "data" in body:
        events.channel_event(call, "channel.updated", channel, user_id=call.caller.user_id or creator_or_none(body))
    message = body.get("message")
    if isinstance(message, dict) and (message.get("text") or message.get("user_id") or message.get("user")):
        created = create_message(call, channel, message)
        response["message"] = call.dialect.message(channel, created, call.state.users)
    for member in added:
        events.member_event(call, "member.added", channel, member)
    for member in removed:
        events.member_event(call, "member.removed", channel, member)
    users = call.state.users
    response["channel"] = call.dialect.channel(channel, users, call.caller.user_id)
    response["members"] = call.dialect.members(channel, users)
    return response


def update_partial(call: Call) -> dict:
    """PATCH /channels/{type}/{id}: set and unset channel fields."""
    channel = call.channel()
    permissions.check(call, channel, permissions.UPDATE_CHANNEL)
    to_set = drop_nulls(call.body.get("set"))
    to_unset = call.body.get("unset") or []
    _write_data(channel, to_set, replace=False)
    for key in to_unset:
        if key == "team":
            channel.team = None
        else:
            channel.custom.pop(key, None)
    channel.updated_at = now_ns()
    events.channel_event(call, "channel.updated", channel, user_id=call.caller.user_id or creator_or_none(call.body))
    users = call.state.users
    return {
        "channel": call.dialect.channel(channel, users, call.caller.user_id),
        "members": call.dialect.members(channel, users),
    }


def _drop(call: Call, channel: Channel) -> dict:
    rendered = call.dialect.channel(channel, call.state.users)
    rendered["deleted_at"] = call.dialect.time(now_ns())
    del call.state.channels[channel.cid]
    events.channel_event(call, "channel.deleted", channel)
    call.emulator.hub.forget_channel(channel.cid)
    return rendered


def delete(call: Call) -> dict:
    """DELETE /channels/{type}/{id}: the emulator forgets soft- and hard-deleted channels alike."""
    channel = call.channel()
    permissions.check(call, channel, permissions.DELETE_CHANNEL)
    return {"channel": _drop(call, channel)}


def delete_many(call: Call) -> dict:
    """POST /channels/delete: an async task over up to 100 cids."""
    cids = check_batch("cids", call.body.get("cids"))
    if not cids:
        raise input_error("cids is a required field", cids="required")
    channels = [call.state.channels.get(cid) for cid in cids]
    if any(c is None for c in channels):
        raise not_found("channels not found")
    result = {}
    for channel in channels:
        _drop(call, channel)
        result[channel.cid] = {"status": "ok"}
    return {"task_id": new_task(call, result)}


def _channel_field(channel: Channel, field: str) -> Any:
    if field == "members":
        return list(channel.members)
    if field in (
        "cid",
        "type",
        "id",
        "created_by_id",
        "created_at",
        "updated_at",
        "frozen",
        "disabled",
        "team",
        "last_message_at",
    ):
        return getattr(channel, field)
    if field == "filter_tags":
        return list(channel.filter_tags)
    if field == "member_count":
        return len(channel.members)
    if field == "last_updated":
        return max(channel.updated_at, channel.last_message_at or 0)
    return channel.custom.get(field)


def query(call: Call) -> dict:
    """POST /channels: filter, sort and page channels, each with its state."""
    body = drop_nulls(call.body)
    conditions = body.get("filter_conditions") or {}
    limit = min(check_count("limit", body.get("limit") or None, 10, 1000), 30)
    offset = check_offset(body, MAX_OFFSET)
    found = [
        c
        for c in call.state.channels.values()
        if matches(c, conditions, _channel_field) and permissions.can(call, c, permissions.READ_CHANNEL)
    ]
    sort = normalize_sort(body.get("sort")) or [("last_updated", -1)]
    found = sort_items(found, sort, _channel_field)[offset : offset + limit]
    message_limit = check_count("message_limit", body.get("message_limit"), 25, 300)
    members = check_count("member_limit", body.get("member_limit") or None, 100, 10_000)
    users = call.state.users
    hub = call.emulator.hub
    out = []
    for channel in found:
        if body.get("watch"):
            watch(call, channel)
        out.append(
            call.dialect.channel_state(
                channel,
                users,
                messages=message_limit,
                member_limit=members,
                watchers=hub.watcher_ids(channel.cid),
                viewer=call.caller.user_id,
            )
        )
    return {"channels": out}


def creator_or_none(body: dict) -> str | None:
    """The acting user a server-side call names (`user_id` or `user.id`), if any."""
    user = body.get("user")
    return body.get("user_id") or (user.get("id") if isinstance(user, dict) else None)
