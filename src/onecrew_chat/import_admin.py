"""`onecrew-chat import users|companies|members FILE` (or `--from-sql URL`): the commands, progress bar and summary."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from onecrew_chat.config import Settings

if TYPE_CHECKING:
    from onecrew_chat.directory_import.runner import Summary

FileArg = Annotated[
    str | None, typer.Argument(help="A .jsonl or .csv file (.gz read transparently); `-` reads standard input.")
]
FromSql = Annotated[
    str | None,
    typer.Option("--from-sql", metavar="URL", help="Read OneCrew's own database instead (ONECREW_IMPORT_<KIND>_SQL)."),
]
Format = Annotated[str | None, typer.Option("--format", help="jsonl or csv (default: from the suffix).")]
Batch = Annotated[int, typer.Option("--batch", min=1, max=10_000, help="Rows per transaction.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the summary as JSON (no progress bar).")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Read and validate every row and report; write nothing.")]


class RateColumn(ProgressColumn):
    """Rows per second."""

    def render(self, task: Task) -> Text:
        """The task's speed, or nothing until rich has measured one."""
        return Text(f"{task.speed:,.0f} rows/s" if task.speed else "", style="progress.data.speed")


def _sql_for(settings: Settings, kind: str) -> str:
    return {
        "users": settings.import_users_sql,
        "companies": settings.import_companies_sql,
        "members": settings.import_members_sql,
    }[kind]


async def _run(
    settings: Settings,
    kind_name: str,
    file: str | None,
    from_sql: str | None,
    fmt: str | None,
    batch: int,
    show_progress: bool,
    dry_run: bool = False,
) -> Summary:
    from onecrew_chat.db import make_engine, make_sessionmaker
    from onecrew_chat.directory_import.files import FileSource
    from onecrew_chat.directory_import.kinds import KINDS
    from onecrew_chat.directory_import.runner import run_import
    from onecrew_chat.directory_import.sql_source import SqlSource

    kind = KINDS[kind_name]
    source = SqlSource(from_sql, _sql_for(settings, kind_name)) if from_sql else FileSource(file or "-", kind, fmt)
    try:
        total = await source.total() if show_progress else None
    except BaseException:
        await source.close()
        raise
    engine = make_engine(settings)
    columns = (
        TextColumn(f"importing {kind_name}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, console=Console(stderr=True), disable=not show_progress) as bar:
            task = bar.add_task(kind_name, total=total)
            summary = await run_import(
                make_sessionmaker(engine),
                kind,
                source,
                batch_size=batch,
                progress=lambda done: bar.advance(task, done),
                dry_run=dry_run,
            )
            if summary.stopped is None:  # blank lines counted in the estimate: show the bar full
                bar.update(task, total=bar.tasks[0].completed)
            return summary
    finally:
        await engine.dispose()


def print_summary(summary: Summary, out: Callable[[str], None] = typer.echo) -> None:
    """The closing summary: counts, queued Stream syncs, and every rejected row with its reason."""
    c = summary.counts
    rate = f", {summary.read / summary.seconds:,.0f} rows/s" if summary.seconds > 0 and summary.read else ""
    verb, would = ("Dry run of the import of", "would be ") if summary.dry_run else ("Imported", "")
    out(
        f"{verb} {summary.kind} from {summary.source}: {c['created']:,} {would}created, {c['updated']:,} {would}updated, "
        f"{c['unchanged']:,} unchanged, {c['rejected']:,} rejected "
        f"({summary.read:,} rows in {summary.seconds:.1f} s{rate})."
    )
    if summary.sync_queued and summary.dry_run:
        out(f"Would queue {summary.sync_queued:,} Stream profile updates (identity.sync).")
    elif summary.sync_queued:
        out(f"Queued {summary.sync_queued:,} Stream profile updates (identity.sync) for identities Stream already has.")
    if not summary.changed and summary.read > c["rejected"]:
        out("Nothing changed: every valid row was already in the directory as given.")
    if summary.rejections:
        out(f"Rejected {summary.position_word}s (fix them and run the command again):")
        for position, error in summary.rejections:
            out(f"  {summary.where(position)}: {error}")
    if summary.renamed:
        out(
            f"Imported under a fallback or shortened name ({len(summary.renamed):,}; fix them in OneCrew, then import again):"
        )
        for position, note in summary.renamed:
            out(f"  {summary.position_word} {position}: {note}")
    if summary.dry_run:
        out("Dry run: nothing was written.")
    if summary.stopped:
        out(
            f"Stopped before the end: {summary.stopped}. What was read before is committed; "
            "run the command again to continue (rows already imported count as unchanged)."
        )


def _command(
    kind_name: str,
    load_settings: Callable[[], Settings],
    fail: Callable[..., NoReturn],
    require_migrated: Callable[[Settings], None],
) -> Callable[..., None]:
    def command(
        file: FileArg = None,
        from_sql: FromSql = None,
        fmt: Format = None,
        batch: Batch = 1000,
        as_json: AsJson = False,
        dry_run: DryRun = False,
    ) -> None:
        from onecrew_chat.directory_import.files import FORMATS
        from onecrew_chat.directory_import.rows import SourceError

        if (file is None) == (from_sql is None):
            fail("give either a FILE (or - for standard input) or --from-sql URL", code=2)
        if fmt is not None and fmt not in FORMATS:
            fail(f"--format must be jsonl or csv, got {fmt!r}", code=2)
        settings = load_settings()
        require_migrated(settings)
        try:
            summary = asyncio.run(
                _run(settings, kind_name, file, from_sql, fmt, batch, show_progress=not as_json, dry_run=dry_run)
            )
        except SourceError as exc:
            fail(str(exc), code=2)
        except KeyboardInterrupt:
            fail("interrupted; the batches already committed stay. Run the same command again to continue.", code=130)
        if as_json:
            typer.echo(json.dumps(summary.as_dict()))
        else:
            print_summary(summary)
        raise typer.Exit(0 if summary.ok else 1)

    command.__doc__ = (
        f"Import {kind_name} ({_HELP_COLUMNS[kind_name]}) from a JSONL/CSV file or OneCrew's database; "
        "idempotent, resumable, bad rows listed by line."
    )
    return command


# For --help only (kept out of the import's modules so the command line starts without loading them).
_HELP_COLUMNS = {
    "users": "id, name, image_url, category",
    "companies": "id, name, logo_url, subcategory",
    "members": "company_id, user_id, role, invitation_status",
}


def register(
    import_app: typer.Typer,
    *,
    load_settings: Callable[[], Settings],
    fail: Callable[..., NoReturn],
    require_migrated: Callable[[Settings], None],
) -> None:
    """Add `users`, `companies` and `members` to the `import` command group."""
    for kind_name in ("users", "companies", "members"):
        import_app.command(kind_name)(_command(kind_name, load_settings, fail, require_migrated))
