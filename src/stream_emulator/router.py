"""Maps a method and path of either dialect to Stream's operation and its handler."""

from __future__ import annotations

from collections.abc import Callable

from . import operations as op
from .handlers import app_settings, channels, members, messages, reactions, tasks, threads, users

Handler = Callable[..., dict]

# (method, path pattern) -> (operation, handler). "{}" marks a path parameter.
ROUTES: list[tuple[str, str, str, Handler]] = [
    ("POST", "users", op.UPDATE_USERS, users.upsert),
    ("PATCH", "users", op.UPDATE_USERS_PARTIAL, users.update_partial),
    ("GET", "users", op.QUERY_USERS, users.query),
    ("POST", "users/deactivate", op.DEACTIVATE_USERS, users.deactivate_many),
    ("POST", "users/reactivate", op.REACTIVATE_USERS, users.reactivate_many),
    ("POST", "users/delete", op.DELETE_USERS, users.delete_many),
    ("POST", "users/restore", op.RESTORE_USERS, users.restore_many),
    ("POST", "users/{}/deactivate", op.DEACTIVATE_USER, users.deactivate),
    ("POST", "users/{}/reactivate", op.REACTIVATE_USER, users.reactivate),
    ("DELETE", "users/{}", op.DELETE_USER, users.delete),
    ("GET", "tasks/{}", op.GET_TASK, tasks.get_task),
    ("GET", "app", op.GET_APP, app_settings.get_app),
    ("PATCH", "app", op.UPDATE_APP, app_settings.update_app),
    ("GET", "push_templates", op.GET_PUSH_TEMPLATES, app_settings.get_push_templates),
    ("POST", "push_templates", op.UPSERT_PUSH_TEMPLATE, app_settings.upsert_push_template),
    ("POST", "channels", op.QUERY_CHANNELS, channels.query),
    ("POST", "channels/delete", op.DELETE_CHANNELS, channels.delete_many),
    ("POST", "channels/{}/query", op.GET_OR_CREATE_CHANNEL, channels.get_or_create_distinct),
    ("POST", "channels/{}/{}/query", op.GET_OR_CREATE_CHANNEL, channels.get_or_create),
    ("POST", "channels/{}/{}", op.UPDATE_CHANNEL, channels.update),
    ("PATCH", "channels/{}/{}", op.UPDATE_CHANNEL_PARTIAL, channels.update_partial),
    ("DELETE", "channels/{}/{}", op.DELETE_CHANNEL, channels.delete),
    ("POST", "channels/{}/{}/message", op.SEND_MESSAGE, messages.send),
    ("POST", "channels/{}/{}/read", op.MARK_READ, messages.mark_read),
    ("GET", "members", op.QUERY_MEMBERS, members.query),
    ("GET", "unread", op.UNREAD_COUNTS, messages.unread_counts),
    ("POST", "unread_batch", op.UNREAD_COUNTS_BATCH, messages.unread_batch),
    ("GET", "messages/{}/replies", op.GET_REPLIES, threads.get_replies),
    ("POST", "messages/{}/reaction", op.SEND_REACTION, reactions.send),
]


class Router:
    """Finds the route for a path; literal segments win over parameters."""

    def __init__(self) -> None:
        self._table: dict[tuple[str, int], list[tuple[tuple[str | None, ...], str, Handler]]] = {}
        for method, pattern, operation, handler in ROUTES:
            parts = tuple(None if p == "{}" else p for p in pattern.split("/"))
            self._table.setdefault((method, len(parts)), []).append((parts, operation, handler))
        for candidates in self._table.values():
            # More literal segments first, so channels/messaging/query is not UpdateChannel.
            candidates.sort(key=lambda c: sum(p is None for p in c[0]))

    def match(self, method: str, segments: list[str]):
        """(operation, handler, path params) or None."""
        for parts, operation, handler in self._table.get((method, len(segments)), ()):
            params = []
            for want, got in zip(parts, segments, strict=True):
                if want is None:
                    params.append(got)
                elif want != got:
                    break
            else:
                return operation, handler, tuple(params)
        return None


def split_path(path: str) -> tuple[str, list[str]]:
    """The dialect ("v1" or "v2") and the path segments after the dialect's prefix."""
    if path.startswith("/api/v2/"):
        rest = path[8:]
        if rest.startswith("chat/"):
            rest = rest[5:]
        return "v2", [s for s in rest.split("/") if s]
    return "v1", [s for s in path.split("/") if s]
