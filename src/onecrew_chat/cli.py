"""The `onecrew-chat` command: serve, worker, status, dev-token, db upgrade, register-webhook, outbox, reconcile, sync, stream-emulator."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Annotated, Any, NoReturn

import typer
import typer.core
from pydantic import ValidationError

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
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
outbox_app = typer.Typer(help="Work waiting to reach Stream: inspect and requeue.", no_args_is_help=True)
sync_app = typer.Typer(help="Bring Stream up to date with the directory.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(outbox_app, name="outbox")
app.add_typer(sync_app, name="sync")
import_app = typer.Typer(
    help="Take over from the old backend: the directory (files or OneCrew's own database) and its Stream channels.",
    no_args_is_help=True,
)
stream_app = typer.Typer(
    help="The Stream app's settings this service needs, and its admin roles.", no_args_is_help=True
)
cutover_app = typer.Typer(
    help="Switch-over day (docs/cutover.md): the cut-over switch, and the catch-up with what the old backend did.",
    no_args_is_help=True,
)
app.add_typer(import_app, name="import")
app.add_typer(stream_app, name="stream")
app.add_typer(cutover_app, name="cutover")


def _print_version(value: bool) -> None:
    if value:
        from onecrew_chat.version import version

        typer.echo(f"onecrew-chat {version()}")
        raise typer.Exit()


# Options several commands share, written once.
JsonReport = Annotated[bool, typer.Option("--json", help="The report as JSON on stdout.")]
RetrySkipped = Annotated[
    bool,
    typer.Option("--retry-skipped", help="Decide again the channels earlier runs skipped (e.g. unknown members)."),
]


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


def fail(message: str, code: int = 1) -> NoReturn:
    """Print `onecrew-chat: <message>` on stderr and exit with `code`."""
    typer.echo(f"onecrew-chat: {message}", err=True)
    raise typer.Exit(code)


def settings_problems(exc: Exception) -> list[str]:
    """One `NAME: what is wrong` per invalid setting (never the value: it may be a secret)."""
    if isinstance(exc, ValidationError):
        problems = []
        for error in exc.errors():
            message = error["msg"].removeprefix("Value error, ")
            if not error["loc"]:  # the settings as a whole (onecrew_chat.config_checks): one problem per line
                problems.extend(message.splitlines())
                continue
            name = str(error["loc"][0]).upper()
            problems.append(f"{name}: {message}")
        return problems
    return [str(exc).splitlines()[0][:300]]


def load_settings() -> Settings:
    """Settings from the environment, with logging configured; exit 2 with one line per invalid setting.

    Every ONECREW_* variable that is not a setting is warned about first (one line each, with the closest
    known name): a misspelt one is the likeliest reason a setting seems missing.
    """
    import os

    from pydantic_settings.exceptions import SettingsError

    from onecrew_chat.config import unknown_setting_warnings
    from onecrew_chat.logging import configure_logging

    for warning in unknown_setting_warnings(dict(os.environ)):
        typer.echo(f"onecrew-chat: warning: {warning}", err=True)
    try:
        settings = Settings()
    except (ValidationError, SettingsError) as exc:
        for problem in settings_problems(exc):
            typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2) from None
    configure_logging(settings.log_format, settings.log_level)
    return settings


def _require_migrated(settings: Settings) -> None:
    from onecrew_chat.server import StartupRefused, check_database

    try:
        asyncio.run(check_database(settings))
    except StartupRefused as exc:
        fail(str(exc))


def _require_stream(settings: Settings) -> None:
    if not settings.stream_api_key or not settings.stream_api_secret:
        fail(
            "set STREAM_API_KEY and STREAM_API_SECRET (and STREAM_BASE_URL) for this command; "
            "the embedded emulator only lives inside `onecrew-chat serve`"
        )


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
    from onecrew_chat.server import StartupRefused
    from onecrew_chat.server import serve as run_server

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
    from onecrew_chat import embedded
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


def _shown_database(settings: Settings) -> tuple[str, str]:
    """(the URL as configured, the same without its password) for DATABASE_URL or the embedded file."""
    from sqlalchemy.engine import make_url

    url = settings.database_url or f"sqlite:///{settings.sqlite_path}"
    return url, make_url(url).render_as_string(hide_password=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the migrations to DATABASE_URL (or the embedded SQLite file)."""
    from onecrew_chat.db import head_revision, upgrade_database
    from onecrew_chat.schema_status import database_position, schema_status

    settings = load_settings()
    url, shown = _shown_database(settings)
    if settings.embedded_database:
        settings.data_dir.mkdir(parents=True, exist_ok=True)

    try:
        before = schema_status(asyncio.run(database_position(settings)))
        if before.newer_compatible:  # e.g. the migrate job of the older version, rerun during a rollback
            typer.echo(
                f"Database {shown} is at migration {before.current}, newer than this version's {before.head}, "
                "and this version still works on it: nothing to do."
            )
            return
        if not before.known:
            fail(f"cannot migrate {shown}: {before.problem()}")
        upgrade_database(url)
    except typer.Exit:
        raise
    except Exception as exc:  # unreachable server, bad credentials: one readable line
        fail(f"cannot migrate {shown}: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
    typer.echo(f"Database {shown} is at migration {head_revision()} (head).")


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="The migration to go back to (see `db history`).")],
    yes: Annotated[
        bool, typer.Option("--yes", help="Undo them (without it: show what would be undone and change nothing).")
    ] = False,
) -> None:
    """Undo this version's migrations newer than REVISION (after the code was rolled back; see docs/operations.md)."""
    from onecrew_chat import schema_admin
    from onecrew_chat.db import downgrade_database, head_revision

    settings = load_settings()
    url, shown = _shown_database(settings)
    try:
        plan = asyncio.run(schema_admin.plan_downgrade(settings, revision))
    except schema_admin.DowngradeRefused as exc:
        fail(f"cannot downgrade {shown}: {exc}")
    except Exception as exc:  # unreachable server, bad credentials: one readable line
        fail(f"cannot read {shown}: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
    for line in schema_admin.plan_lines(plan, shown, head_revision()):
        typer.echo(line)
    if not yes:
        fail("nothing changed: add --yes to undo them")
    try:
        downgrade_database(url, plan.target)
    except Exception as exc:
        fail(f"cannot downgrade {shown}: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
    typer.echo(f"Database {shown} is at migration {plan.target}.")


@db_app.command("current")
def db_current() -> None:
    """Print the migration the database is at, and what (if anything) is to be done."""
    from onecrew_chat.schema_status import database_position, schema_status

    settings = load_settings()
    _, shown = _shown_database(settings)

    try:
        status = schema_status(asyncio.run(database_position(settings)))
    except Exception as exc:  # unreachable server, bad credentials: one readable line
        fail(f"cannot read {shown}: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
    if status.up_to_date:
        typer.echo(f"Database {shown} is at migration {status.current} (head): nothing to do.")
        return
    if status.newer_compatible:
        typer.echo(
            f"Database {shown} is at migration {status.current}, newer than this version's {status.head}; "
            "the version that migrated it recorded that this one still works on it: nothing to do."
        )
        return
    typer.echo(f"Database {shown}: {status.problem()}.")
    raise typer.Exit(1)


@db_app.command("history")
def db_history() -> None:
    """List the migrations this version ships, oldest first, marking the database's current one."""
    from onecrew_chat.schema_status import database_position, schema_status, shipped_migrations

    settings = load_settings()

    try:
        status = schema_status(asyncio.run(database_position(settings)))
    except Exception:  # no database to compare with: the list alone is still useful
        status = None
    pending = {m.revision for m in status.pending} if status and status.known else set()
    for migration in shipped_migrations():
        if status is None or not status.known:
            mark = ""
        elif migration.revision == status.current:
            mark = "  <- current" + (" (head)" if status.up_to_date else "")
        elif migration.revision in pending:
            mark = "  (not applied)"
        else:
            mark = "  (applied)"
        typer.echo(f"{migration.revision}  {migration.title}{mark}")
    if status is not None and not status.known:
        still = " (and recorded that this version still works on it)" if status.newer_compatible else ""
        typer.echo(
            f"The database is at {status.current}, which is not in this list: a newer version migrated it{still}."
        )


@app.command()
def worker() -> None:
    """Run the outbox worker and its periodic jobs (reconcile, purges) until SIGINT/SIGTERM; /metrics and /healthz
    on ONECREW_WORKER_METRICS_PORT (default 9101, 0: none)."""
    from onecrew_chat.composition import run_worker
    from onecrew_chat.logging import get_logger
    from onecrew_chat.observability.heartbeat import run_heartbeat
    from onecrew_chat.observability.worker_http import MetricsPortUnavailable, start_metrics_server
    from onecrew_chat.runtime import build_runtime
    from onecrew_chat.version import version

    settings = load_settings()
    _require_stream(settings)
    _require_migrated(settings)
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
    from onecrew_chat.server import StartupRefused, check_stream

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
    from onecrew_chat import status_admin

    settings = load_settings()
    report = asyncio.run(status_admin.collect(settings))
    if as_json:
        typer.echo(status_admin.to_json(report))
    else:
        status_admin.print_status(report)
    if not report.ok:
        raise typer.Exit(1)


@app.command("register-webhook")
def register_webhook(
    url: Annotated[
        str | None,
        typer.Argument(
            help="e.g. https://chat.example.com/api/chat/webhooks/stream; default: from ONECREW_PUBLIC_BASE_URL"
        ),
    ] = None,
) -> None:
    """Tell the configured Stream app to deliver webhook events to URL."""
    from onecrew_chat.embedded import WEBHOOK_PATH
    from onecrew_chat.embedded import register_webhook as register

    settings = load_settings()
    if url is None:
        if not settings.public_base_url:
            fail("give the URL, or set ONECREW_PUBLIC_BASE_URL to derive it", code=2)
        url = settings.public_base_url.rstrip("/") + WEBHOOK_PATH
    if not url.startswith(("http://", "https://")):
        fail(f"URL must start with http:// or https://, got {url!r}", code=2)
    _require_stream(settings)
    try:
        asyncio.run(register(settings, url))
    except Exception as exc:  # Stream refused or is down: say so instead of a traceback
        fail(f"Stream did not accept the webhook URL: {type(exc).__name__}: {exc}")
    typer.echo(f"Stream app {settings.stream_api_key} at {settings.stream_base_url} now sends webhook events to {url}")


@outbox_app.command("list")
def outbox_list(limit: Annotated[int, typer.Option(min=1, help="At most this many rows.")] = 50) -> None:
    """Show outbox messages that are pending or dead."""
    from onecrew_chat import outbox_admin

    settings = load_settings()
    _require_migrated(settings)
    outbox_admin.print_table(asyncio.run(outbox_admin.unfinished(settings, limit=limit)))


@outbox_app.command("retry")
def outbox_retry(
    message_id: Annotated[int | None, typer.Argument(help="The id shown by `outbox list`.")] = None,
    all_dead: Annotated[bool, typer.Option("--all-dead", help="Requeue every dead message.")] = False,
) -> None:
    """Make a message (or every dead one) due now, with a fresh attempt budget."""
    from onecrew_chat import outbox_admin

    if (message_id is None) == (not all_dead):
        fail("give either a message ID or --all-dead", code=2)
    settings = load_settings()
    _require_migrated(settings)
    try:
        count = asyncio.run(outbox_admin.requeue(settings, message_id=message_id))
    except LookupError as exc:
        fail(str(exc))
    typer.echo(f"Requeued {count} outbox message{'s' if count != 1 else ''}.")


@app.command()
def reconcile(
    repair: Annotated[
        bool, typer.Option("--repair", help="Queue repairs of the drift found (default: report only).")
    ] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="Check at most N identities and N conversations.")] = None,
    deadline: Annotated[
        float | None, typer.Option(min=0.1, help="Seconds the run may take (default ONECREW_RECONCILE_DEADLINE_S).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON (for scripts).")] = False,
) -> None:
    """Compare our records with Stream: identities, ready channels and their members, webhook drift."""
    from onecrew_chat import sync_admin
    from onecrew_chat.stream.errors import StreamError

    settings = load_settings()
    _require_stream(settings)
    _require_migrated(settings)
    try:
        report = asyncio.run(sync_admin.run_reconcile(settings, repair=repair, limit=limit, deadline_s=deadline))
    except StreamError as exc:
        fail(f"Stream refused the reconcile: {exc}")
    if as_json:
        typer.echo(sync_admin.to_json(report))
    else:
        sync_admin.print_reconcile(report)


@sync_app.command("identities")
def sync_identities(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count what would be sent.")] = False,
    batch: Annotated[int, typer.Option(min=1, max=100, help="Identities per Stream call.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON (for scripts).")] = False,
) -> None:
    """Upsert every user and company Stream lacks (or holds with an old profile); run again to resume."""
    from onecrew_chat import sync_admin
    from onecrew_chat.stream.errors import StreamError

    settings = load_settings()
    if not dry_run:
        _require_stream(settings)
    _require_migrated(settings)
    try:
        report = asyncio.run(sync_admin.run_backfill(settings, batch=batch, dry_run=dry_run))
    except StreamError as exc:
        fail(f"stopped: {exc}. What was sent is recorded; run the command again to continue.")
    if as_json:
        typer.echo(sync_admin.to_json(report))
    else:
        sync_admin.print_backfill(report)


@import_app.command("channels")
def import_channels(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Read Stream and report; write nothing, send nothing.")
    ] = False,
    as_json: JsonReport = False,
    retry_skipped: RetrySkipped = False,
) -> None:
    """Adopt every messaging channel in Stream: pairs keep their channel id, groups their name; resumable."""
    from onecrew_chat import adoption_admin
    from onecrew_chat.stream.errors import StreamError

    settings = load_settings()
    _require_stream(settings)
    _require_migrated(settings)
    try:
        report = asyncio.run(adoption_admin.run_import_channels(settings, dry_run=dry_run, retry_skipped=retry_skipped))
    except StreamError as exc:
        fail(f"stopped: {exc}. What was read and adopted is recorded; run the command again to continue.")
    adoption_admin.print_report(report, as_json=as_json)


