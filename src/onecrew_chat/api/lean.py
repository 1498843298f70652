"""Routes the app calls most, served without FastAPI's per-request dependency solving.

FastAPI resolves an endpoint's parameters and dependencies on every request (the runtime, the bearer scheme, the
raw header, each query parameter: a walk over their declarations). For the unread count the app polls, that walk
cost more CPU than everything else the request does (`make bench`: half of a cached unread count). Where every
parameter is a plain optional string the route checks itself (so FastAPI would never answer 422 for it), the
endpoint is declared as usual, for the OpenAPI document, and `served_by` names a handler that reads the same
values straight from the request: the same runtime, the same JWT check, the same query parameters (the last of a
repeated one, as FastAPI takes it), the same answer. Errors it raises go through the app's exception handlers as
any route's do.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from onecrew_chat.runtime import Runtime

LeanHandler = Callable[[Request], Awaitable[Response]]
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])
_ATTRIBUTE = "__onecrew_lean_handler__"


def served_by(handler: LeanHandler) -> Callable[[Endpoint], Endpoint]:
    """Serve the decorated endpoint (declared for the document) with `handler(request)` (put it under @router.get)."""

    def mark(endpoint: Endpoint) -> Endpoint:
        setattr(endpoint, _ATTRIBUTE, handler)
        return endpoint

    return mark


class LeanRoute(APIRoute):
    """An APIRoute whose endpoint, when marked by `served_by`, is served by its lean handler."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = getattr(self.endpoint, _ATTRIBUTE, None)
        if handler is None:
            return super().get_route_handler()

        async def lean(request: Request) -> Response:
            response: Response = await handler(request)
            return response

        return lean


def runtime_of(request: Request) -> Runtime:
    """The process's Runtime (what RuntimeDep gives a declared endpoint)."""
    runtime: Runtime = request.app.state.runtime
    return runtime


def user_of(request: Request) -> tuple[Runtime, str]:
    """The runtime and the caller's user uuid from the bearer JWT (what CurrentUserId gives; 401 otherwise)."""
    runtime = runtime_of(request)
    return runtime, runtime.verifier.user_id(request.headers.get("authorization"))
