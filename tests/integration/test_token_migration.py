"""Migration 0006 on a database that has tokens from before scopes, on both backends."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, insert, select, text

from execd.store.database import sync_url
from execd.store.migrate import upgrade
from execd.store.schema import projects, tenants, tokens


def _empty(engine: Engine) -> None:
    if engine.dialect.name == "sqlite":
        assert engine.url.database is not None
        for suffix in ("", "-wal", "-shm"):
            Path(engine.url.database + suffix).unlink(missing_ok=True)
        return
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))


def test_the_startup_token_stays_system_and_other_admins_become_tenant_admins(
    database_url: str,
) -> None:
    engine = create_engine(sync_url(database_url))
    _empty(engine)
    upgrade(database_url, "0005")
    default, other = "00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002"
    rows = [  # id, tenant and project, name, role, revoked
        (1, default, "admin", "admin", 5.0),  # a startup token replaced at a restart
        (2, default, "admin", "admin", None),  # the startup token now
        (3, default, "ops", "admin", None),
        (4, default, "ci", "operator", None),
        (5, other, "admin", "admin", None),  # called admin, but not the default project
        (6, other, "reader", "viewer", None),
    ]
    with engine.begin() as conn:
        conn.execute(
            insert(tenants),
            [
                {"id": default, "name": "default", "created": 1.0},
                {"id": other, "name": "acme", "created": 1.0},
            ],
        )
        conn.execute(
            insert(projects),
            [
                {"id": default, "tenant_id": default, "name": "default", "created": 1.0},
                {"id": other, "tenant_id": other, "name": "default", "created": 1.0},
            ],
        )
        conn.execute(
            insert(tokens),  # the columns before 0006 only
            [
                {
                    "id": token_id,
                    "tenant_id": where,
                    "project_id": where,
                    "name": name,
                    "role": role,
                    "token_hash": f"hash-{token_id}",
                    "created": 1.0,
                    "revoked": revoked,
                }
                for token_id, where, name, role, revoked in rows
            ],
        )

    upgrade(database_url)

    with engine.connect() as conn:
        found = conn.execute(
            select(
                tokens.c.id, tokens.c.scope, tokens.c.startup, tokens.c.expires, tokens.c.last_used
            ).order_by(tokens.c.id)
        ).all()
    engine.dispose()
    assert [tuple(r) for r in found] == [
        (1, "tenant", False, None, None),
        (2, "system", True, None, None),
        (3, "tenant", False, None, None),
        (4, "project", False, None, None),
        (5, "tenant", False, None, None),
        (6, "project", False, None, None),
    ]
