"""`onecrew-chat db upgrade|downgrade|current|history`: the database schema (Alembic migrations)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

import typer

from onecrew_chat.cli.settings import fail, load_settings

if TYPE_CHECKING:
    from onecrew_chat.config import Settings

app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)


def _shown_database(settings: Settings) -> tuple[str, str]:
    """(the URL as configured, the same without its password) for DATABASE_URL or the embedded file."""
    from sqlalchemy.engine import make_url

    url = settings.database_url or f"sqlite:///{settings.sqlite_path}"
    return url, make_url(url).render_as_string(hide_password=True)


@app.command("upgrade")
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


@app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="The migration to go back to (see `db history`).")],
    yes: Annotated[
        bool, typer.Option("--yes", help="Undo them (without it: show what would be undone and change nothing).")
    ] = False,
) -> None:
    """Undo this version's migrations newer than REVISION (after the code was rolled back; see docs/operations.md)."""
    from onecrew_chat.cli import db_downgrade
    from onecrew_chat.db import downgrade_database, head_revision

    settings = load_settings()
    url, shown = _shown_database(settings)
    try:
        plan = asyncio.run(db_downgrade.plan_downgrade(settings, revision))
    except db_downgrade.DowngradeRefused as exc:
        fail(f"cannot downgrade {shown}: {exc}")
    except Exception as exc:  # unreachable server, bad credentials: one readable line
        fail(f"cannot read {shown}: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
    for line in db_downgrade.plan_lines(plan, shown, head_revision()):
        typer.echo(line)
    if not yes:
        fail("nothing changed: add --yes to undo them")
    try:
        downgrade_database(url, plan.target)
    except Exception as exc:
        fail(f"cannot downgrade {shown}: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
    typer.echo(f"Database {shown} is at migration {plan.target}.")


@app.command("current")
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


@app.command("history")
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
