"""Users: upsert, partial update, query, deactivate, reactivate, delete, restore."""

from __future__ import annotations

from typing import Any

from .. import events
from ..call import Call, check_batch, check_offset, check_user_id, drop_nulls
from ..clock import now_ns, parse_time
from ..errors import input_error
from ..filters import matches, normalize_sort, sort_items
from ..state import USER_BUILTINS, USER_READ_ONLY, User
from .tasks import new_task

DELETE_MODES = ("soft", "pruning", "hard")
MAX_OFFSET = 1000


def apply_fields(user: User, fields: dict[str, Any]) -> None:
    """Write built-in and custom fields from a flattened (or `custom`-carrying) object."""
    for key, value in fields.items():
        if key == "custom" and isinstance(value, dict):
            user.custom.update(value)
        elif key in ("role", "name", "image", "language"):
            setattr(user, key, value)
        elif key == "teams":
            user.teams = list(value or [])
        elif key == "invisible":
            user.invisible = bool(value)
        elif key == "revoke_tokens_issued_before":
            user.extra[key] = parse_time(value)
        elif key in USER_BUILTINS:
            if key != "id":
                user.extra[key] = value
        elif key not in USER_READ_ONLY:
            user.custom[key] = value


def upsert(call: Call) -> dict:
    """POST /users: create or fully replace up to 100 users, all or nothing."""
    users = call.body.get("users")
    if not isinstance(users, dict) or not users:
        raise input_error("users is a required field", users="required")
    if len(users) > 100:
        raise input_error(f"users has {len(users)} items, the maximum is 100", users="max 100 items")
    checked = []
    for key, raw in users.items():
        raw = drop_nulls(raw)
        user_id = check_user_id(raw.get("id", key), f"users[{key}].id")
        if user_id != key:
            raise input_error(f"users[{key}].id {user_id} does not match its key {key}")
        checked.append((user_id, raw))
    state = call.state
    now = now_ns()
    out = {}
    for user_id, raw in checked:
        old = state.users.get(user_id)
        user = User(user_id, old.created_at if old else now)
        user.updated_at = now
        if old is not None:
            user.deactivated_at, user.deleted_at = old.deactivated_at, old.deleted_at
            user.online, user.last_active = old.online, old.last_active
            user.version = old.version + 1
        apply_fields(user, raw)
        state.add_user(user)
        out[user_id] = call.dialect.full_user(user)
        if old is not None:
            events.user_updated(call, user)
    return {"users": out, "membership_deletion_task_id": ""}


