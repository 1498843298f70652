"""`onecrew-chat serve`: start-up checks, embedded mode, uvicorn, and the lines that tell a developer what runs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import socket
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import TYPE_CHECKING

import typer
import uvicorn

from onecrew_chat import version
from onecrew_chat.cli import embedded
from onecrew_chat.cli.local_instance import DataDirLock, InstanceRefused, listen_socket, own_command
from onecrew_chat.config import Settings
from onecrew_chat.db import make_engine, upgrade_database
from onecrew_chat.logging import get_logger
from onecrew_chat.schema_status import database_position, schema_status

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from onecrew_chat.cli.serve_processes import Listener

log = get_logger(__name__)

# The JWT printed in the example request stays valid for a day.
EXAMPLE_TOKEN_TTL_S = 24 * 3600


class StartupRefused(Exception):
    """The configuration or the database is not fit to serve; the message says what to do."""


async def check_database(settings: Settings) -> None:
    """Refuse a database that is unreachable or not at the newest migration."""
    try:
        position = await database_position(settings)
    except Exception as exc:  # any connection failure becomes one readable sentence
        raise StartupRefused(
            f"cannot reach the database: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        ) from exc
    problem = schema_status(position).problem()
    if problem:
        raise StartupRefused(problem)


def check_stream(settings: Settings) -> None:
    """Refuse to start when Stream rejects STREAM_API_KEY/STREAM_API_SECRET; warn (and start) when it is unreachable."""
    from onecrew_chat.observability.startup import StreamCredentialsRejected, check_stream_at_startup

    try:
        warning = asyncio.run(check_stream_at_startup(settings))
    except StreamCredentialsRejected as exc:
        raise StartupRefused(str(exc)) from exc
    if warning:
        typer.echo(f"onecrew-chat: warning: {warning}", err=True)


def display_host(host: str) -> str:
    """The host part of a URL a developer can paste (wildcard binds become loopback)."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class _Server(uvicorn.Server):
    """uvicorn, plus one hook run once the socket accepts connections and the app's lifespan has started."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], Awaitable[None]]):
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if not self.should_exit:
            await self._on_ready()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn re-raises SIGINT/SIGTERM after a graceful shutdown, which would kill the process before
        # the emulator is stopped; SIGINT/SIGTERM mean "stop", and stopping gracefully is a success (exit 0).
        with super().capture_signals():
            yield
            self._captured_signals.clear()


def say(line: str = "") -> None:
    """A line for the developer on stdout (logs go to stderr)."""
    typer.echo(line)


def tell(settings: Settings, line: str, event: str, **fields: object) -> None:
    """A line for whoever runs the service: plain on stdout for a developer, or, with ONECREW_LOG_FORMAT=json,
    a log event like every other line (a JSON log stream gets no plain text in the middle)."""
    if settings.log_format == "json":
        log.info(event, message=line, **fields)
    else:
        say(line)


async def ready_hook(settings: Settings, base_url: str, *, embedded_stream: bool, dev_secret: bool) -> None:
    """Register the webhook with the emulator and print where everything is."""
    if embedded_stream:
        from onecrew_chat.api.routes.webhooks import WEBHOOK_PATH

        # The emulator lives in this process, so it reaches us over loopback whatever the public URL is.
        webhook_url = base_url + WEBHOOK_PATH
        try:
            await embedded.register_webhook(settings, webhook_url)
            say(f"Webhooks: the emulator delivers Stream events to {webhook_url}")
        except Exception as exc:  # serving matters more than unread counts; say how to fix it
            log.error("embedded.webhook_registration_failed", error=str(exc)[:200])
            say(f"Webhooks: NOT registered ({type(exc).__name__}); unread counts follow Stream after a restart")
    tell(
        settings,
        f"onecrew-chat is serving on {base_url} (API docs at {base_url}/docs, Ctrl-C to stop)",
        "serve.listening",
        url=base_url,
        docs=f"{base_url}/docs",
    )
    if settings.embedded_database and settings.jwt_secret:
        await _print_example(settings, base_url, dev_secret=dev_secret)


def dev_token_command(settings: Settings, user_id: str, *, dev_secret: bool) -> str:
    """The `dev-token` command that signs with this server's secret, pasted in any folder."""
    command = f"{own_command()} dev-token {user_id}"
    if not dev_secret:
        return command  # signed with ONECREW_JWT_SECRET, which the developer set themselves
    # The dev secret lives in the data dir; a relative ONECREW_DATA_DIR would mean another one elsewhere.
    return f"ONECREW_DATA_DIR={shlex.quote(str(settings.data_dir.resolve()))} {command}"


