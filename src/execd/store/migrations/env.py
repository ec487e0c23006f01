"""Alembic environment: runs on the sync driver of whichever backend the URL names."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool, text

from execd.store.schema import metadata

# Any constant works; it only has to be the same for every execd process.
_MIGRATION_LOCK = 0x65786563


def run_migrations_online() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            # Several API nodes may start at once: one migrates, the others wait.
            connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK})
            connection.commit()
        try:
            context.configure(
                connection=connection,
                target_metadata=metadata,
                render_as_batch=connection.dialect.name == "sqlite",
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
        finally:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK})
                connection.commit()
    engine.dispose()


run_migrations_online()
