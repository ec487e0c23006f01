"""Server-side commands that serve nothing: migrate, collect garbage, roll up analytics,
seal secrets again, and issue a token straight into the database. Each builds the one
runtime (runtime.py) over the database and lets it go when done."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from execd.cli.app import SERVER, app, secrets_app
from execd.cli.server import run_loop, server_settings

if TYPE_CHECKING:
    from execd.client import NewToken
    from execd.config import Settings
    from execd.runtime import Runtime

T = TypeVar("T")
TOKEN_TIMES = ("created", "expires", "last_used", "revoked")


@app.command(rich_help_panel=SERVER)
def migrate(
    database_url: Annotated[str | None, typer.Option(help="[EXECD_DATABASE_URL]")] = None,
) -> None:
    """Apply database migrations."""
    from execd.store.migrate import current_head, found_version, upgrade

    settings = server_settings(database_url=database_url)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    before = found_version(settings.resolved_database_url)
    upgrade(settings.resolved_database_url)
    head = current_head()
    if before == head:
        typer.echo(f"database is up to date (schema {head})")
    else:
        typer.echo(f"database migrated: schema {before or 'none (a new database)'} -> {head}")


@app.command(rich_help_panel=SERVER)
def gc(
    dry_run: Annotated[bool, typer.Option(help="Only count what would be deleted")] = False,
    days: Annotated[
        float | None, typer.Option(help="Days to keep ended executions [EXECD_RETENTION_DAYS]")
    ] = None,
    database_url: Annotated[str | None, typer.Option(help="[EXECD_DATABASE_URL]")] = None,
) -> None:
    """Apply the retention policy now: delete ended executions past their time."""
    from execd.config import RETENTION_STATUSES

    # --days is the policy for this run: it overrides the per-status settings too.
    per_status = {f"retention_days_{s.value}": days for s in RETENTION_STATUSES}
    settings = server_settings(database_url=database_url, retention_days=days, **per_status)
    if not settings.retention_policy().active:
        typer.echo("error: no retention policy: set EXECD_RETENTION_DAYS or --days", err=True)
        raise typer.Exit(2)
    if dry_run:
        from execd.store.migrate import is_current

        try:
            current = is_current(settings.resolved_database_url)
        except Exception as exc:  # no such database, no server, refused
            typer.echo(f"error: cannot read the database: {exc}".splitlines()[0], err=True)
            raise typer.Exit(2) from None
        if not current:
            typer.echo(
                "error: the database is not at this version's schema: run `execd migrate` "
                "first (a dry run changes nothing)",
                err=True,
            )
            raise typer.Exit(2)
    swept = run_loop(
        _offline(settings, lambda r: r.retention.sweep(dry_run=dry_run), migrate=not dry_run)
    )
    if dry_run:
        typer.echo(f"would delete {swept.deleted} executions (and what is below them)")
    else:
        typer.echo(
            f"deleted {swept.deleted} executions in {swept.batches} batches, "
            f"and {swept.audit_deleted} audit log entries"
        )


async def _offline(
    settings: Settings, job: Callable[[Runtime], Awaitable[T]], *, migrate: bool = True
) -> T:
    """Run `job` against the database (migrated first, unless told not to), without
    serving anything."""
    from execd.runtime import Runtime
    from execd.store.migrate import upgrade

    if migrate:
        await asyncio.to_thread(upgrade, settings.resolved_database_url)
    runtime = Runtime(settings)
    try:
        return await job(runtime)
    finally:
        await runtime.db.dispose()


@app.command(rich_help_panel=SERVER)
def rollup(
    rebuild: Annotated[
        bool, typer.Option(help="Forget every rollup and compute them all again")
    ] = False,
    database_url: Annotated[str | None, typer.Option(help="[EXECD_DATABASE_URL]")] = None,
) -> None:
    """Roll up the analytics of every hour that is over (serve does it every minute)."""
    settings = server_settings(database_url=database_url)
    hours = run_loop(_offline(settings, lambda r: r.executions.roll_up(rebuild=rebuild)))
    typer.echo(f"rolled up {hours} hours")


@secrets_app.command("rotate")
def rotate_secrets(
    database_url: Annotated[str | None, typer.Option(help="[EXECD_DATABASE_URL]")] = None,
) -> None:
    """Seal every secret in the database with the first key of EXECD_SECRET_KEY (or the
    key file), including values an older version left in plain text. Exits 1 if some
    could not be opened (sealed with a key not given)."""
    from execd.domain.errors import ExecdError, StartupError

    settings = server_settings(database_url=database_url)
    try:
        key, report = run_loop(_offline(settings, _rotate))
    except (ExecdError, StartupError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(
        f"key {key}: {report.resealed} values sealed again, {report.plain} sealed from "
        f"plain text, {report.current} already sealed with it; {report.masked} shown "
        "values masked"
    )
    if report.failed:
        for problem in report.problems:
            typer.echo(f"error: a value could not be opened: {problem}", err=True)
        typer.echo(f"error: {report.failed} values left as they were", err=True)
        raise typer.Exit(1)


async def _rotate(runtime: Runtime) -> tuple[str, Any]:
    runtime.load_keys(create=False)
    return runtime.sealer.key_ids[0], await runtime.rotate_keys()


@secrets_app.command("new-key")
def new_secret_key() -> None:
    """Print a new random key, for EXECD_SECRET_KEY."""
    from execd.engine.sealing import new_key

    typer.echo(new_key())


def issue_directly(
    name: str,
    role: str,
    tenant: str,
    project: str,
    create: bool,
    database_url: str | None,
    *,
    scope: str | None = None,
    expires_in: int | None = None,
    expires: str | None = None,
) -> NewToken:
    """`execd token create --direct`: a token written straight into the database, for
    the first one of a project or when no admin token is at hand (a system admin's
    too, with --scope system). Answered as the server answers POST /api/v1/tokens."""
    from dataclasses import asdict
    from datetime import datetime

    from execd.client import NewToken
    from execd.domain import times
    from execd.domain.errors import ExecdError

    settings = server_settings(database_url=database_url)
    try:
        moment = datetime.fromisoformat(expires) if expires else None
    except ValueError:
        typer.echo(f"error: --expires {expires!r} is not an ISO 8601 time", err=True)
        raise typer.Exit(2) from None
    try:
        wanted = {"scope": scope, "expires_in": expires_in, "expires": times.seconds(moment)}
        record, token = run_loop(_issue(settings, tenant, project, name, role, create, wanted))
    except ExecdError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None
    fields = {k: times.iso(v) if k in TOKEN_TIMES else v for k, v in asdict(record).items()}
    return NewToken.model_validate({**fields, "token": token})


async def _issue(
    settings: Settings,
    tenant: str,
    project: str,
    name: str,
    role: str,
    create: bool,
    wanted: dict[str, Any],
) -> Any:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return await _offline(
        settings,
        lambda runtime: runtime.accounts.issue_directly(
            tenant=tenant, project=project, name=name, role=role, create=create, **wanted
        ),
    )
