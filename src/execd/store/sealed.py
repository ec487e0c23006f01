"""The rows that hold secret values, read and rewritten in batches (for `execd secrets
rotate`) and sampled (for the checks at start). What to change in a row is decided by
the caller (engine/sealing.py); this module only walks the tables."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, Connection, FromClause, Table, and_, select, update

from execd.store.database import Database
from execd.store.schema import actions, enforcements, notifications, rules, triggers
from execd.store.schema import executions as ex

# A row's columns -> the columns to write (nothing: leave it as it is).
Fix = Callable[[dict[str, Any]], dict[str, Any]]
BATCH = 500
SAMPLE = 200


class SealedStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def rewrite_executions(self, fix: Fix) -> int:
        columns = [ex.c.parameters, ex.c.secrets, ex.c.plan, ex.c.job]
        return await self._rewrite(ex, columns, ex, None, fix)

    async def rewrite_triggers(self, fix: Fix) -> int:
        return await self._rewrite(
            triggers, [triggers.c.secret], triggers, triggers.c.secret.is_not(None), fix
        )

    async def rewrite_notifications(self, fix: Fix) -> int:
        where = notifications.c.channel == "webhook"
        return await self._rewrite(
            notifications, [notifications.c.target], notifications, where, fix
        )

    async def rewrite_enforcements(self, fix: Fix) -> int:
        """Each enforcement with the parameter template of its rule (`rule_parameters`,
        None once the rule is gone), the rule's action ref and that action's parameter
        schema (`action_parameters`, None for a built-in or deleted action)."""
        joined = enforcements.outerjoin(rules, rules.c.id == enforcements.c.rule_id).outerjoin(
            actions,
            and_(actions.c.project_id == rules.c.project_id, actions.c.ref == rules.c.action_ref),
        )
        columns = [
            enforcements.c.payload,
            rules.c.parameters.label("rule_parameters"),
            rules.c.action_ref,
            actions.c.parameters.label("action_parameters"),
        ]
        return await self._rewrite(enforcements, columns, joined, None, fix)

    async def _rewrite(
        self,
        table: Table,
        columns: list[Any],
        source: FromClause,
        where: ColumnElement[bool] | None,
        fix: Fix,
    ) -> int:
        """Walk `table` in id order, a batch per transaction (rows locked), writing what
        `fix` says; the number of rows changed."""
        changed, after = 0, 0
        while True:
            query = (
                select(table.c.id, *columns)
                .select_from(source)
                .where(table.c.id > after)
                .order_by(table.c.id)
                .limit(BATCH)
                .with_for_update(of=table)
            )
            if where is not None:
                query = query.where(where)

            def batch(conn: Connection, query: Any = query) -> tuple[int | None, int]:
                if conn.dialect.name == "sqlite":  # what is replaced is overwritten too
                    conn.exec_driver_sql("PRAGMA secure_delete = ON")
                rows = conn.execute(query).mappings().all()
                written = 0
                for row in rows:
                    values = fix(dict(row))
                    if values:
                        conn.execute(update(table).where(table.c.id == row["id"]).values(values))
                        written += 1
                return (rows[-1]["id"] if rows else None), written

            last, written = await self.db.write(batch)
            changed += written
            if last is None:
                return changed
            after = last

    async def checkpoint(self) -> None:
        """SQLite: move what the WAL holds into the database file and empty the WAL, so
        the copies of rewritten rows it kept go (fully only while no other process
        reads)."""
        if self.db.backend != "sqlite" or not self.db.url.database:
            return
        path = self.db.url.database

        def checkpoint() -> None:
            with contextlib.closing(sqlite3.connect(path)) as conn:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

        await asyncio.to_thread(checkpoint)

    async def sample(self) -> tuple[list[dict[str, Any]], list[Any]]:
        """The newest executions (parameters, secret names, plan) and the stored secret
        of triggers that have one, up to SAMPLE of each."""
        recent = select(ex.c.parameters, ex.c.secrets, ex.c.plan).order_by(ex.c.id.desc())
        keyed = select(triggers.c.secret).where(triggers.c.secret.is_not(None))

        def read(conn: Connection) -> tuple[list[dict[str, Any]], list[Any]]:
            rows = [dict(r) for r in conn.execute(recent.limit(SAMPLE)).mappings()]
            return rows, list(conn.execute(keyed.limit(SAMPLE)).scalars())

        return await self.db.read(read)
