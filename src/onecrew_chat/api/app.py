"""The FastAPI app factory: create_app(settings) wires the runtime, middleware, errors and routers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from onecrew_chat import version
from onecrew_chat.api.docs_pages import install_docs
from onecrew_chat.api.errors import install_error_handlers
from onecrew_chat.api.openapi import TAGS, error_responses, install_openapi, operation_id
from onecrew_chat.api.request_context import RequestContext
from onecrew_chat.api.request_guard import RequestGuard
from onecrew_chat.api.routes import (
    conversations,
    conversations_create,
    debug,
    health,
    heartbeat,
    internal,
    internal_bulk,
    internal_conversations,
    status,
    token,
    webhooks,
)
from onecrew_chat.composition import run_worker
from onecrew_chat.config import Settings
from onecrew_chat.conversations.unread_broadcast import start_unread_listener
from onecrew_chat.db_counters import attach_counters
from onecrew_chat.observability.heartbeat import run_heartbeat
from onecrew_chat.runtime import Runtime, build_runtime
from onecrew_chat.sync.coalescer import close_coalescer


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The process's duties while the app serves: the outbox worker (if configured) and the unread listener.

    It reads the runtime from `app.state` when it starts, not from `create_app`'s arguments: the app holds nothing
    else that lives, so the same app can serve again with another runtime (`bind_runtime`; the tests reuse apps so).
    """
    runtime: Runtime = app.state.runtime
    settings: Settings = app.state.settings
    stop = asyncio.Event()
    task = heartbeat = None
    if settings.run_worker:
        task = asyncio.create_task(run_worker(runtime, stop), name="outbox-worker")
        heartbeat = asyncio.create_task(run_heartbeat(runtime, stop), name="worker-heartbeat")
    listener = await start_unread_listener(runtime)
    try:
        yield
    finally:
        if listener is not None:
            await listener.stop()
        stop.set()
        for running in (task, heartbeat):
            if running is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(running, timeout=settings.provision_deadline_s + 5)
        await close_coalescer(runtime)  # identities queued for Stream, not sent yet, go to the outbox
        await runtime.close()


def bind_runtime(app: FastAPI, settings: Settings, runtime: Runtime) -> None:
    """What the app's requests and lifespan use: `settings` and `runtime` (whose engine and pools it closes)."""
    if settings.debug_endpoints:
        runtime.db_counters = attach_counters(runtime.engine)
    app.state.runtime = runtime
    app.state.settings = settings


def create_app(settings: Settings, *, runtime: Runtime | None = None) -> FastAPI:
    """Build the ASGI app; nothing connects until the lifespan starts or the first request arrives."""
    app = FastAPI(
        title="onecrew-chat",
        version=version(),
        description="OneCrew's chat backend: Stream tokens, conversations whose channels always hold their members, "
        "unread counts and Stream webhooks. Every answer is JSON (except /metrics): "
        "`{success: true, data}` or `{success: false, error, code}` with words that say what was wrong.\n\n"
        "The examples work against the demo data of `make run`: authorize with a token for Mona Samir, owner of "
        "Sat Education (`make dev-token USER=3f6c2a10-8d3e-4b7a-9c51-2e4f6a8b0c12`), and, for /api/internal, "
        "the service token; start with *Create a conversation*.",
        openapi_tags=TAGS,
        generate_unique_id_function=operation_id,
        lifespan=_lifespan,
        docs_url=None,  # install_docs serves /docs and /redoc with packaged assets (no CDN)
        redoc_url=None,
    )
    bind_runtime(app, settings, runtime or build_runtime(settings))
    install_error_handlers(app)
    install_openapi(app)
    install_docs(app)
    # RequestGuard is added first, so it runs inside RequestContext: refusals get a request id and a metric too.
    app.add_middleware(RequestGuard)
    app.add_middleware(RequestContext)

    # The only choice made here from the settings: the tests reuse one app per value of it (tests/conftest.py), so
    # another would have to join that key.
    if settings.debug_endpoints:
        app.include_router(debug.router)
    for module in (health, token, heartbeat, webhooks, conversations, conversations_create):
        app.include_router(module.router)
    # The internal routes declare only their bodies; their error answers are documented here.
    app.include_router(internal.router, responses=error_responses(400, 401, 404, 413, 422))
    app.include_router(status.router, responses=error_responses(401))
    app.include_router(internal_bulk.router)
    app.include_router(internal_conversations.router, responses=error_responses(400, 401, 403, 404, 409, 413, 422, 502))
    return app