async def _print_example(settings: Settings, base_url: str, *, dev_secret: bool) -> None:
    from onecrew_chat.accounts import demo
    from onecrew_chat.db import make_sessionmaker

    engine = make_engine(settings)
    try:
        async with make_sessionmaker(engine)() as session:
            available = await demo.example_is_available(session)
            caller_in_stream = available and await demo.example_caller_in_stream(session)
    finally:
        await engine.dispose()
    if not available:
        return
    token = embedded.dev_token(settings, demo.EXAMPLE_CALLER_ID, ttl_s=EXAMPLE_TOKEN_TTL_S)
    say()
    if caller_in_stream:
        say("Try it: Amr (from the original bug report) starts, or finds again, his conversation with Sat Education:")
    else:
        say("Try it: Amr (from the original bug report, not yet in Stream) starts a conversation with Sat Education:")
    say()
    say("  " + demo.example_curl(base_url, token))
    say()
    owner = demo.COMPANY_OWNER_NAME
    say(f"More tokens: the dev-token command with a user uuid, e.g. for {owner}, who owns Sat Education:")
    say()
    say("  " + dev_token_command(settings, demo.COMPANY_OWNER_ID, dev_secret=dev_secret))
    if settings.service_token is not None:
        _print_unread_steps(base_url, token, settings.service_token.get_secret_value())
    say()
    say(
        f"Demo users are listed in docs/operations.md; the app's other calls in docs/app-endpoints.md and {base_url}/docs."
    )


def _print_unread_steps(base_url: str, amr_token: str, service_token: str) -> None:
    """The internal operations' token, and a message that moves Amr's unread count, in three pasteable steps."""
    from onecrew_chat.accounts import demo

    say()
    say(f"Internal operations (/api/internal, the OneCrew backend's side; Authorize in {base_url}/docs with it):")
    say()
    say(f"  service token: {service_token}")
    say("  " + demo.status_curl(base_url, service_token))
    say()
    say("Send a message, watch the unread count move (after the conversation above exists):")
    say()
    say("  1. Amr's unread conversations:")
    say("  " + demo.unread_curl(base_url, amr_token))
    say("  2. Sat Education sends Amr a message (Stream then tells this service by webhook):")
    say("  " + demo.message_curl(base_url, service_token))
    say("  3. Amr's unread conversations again (one more): the command of step 1.")


# How long an idle keep-alive connection stays open: longer than a load balancer's idle timeout (60 s on the usual
# ones), so the balancer, not this server, closes idle connections; uvicorn's 5 s default let the server close a
# connection just as a busy client reused it, and that request got no answer.
KEEP_ALIVE_S = 75


