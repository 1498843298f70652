"""The request edge (api/request_context.py, api/deps.py): what every answer carries, what is counted and logged,
and that no dependency or route hops to the thread pool."""

from __future__ import annotations

import inspect
import json
import re

import httpx
import pytest
import structlog
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from prometheus_client import REGISTRY
from starlette.responses import JSONResponse

from onecrew_chat.api.request_context import RequestContext
from onecrew_chat.db_counters import attach_counters
from onecrew_chat.logging import configure_logging
from tests.conftest import make_settings
from tests.factories import add_user
from tests.support import auth, new_id

UNREAD = "/api/chat/conversations/unread-count"
SERVER_TIMING = re.compile(r"^app;dur=\d+\.\d{2}$")


@pytest.fixture
def settings(sqlite_only_url, emulator, emulator_server):
    """The edge does not depend on the database."""
    return make_settings(sqlite_only_url, emulator_server.base_url)


def _stamped(response, request_id: str | None = None) -> None:
    assert SERVER_TIMING.match(response.headers["server-timing"]), response.headers
    assert response.headers["x-stream-calls"] == "0"
    if request_id is None:
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
    else:
        assert response.headers["x-request-id"] == request_id
    for name in ("x-request-id", "server-timing", "x-stream-calls"):
        assert len(response.headers.get_list(name)) == 1, name


@pytest.mark.parametrize(
    ("method", "url", "kwargs", "status"),
    [
        ("GET", UNREAD + "?profile_type=user", {"auth": True}, 200),
        ("GET", UNREAD + "?profile_type=user", {}, 401),  # an AppError's handler
        ("GET", UNREAD + "?profile_type=robot", {"auth": True}, 400),
        ("GET", "/api/chat/no-such-thing", {}, 404),  # no route matched
        ("DELETE", "/api/chat/token", {"auth": True}, 405),
        ("POST", "/api/chat/token", {"auth": True, "content": b"{" + b" " * (1 << 20) + b"}"}, 413),  # RequestGuard
        ("POST", "/api/chat/conversations", {"auth": True, "json": {"conversation_type": 7}}, 422),
        ("GET", "/healthz", {}, 200),
    ],
)
async def test_every_answer_has_a_request_id_server_timing_and_stream_calls(client, method, url, kwargs, status):
    headers = auth(new_id()) if kwargs.pop("auth", False) else {}
    response = await client.request(method, url, headers=headers, **kwargs)
    assert response.status_code == status, response.text
    _stamped(response)

    given = await client.request(method, url, headers=headers | {"X-Request-ID": "abc-123"}, **kwargs)
    assert given.status_code == status
    _stamped(given, "abc-123")


def _count(route: str, status: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "onecrew_http_request_seconds_count", {"method": "GET", "route": route, "status": status}
        )
        or 0.0
    )


async def test_the_metric_counts_each_answer_by_route_template_and_status(client):
    ok, refused, unmatched = _count(UNREAD, "200"), _count(UNREAD, "401"), _count("unmatched", "404")
    user = new_id()
    for _ in range(3):
        assert (await client.get(UNREAD + "?profile_type=user", headers=auth(user))).status_code == 200
    assert (await client.get(UNREAD)).status_code == 401
    assert (await client.get(f"/api/chat/{new_id()}/nothing")).status_code == 404
    assert _count(UNREAD, "200") == ok + 3
    assert _count(UNREAD, "401") == refused + 1
    assert _count("unmatched", "404") == unmatched + 1


async def test_lines_logged_during_a_request_carry_its_request_id(client, capsys):
    configure_logging("json", "debug")
    try:
        response = await client.get(UNREAD + "?profile_type=user", headers=auth(new_id()) | {"X-Request-ID": "r-42"})
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    finally:
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()
    assert response.status_code == 200
    done = [line for line in lines if line["event"] == "http.request"]
    assert len(done) == 1, lines
    assert done[0] | {"ms": None} == done[0] | {
        "request_id": "r-42",
        "method": "GET",
        "path": UNREAD,
        "status": 200,
        "stream_calls": 0,
        "ms": None,
    }


def _dependencies(dependant: Dependant) -> list[Dependant]:
    found = []
    for sub in dependant.dependencies:
        found += [sub, *_dependencies(sub)]
    return found


def _api_routes(routes: list) -> list[APIRoute]:
    """Every APIRoute, those of included routers too (FastAPI keeps them behind the router they came from)."""
    found = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):
            found += _api_routes(route.original_router.routes)
    return found


def test_no_route_or_dependency_runs_in_the_thread_pool(app):
    """FastAPI runs a plain `def` route or dependency in the thread pool, which costs more than their work."""
    routes = _api_routes(app.routes)
    assert any(route.path.endswith("/unread-count") for route in routes)  # the included routers were walked
    sync = set()
    for route in routes:
        for dependant in [route.dependant, *_dependencies(route.dependant)]:
            call = dependant.call
            if call is None:
                continue
            target = call if inspect.isroutine(call) else getattr(call, "__call__", call)  # noqa: B004
            if not (inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target)):
                sync.add(f"{route.path}: {getattr(call, '__qualname__', call)}")
    assert not sync, sorted(sync)


# --- the middleware alone, around apps that misbehave ------------------------------------------------------------


async def _defect(scope, receive, send):
    """An app that raises before answering (in the service, Starlette's outermost handler then answers 500)."""
    raise RuntimeError("a defect")


async def _own_request_id(scope, receive, send):
    await JSONResponse({"ok": True}, headers={"X-Request-ID": "from-the-app"})(scope, receive, send)


async def test_a_defect_is_counted_as_a_500_and_goes_on_up():
    before = _count("unmatched", "500")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=RequestContext(_defect)), base_url="http://e") as c:
        with pytest.raises(RuntimeError, match="a defect"):
            await c.get("/anything")
    assert _count("unmatched", "500") == before + 1


async def test_a_request_id_header_of_the_app_is_replaced_not_doubled():
    app = RequestContext(_own_request_id)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://e") as client:
        response = await client.get("/", headers={"X-Request-ID": "mine"})
    assert response.headers.get_list("x-request-id") == ["mine"]
    assert response.json() == {"ok": True}


# --- the cheap paths stay cheap ----------------------------------------------------------------------------------


async def test_a_fresh_token_is_one_statement_and_a_cached_unread_count_touches_no_connection(client, app, session):
    me = await add_user(session, "Amr")
    headers = auth(me)
    assert (await client.post("/api/chat/token", headers=headers)).status_code == 200  # mirrors Amr
    assert (await client.get(UNREAD + "?profile_type=user", headers=headers)).json()["data"]["cached"] is False
    counters = attach_counters(app.state.runtime.engine)

    fresh = await client.post("/api/chat/token", headers=headers)
    assert fresh.status_code == 200 and fresh.headers["x-stream-calls"] == "0"
    assert (counters.statements, counters.pool_checkouts) == (1, 1)  # the profile with its mirror row joined on

    cached = await client.get(UNREAD + "?profile_type=user", headers=headers)
    assert cached.json()["data"]["cached"] is True
    assert (counters.statements, counters.pool_checkouts) == (1, 1)  # nothing more
