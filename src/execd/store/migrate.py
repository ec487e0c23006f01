"""Apply the Alembic migrations (the same ones on SQLite and PostgreSQL)."""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection

from execd.store.database import sync_url

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option(
        "sqlalchemy.url", sync_url(url).render_as_string(hide_password=False).replace("%", "%%")
    )
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


@functools.cache
def current_head() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def version(conn: Connection) -> str | None:
    """The schema version a database is at (None: not migrated at all)."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


def found_version(url: str) -> str | None:
    """The schema version a database is at, None when it has none (read only: nothing
    is made, not even an empty SQLite file)."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine

    target = sync_url(url)
    sqlite = target.get_backend_name() == "sqlite"
    if sqlite and not (target.database and Path(target.database).is_file()):
        return None
    engine = create_engine(target)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def is_current(url: str) -> bool:
    """Whether the database is at this version's schema (read only)."""
    return found_version(url) == current_head()