def _cutover_switch(on: bool | None) -> None:
    from onecrew_chat import cutover_admin

    settings = load_settings()
    _require_migrated(settings)
    state, changed = asyncio.run(cutover_admin.switch(settings, on=on))
    if on is not None and not changed:
        typer.echo("Unchanged.")
    typer.echo(cutover_admin.describe(state))


@cutover_app.command("begin")
def cutover_begin() -> None:
    """Creates for a pair the service does not know adopt the pair's existing Stream channel first (until `end`)."""
    _cutover_switch(True)


@cutover_app.command("end")
def cutover_end() -> None:
    """Creates stop looking in Stream for old channels (run the last catch-up first)."""
    _cutover_switch(False)


@cutover_app.command("status")
def cutover_status() -> None:
    """Whether a cut-over is in progress."""
    _cutover_switch(None)


@cutover_app.command("catch-up")
def cutover_catch_up(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Compare with Stream and report; write nothing, send nothing.")
    ] = False,
    as_json: JsonReport = False,
    retry_skipped: RetrySkipped = False,
) -> None:
    """Adopt channels that appeared since, and bring every conversation's last message, preview and read state up
    to Stream's; repeatable, safe before and after the switch."""
    from onecrew_chat import cutover_admin
    from onecrew_chat.stream.errors import StreamError

    settings = load_settings()
    _require_stream(settings)
    _require_migrated(settings)
    try:
        report = asyncio.run(cutover_admin.run_catch_up(settings, dry_run=dry_run, retry_skipped=retry_skipped))
    except StreamError as exc:
        fail(f"stopped: {exc}. What was caught up is recorded; run the command again to continue.")
    cutover_admin.print_report(report, as_json=as_json)


