"""The `onecrew-chat` command: serve, worker, status, dev-token, reconcile, stream-emulator, and the command groups
(db, outbox, sync and reconcile, import, stream, cutover: one module each).

Every command pays for what the command line imports before it parses its arguments, and so does `--help`, `--version`
and each process a test starts. So this module and the command-group modules import at their top only typer, the
standard library and light constants that option defaults need: typer reads each command's signature at startup, and
nothing else. Everything a command works with (settings, the database and models, the FastAPI app, uvicorn, the
Stream SDK, the emulator, alembic, rich progress) is imported inside the command function, or in the `*_runs` module
the command imports when it runs; type hints for those go under TYPE_CHECKING.
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import TYPE_CHECKING, Annotated, Any

import typer
import typer.core

from onecrew_chat.cli import cutover, db, imports, outbox, stream, sync
from onecrew_chat.cli.settings import fail, load_settings, require_migrated, require_stream

if TYPE_CHECKING:
    from onecrew_chat.config import Settings


def _flags_without_a_type(typer_option: type[typer.core.TyperOption]) -> None:
    """A flag takes no value, so help shows none: typer 0.29 prints `<bool>` beside every flag (`--help` too)."""
    shown = typer_option.display_type_rich

    def display_type_rich(self: typer.core.TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag else shown(self, ctx)

    typer_option.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_without_a_type(typer.core.TyperOption)

app = typer.Typer(
    name="onecrew-chat",
    help="OneCrew's chat backend. `serve` with no settings runs everything locally (SQLite, Stream emulator, demo data).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals hold settings, and settings hold secrets
)

app.add_typer(db.app, name="db")
app.add_typer(outbox.app, name="outbox")
app.add_typer(sync.app, name="sync")
app.add_typer(imports.app, name="import")
app.add_typer(stream.app, name="stream")
app.add_typer(cutover.app, name="cutover")


def _print_version(value: bool) -> None:
    if value:
        from onecrew_chat import version

        typer.echo(f"onecrew-chat {version()}")
        raise typer.Exit()


@app.callback()
def _options(
    _version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit.", show_default=False
        ),
    ] = False,
) -> None:
    """OneCrew's chat backend. `serve` with no settings runs everything locally (SQLite, Stream emulator, demo data)."""


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on (default: HOST, else 127.0.0.1).")] = None,
    port: Annotated[
        int | None,
        typer.Option(min=0, max=65535, help="Port to listen on (default: PORT, else 8000; 0 picks a free one)."),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, max=64, help="API processes sharing the port (default ONECREW_WEB_WORKERS, 1).")
    ] = None,
) -> None:
    """Serve the API; with no STREAM_API_KEY / DATABASE_URL it embeds the emulator and a SQLite file."""
    from onecrew_chat.cli.serve import StartupRefused
    from onecrew_chat.cli.serve import serve as run_server

    try:
        run_server(load_settings(), host, port, workers)
    except StartupRefused as exc:
        fail(f"refusing to start: {exc}")


@app.command("dev-token")
def dev_token(
    user_id: Annotated[str, typer.Argument(help="The OneCrew user uuid (the token's `sub`).")],
    ttl: Annotated[int, typer.Option(min=1, help="Lifetime in seconds.")] = 3600,
) -> None:
    """Print a JWT for USER_ID signed with ONECREW_JWT_SECRET (or the dev secret `serve` keeps in ONECREW_DATA_DIR)."""
    from onecrew_chat.cli import embedded
    from onecrew_chat.identity import normalize_uuid

    try:
        normalize_uuid(user_id)
    except ValueError:
        fail(f"USER_ID must be a uuid, got {user_id!r}", code=2)
    settings = load_settings()
    if embedded.needs_dev_jwt_secret(settings):
        if not embedded.has_dev_jwt_secret(settings):
            # Making a new secret here would sign tokens no running server accepts: say where to look instead.
            fail(
                f"no dev secret in {embedded.dev_secrets_path(settings).resolve()}: run this where `make run` runs "
                "(or set ONECREW_DATA_DIR to that server's data folder), or start `onecrew-chat serve` first"
            )
        settings = embedded.with_dev_jwt_secret(settings)
    if not settings.jwt_secret:
        fail("no ONECREW_JWT_SECRET to sign with: only ONECREW_JWT_PUBLIC_KEY is set (tokens come from the backend)")
    typer.echo(embedded.dev_token(settings, user_id, ttl_s=ttl))


@app.command()
def worker() -> None:
    """Run the outbox worker and its periodic jobs (reconcile, purges) until SIGINT/SIGTERM; /metrics and /healthz
    on ONECREW_WORKER_METRICS_PORT (default 9101, 0: none)."""
    from onecrew_chat import version
    from onecrew_chat.composition import run_worker
    from onecrew_chat.logging import get_logger
    from onecrew_chat.observability.heartbeat import run_heartbeat
    from onecrew_chat.observability.worker_http import MetricsPortUnavailable, start_metrics_server
    from onecrew_chat.runtime import build_runtime

    settings = load_settings()
    require_stream(settings)
    require_migrated(settings)
    log = get_logger(__name__)
    log.info("worker.starting", version=version(), pid=os.getpid())  # the first log line: what runs
    _check_stream_at_startup(settings)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        runtime = build_runtime(settings)
        metrics_server = None
        try:
            if settings.worker_metrics_port:
                metrics_server = await start_metrics_server(
                    runtime, settings.worker_metrics_host, settings.worker_metrics_port
                )
            heartbeat = asyncio.create_task(run_heartbeat(runtime, stop), name="worker-heartbeat")
            log.info(
                "worker.started",
                poll_s=settings.worker_poll_s,
                metrics_url=metrics_server.url if metrics_server else None,
            )
            try:
                await run_worker(runtime, stop)
            finally:
                stop.set()
                await heartbeat
        finally:
            if metrics_server is not None:
                await metrics_server.stop()
            await runtime.close()
            log.info("worker.stopped")

    try:
        asyncio.run(run())
    except MetricsPortUnavailable as exc:
        fail(f"refusing to start: {exc}")


def _check_stream_at_startup(settings: Settings) -> None:
    """Refuse (one line) when Stream rejects the key or secret; warn and go on when it does not answer."""
    from onecrew_chat.cli.serve import StartupRefused, check_stream

    try:
        check_stream(settings)
    except StartupRefused as exc:
        fail(f"refusing to start: {exc}")


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON (for scripts).")] = False,
) -> None:
    """One screen: database, migrations, Stream, outbox, dead letters, reconcile, drift, workers.

    Exits 1 when something needs attention (the problems are listed), 0 when all is well.
    """
    from onecrew_chat.cli import status_report

    settings = load_settings()
    report = asyncio.run(status_report.collect(settings))
    if as_json:
        typer.echo(status_report.to_json(report))
    else:
        status_report.print_status(report)
    if not report.ok:
        raise typer.Exit(1)


app.command()(sync.reconcile)


def _mount_stream_emulator() -> None:
    """`onecrew-chat stream-emulator` is the emulator's own command, when its package provides one."""
    try:
        from stream_emulator.cli import run
    except ImportError:

        @app.command("stream-emulator")
        def stream_emulator_missing() -> None:
            """Run the Stream emulator alone (not available in this installation)."""
            fail("the stream_emulator package has no command line (stream_emulator.cli.run) in this installation")

        return
    app.command("stream-emulator")(run)


_mount_stream_emulator()


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