def _set_path(target: dict, dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        child = target.get(part)
        if not isinstance(child, dict):
            child = target[part] = {}
        target = child
    target[last] = value


def _unset_path(target: dict, dotted: str) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        target = target.get(part)
        if not isinstance(target, dict):
            return
    target.pop(last, None)


def update_partial(call: Call) -> dict:
    """PATCH /users: set and unset fields of up to 100 existing users."""
    updates = check_batch("users", call.body.get("users"))
    if not updates:
        raise input_error("users is a required field", users="required")
    targets = []
    for update in updates:
        update = drop_nulls(update)
        user_id = check_user_id(update.get("id"), "users.id")
        targets.append((call.require_user(user_id), update.get("set") or {}, update.get("unset") or []))
    if not call.caller.is_server:
        for user, _, _ in targets:
            if user.id != call.caller.user_id:
                raise input_error("a user can only update itself with a user token")
    now = now_ns()
    out = {}
    for user, to_set, to_unset in targets:
        for key in list(to_set) + list(to_unset):
            if " " in key:
                raise input_error(f"field {key} is not valid: names cannot contain spaces")
        for key, value in to_set.items():
            if "." in key and key.split(".", 1)[0] not in USER_BUILTINS:
                _set_path(user.custom, key, value)
            else:
                apply_fields(user, {key: value})
        for key in to_unset:
            if key in ("name", "image"):
                setattr(user, key, None)
            elif key in USER_BUILTINS:
                user.extra.pop(key, None)
            else:
                _unset_path(user.custom, key)
        user.updated_at = now
        user.version += 1
        out[user.id] = call.dialect.full_user(user)
        events.user_updated(call, user)
    return {"users": out, "membership_deletion_task_id": ""}


def _user_field(user: User, field: str) -> Any:
    if field in (
        "id",
        "role",
        "name",
        "image",
        "language",
        "teams",
        "created_at",
        "updated_at",
        "deactivated_at",
        "deleted_at",
        "invisible",
    ):
        return getattr(user, field)
    if field in ("banned", "online", "shadow_banned"):
        return False
    if field == "last_active":
        return None
    return user.custom.get(field, user.extra.get(field))


def query(call: Call) -> dict:
    """GET /users?payload=: filter, sort and page the users."""
    payload = drop_nulls(call.payload())
    conditions = payload.get("filter_conditions") or {}
    limit = min(int(payload.get("limit") or 30), 100)
    offset = check_offset(payload, MAX_OFFSET)
    include_deactivated = bool(payload.get("include_deactivated_users"))
    found = [
        u
        for u in call.state.users.values()
        if u.deleted_at is None
        and (include_deactivated or u.deactivated_at is None)
        and matches(u, conditions, _user_field)
    ]
    found = sort_items(found, normalize_sort(payload.get("sort")), _user_field)
    return {"users": [call.dialect.full_user(u) for u in found[offset : offset + limit]]}


def _set_deactivated(user: User, when: int | None) -> None:
    user.deactivated_at = when
    user.updated_at = now_ns()
    user.version += 1


def deactivate(call: Call) -> dict:
    """POST /users/{id}/deactivate."""
    user = call.require_user(call.params[0])
    _set_deactivated(user, now_ns())
    return {"user": call.dialect.full_user(user)}


def reactivate(call: Call) -> dict:
    """POST /users/{id}/reactivate."""
    user = call.require_user(call.params[0])
    _set_deactivated(user, None)
    if call.body.get("name"):
        user.name = call.body["name"]
    return {"user": call.dialect.full_user(user)}


def _many(call: Call, deleted_ok: bool = False) -> list[User]:
    ids = check_batch("user_ids", call.body.get("user_ids"))
    if not ids:
        raise input_error("user_ids is a required field", user_ids="required")
    return [call.require_user(check_user_id(uid, "user_ids"), deleted_ok) for uid in ids]


def deactivate_many(call: Call) -> dict:
    """POST /users/deactivate: an async task in Stream; applied at once here."""
    users = _many(call)
    now = now_ns()
    for user in users:
        _set_deactivated(user, now)
    return {"task_id": new_task(call, {"users": [call.dialect.full_user(u) for u in users]})}


def reactivate_many(call: Call) -> dict:
    """POST /users/reactivate (v2): an async task."""
    users = _many(call)
    for user in users:
        _set_deactivated(user, None)
    return {"task_id": new_task(call, {"users": [call.dialect.full_user(u) for u in users]})}


def _remove(call: Call, user: User, hard: bool) -> None:
    if not hard:
        user.deleted_at = now_ns()
        user.version += 1
        return
    state = call.state
    del state.users[user.id]
    state.user_born.pop(user.id, None)
    for channel in state.channels.values():
        channel.members.pop(user.id, None)
        channel.reads.pop(user.id, None)
    call.emulator.forget_user(user.id)


def delete(call: Call) -> dict:
    """DELETE /users/{id}?hard_delete=: soft by default."""
    user = call.require_user(call.params[0], deleted_ok=True)
    hard = call.query.get("hard_delete") == "true"
    rendered = call.dialect.full_user(user)
    _remove(call, user, hard)
    if hard:
        rendered["deleted_at"] = call.dialect.time(now_ns())
    else:
        rendered = call.dialect.full_user(user)
    return {"user": rendered}


def delete_many(call: Call) -> dict:
    """POST /users/delete: an async task; `user: hard` removes the users for good."""
    for option in ("user", "messages"):
        mode = call.body.get(option)
        if mode is not None and mode not in DELETE_MODES:
            raise input_error(f"{option} must be one of soft, pruning, hard", **{option: "invalid"})
    users = _many(call, deleted_ok=True)
    hard = call.body.get("user") == "hard"
    for user in users:
        _remove(call, user, hard)
    return {"task_id": new_task(call, {u.id: {"status": "ok"} for u in users})}


def restore_many(call: Call) -> dict:
    """POST /users/restore: undo soft deletes."""
    ids = check_batch("user_ids", call.body.get("user_ids"))
    for uid in ids:
        user = call.state.users.get(uid)
        if user is not None and user.deleted_at is not None:
            user.deleted_at = None
            user.version += 1
    return {}