def http_parser() -> str:
    """uvicorn's HTTP parser: httptools (C, a runtime dependency) when it can be imported, else h11 (pure Python)."""
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "h11"
    return "httptools"


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop (a runtime dependency, except on Windows) when it can be imported, else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run_served(main: Coroutine[object, object, None]) -> None:
    """Run a serving coroutine to its end on the fastest event loop installed (uvloop, else asyncio's)."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(main)


def stack() -> dict[str, str]:
    """What serves requests in this process (for the start-up log line): the running event loop and the parser."""
    return {"loop": type(asyncio.get_running_loop()).__module__.split(".")[0], "http": http_parser()}


def uvicorn_config(settings: Settings) -> uvicorn.Config:
    """uvicorn's settings for one API process serving the app built from `settings` (httptools when installed: about
    0.1 ms less CPU per request than h11; the loop is chosen by `run_served`)."""
    from onecrew_chat.api.app import create_app

    return uvicorn.Config(
        create_app(settings),
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_keep_alive=KEEP_ALIVE_S,
        http=http_parser(),
    )


async def serve_socket(settings: Settings, sock: socket.socket, on_ready: Callable[[], Awaitable[None]]) -> None:
    """Serve the API on an already bound socket until SIGINT/SIGTERM (one process)."""
    server = _Server(uvicorn_config(settings), on_ready)
    await server.serve(sockets=[sock])


async def _seed(settings: Settings) -> None:
    if settings.embedded_database and await embedded.seed_demo_data(settings):
        say("Demo data: the empty database was filled with demo users and the companies Sat Education and Lolo Academy")


async def _serve(
    settings: Settings, sock: socket.socket, base_url: str, stream: embedded.EmbeddedStream | None, *, dev_secret: bool
) -> None:
    await _seed(settings)

    async def on_ready() -> None:
        log.info("serve.process_ready", index=0, pid=os.getpid(), **stack())
        await ready_hook(settings, base_url, embedded_stream=stream is not None, dev_secret=dev_secret)

    await serve_socket(settings, sock, on_ready)


def serve_child(listener: Listener, index: int, ready: Connection, settings: Settings) -> None:
    """One API process of `serve --workers N` (a spawned child) on its own SO_REUSEPORT socket or the inherited one
    (`serve_processes.shared_port`), telling the parent on `ready` once it accepts connections: the outbox worker in
    child 0 only."""
    from onecrew_chat.cli.serve_processes import listening
    from onecrew_chat.logging import configure_logging

    sock = listening(listener)

    configure_logging(settings.log_format, settings.log_level)
    if index > 0:
        settings = settings.model_copy(update={"run_worker": False})

    async def on_ready() -> None:
        log.info("serve.process_ready", index=index, pid=os.getpid(), **stack())
        ready.send(index)

    run_served(serve_socket(settings, sock, on_ready))


def serve(settings: Settings, host: str | None = None, port: int | None = None, workers: int | None = None) -> None:
    """Run the API in `workers` processes (default ONECREW_WEB_WORKERS), and in embedded mode the emulator and the
    demo data, until SIGINT/SIGTERM.

    `host`/`port` default to the HOST/PORT settings. The port is bound first, so a clash is refused before anything
    starts. An instance that keeps files in ONECREW_DATA_DIR (the SQLite database, the emulator's state, the dev
    secrets) holds the folder's lock, so a second one on the same folder is refused instead of sharing them.
    """
    host = settings.host if host is None else host
    port = settings.port if port is None else port
    try:
        sock = listen_socket(host, port)
    except InstanceRefused as exc:
        raise StartupRefused(str(exc)) from None
    lock = DataDirLock(settings.data_dir)
    try:
        _serve_on(settings, sock, lock, workers or settings.web_workers)
    except InstanceRefused as exc:
        raise StartupRefused(str(exc)) from None
    finally:
        lock.release()
        sock.close()


def _embedded_schema_is_newer(settings: Settings) -> bool:
    """The embedded file is migrated on start, unless a newer version migrated it: True when that version said this
    one still works on it (then it is left as it is), refused in one line when it did not."""
    if not settings.sqlite_path.exists():
        return False

    status = schema_status(asyncio.run(database_position(settings)))
    if not status.known and not status.newer_compatible:
        raise StartupRefused(f"{settings.sqlite_path}: {status.problem()}")
    return not status.known


def mode_line(settings: Settings) -> str:
    """What `serve` says about its mode and its Stream (never a secret)."""
    if settings.development:
        return (
            f"Mode: development (Stream: {settings.stream_target}); the development fallbacks stand in for settings "
            "not given. Production refuses to start without every production setting."
        )
    return f"Mode: production (Stream: {settings.stream_target}); no development fallback."


def _serve_on(settings: Settings, sock: socket.socket, lock: DataDirLock, workers: int) -> None:
    # The settings were checked as a whole when read (onecrew_chat.config_checks): in production every one is
    # given, so none of the development fallbacks below can stand in for a missing one.
    dev_secret = embedded.needs_dev_jwt_secret(settings)
    if not settings.embedded_database:
        asyncio.run(check_database(settings))  # refused before any file is written to the data folder
    if settings.embedded_database or settings.embedded_stream or dev_secret:
        lock.acquire()
    settings = embedded.with_dev_service_token(embedded.with_dev_jwt_secret(settings))
    if settings.embedded_database:
        newer = _embedded_schema_is_newer(settings)
        try:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            if not newer:
                upgrade_database(f"sqlite:///{settings.sqlite_path}")
        except Exception as exc:  # an unwritable data dir or a corrupt file: say which
            raise StartupRefused(f"cannot prepare the SQLite database {settings.sqlite_path}: {exc}") from exc
        say(f"Database: SQLite file {settings.sqlite_path} (no DATABASE_URL set), migrations applied")
    # The first log line (refusals above are one line on stderr, with no log before them): what runs.
    log.info("serve.starting", version=version(), pid=os.getpid())
    if not settings.embedded_stream:
        check_stream(settings)
    stream = None
    if settings.embedded_stream:
        stream = embedded.start_emulator(settings)
        settings = stream.settings
        say(
            f"Stream: no STREAM_API_KEY set, so the Stream emulator runs in-process at {stream.base_url} "
            f"(state in {stream.state_file})"
        )
    tell(settings, mode_line(settings), "serve.mode", mode=settings.mode, stream=settings.stream_target)
    base_url = f"http://{display_host(sock.getsockname()[0])}:{sock.getsockname()[1]}"
    try:
        if workers <= 1:
            run_served(_serve(settings, sock, base_url, stream, dev_secret=dev_secret))
        else:
            from onecrew_chat.cli.serve_processes import run_processes, shared_port

            asyncio.run(_seed(settings))
            tell(
                settings,
                f"Processes: {workers} API processes share the port; the outbox worker runs in the first only"
                if settings.run_worker
                else f"Processes: {workers} API processes share the port",
                "serve.processes",
                processes=workers,
                worker_in_first=settings.run_worker,
            )
            kept, listener = shared_port(sock)

            def all_ready() -> None:
                hook = ready_hook(settings, base_url, embedded_stream=stream is not None, dev_secret=dev_secret)
                asyncio.run(hook)

            try:
                run_processes(serve_child, listener, workers, (settings,), all_ready)
            finally:
                kept.close()
    finally:
        if stream is not None:
            stream.stop()