@stream_app.command("configure")
def stream_configure(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the difference; change nothing.")] = False,
    webhook_url: Annotated[
        str | None, typer.Option(help="Default: ONECREW_PUBLIC_BASE_URL + /api/chat/webhooks/stream.")
    ] = None,
    push_provider: Annotated[
        list[str] | None,
        typer.Option(help="TYPE or TYPE:NAME for reaction push (repeatable); default: every provider the app enables."),
    ] = None,
    roll_back: Annotated[
        bool,
        typer.Option("--roll-back", help="Remove this service's webhook target (every other target is kept)."),
    ] = False,
    take_webhook_url: Annotated[
        bool,
        typer.Option(
            "--take-webhook-url",
            help="On an app without event hooks, take its single webhook_url even from another target.",
        ),
    ] = False,
) -> None:
    """Apply the Stream app settings this service needs (its webhook target and events, reaction push); shows the
    difference first. Other webhook targets keep every event they have."""
    from onecrew_chat import stream_settings
    from onecrew_chat.stream.errors import StreamError

    settings = load_settings()
    try:
        url = stream_settings.webhook_url_from(settings, webhook_url)
        providers = stream_settings.parse_providers(push_provider) if push_provider else None
    except ValueError as exc:
        fail(str(exc), code=2)
    _require_stream(settings)
    try:
        plan = asyncio.run(
            stream_settings.configure(
                settings,
                webhook_url=url,
                providers=providers,
                dry_run=dry_run,
                roll_back=roll_back,
                take_webhook_url=take_webhook_url,
            )
        )
    except StreamError as exc:
        fail(f"Stream refused: {exc}")
    for line in stream_settings.lines(plan, dry_run=dry_run):
        typer.echo(line)


@stream_app.command("demote-admins")
def stream_demote_admins(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would change; send nothing.")] = False,
    as_json: JsonReport = False,
) -> None:
    """Give role user to every Stream admin in OneCrew's id space (onecrew_user_*, onecrew_company_*), known or not."""
    from onecrew_chat.stream.client import StreamGateway
    from onecrew_chat.stream.errors import StreamError
    from onecrew_chat.sync.adoption import admin_roles

    settings = load_settings()
    _require_stream(settings)

    async def run() -> admin_roles.DemotionReport:
        stream = StreamGateway.from_settings(settings)
        try:
            return await admin_roles.demote_admins(stream, dry_run=dry_run)
        finally:
            await stream.close()

    try:
        report = asyncio.run(run())
    except StreamError as exc:
        fail(f"stopped: {exc}. Users demoted so far keep role user; run the command again to continue.")
    typer.echo(admin_roles.to_json(report) if as_json else report.as_text())


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


def _mount_directory_import() -> None:
    """`onecrew-chat import users|companies|members` (src/onecrew_chat/import_admin.py)."""
    from onecrew_chat import import_admin

    import_admin.register(import_app, load_settings=load_settings, fail=fail, require_migrated=_require_migrated)


_mount_directory_import()


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
