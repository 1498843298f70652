"""`onecrew-chat stream configure|demote-admins`: the Stream app's settings this service needs, and its admin roles."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from onecrew_chat.cli.settings import JsonReport, fail, load_settings, require_stream

app = typer.Typer(help="The Stream app's settings this service needs, and its admin roles.", no_args_is_help=True)


@app.command("configure")
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
    from onecrew_chat.cli import stream_settings
    from onecrew_chat.stream.errors import StreamError

    settings = load_settings()
    try:
        url = stream_settings.webhook_url_from(settings, webhook_url)
        providers = stream_settings.parse_providers(push_provider) if push_provider else None
    except ValueError as exc:
        fail(str(exc), code=2)
    require_stream(settings)
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


@app.command("demote-admins")
def stream_demote_admins(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would change; send nothing.")] = False,
    as_json: JsonReport = False,
) -> None:
    """Give role user to every Stream admin in OneCrew's id space (onecrew_user_*, onecrew_company_*), known or not."""
    from onecrew_chat.stream.client import StreamGateway
    from onecrew_chat.stream.errors import StreamError
    from onecrew_chat.sync.cutover import admin_roles

    settings = load_settings()
    require_stream(settings)

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
