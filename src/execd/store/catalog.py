"""User-defined actions, per project. The built-in core pack is not stored."""

from __future__ import annotations

import uuid as uuidlib
from typing import Any

from sqlalchemy import Connection, Update, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from execd.domain.actions import Action, ActionSpec
from execd.domain.errors import Conflict
from execd.store.clock import now_of
from execd.store.database import Database
from execd.store.rows import to_action
from execd.store.schema import actions


def _spec_values(spec: ActionSpec) -> dict[str, Any]:
    return {
        "ref": spec.ref,
        "pack": spec.pack,
        "runner": spec.runner,
        "entry_point": spec.entry_point,
        "parameters": spec.parameters,
        "timeout": spec.timeout,
        "retry": spec.retry.to_json(),
        "enabled": spec.enabled,
        "description": spec.description,
        "sandbox": spec.sandbox.to_json(),
    }


class Catalog:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self, tenant_id: str, project_id: str, spec: ActionSpec, created_by: str | None
    ) -> Action:
        def create(conn: Connection) -> Action:
            now = now_of(conn)
            values = {
                **_spec_values(spec),
                "uuid": str(uuidlib.uuid4()),
                "tenant_id": tenant_id,
                "project_id": project_id,
                "created": now,
                "updated": now,
                "created_by": created_by,
            }
            statement = insert(actions).values(values).returning(*actions.c)
            try:
                row = conn.execute(statement).mappings().one()
            except IntegrityError:
                raise Conflict(f"Action {spec.ref} already exists", ref=spec.ref) from None
            return to_action(row)

        return await self.db.write(create)

    async def update(self, project_id: str, action_id: int, spec: ActionSpec) -> Action | None:
        return await self._update(project_id, action_id, spec.ref, _spec_values(spec))

    async def set_enabled(self, project_id: str, action_id: int, enabled: bool) -> Action | None:
        return await self._update(project_id, action_id, None, {"enabled": enabled})

    async def _update(
        self, project_id: str, action_id: int, ref: str | None, values: dict[str, Any]
    ) -> Action | None:
        statement: Update = update(actions).where(
            actions.c.id == action_id, actions.c.project_id == project_id
        )

        def change(conn: Connection) -> Action | None:
            changed = statement.values(**values, updated=now_of(conn)).returning(*actions.c)
            try:
                row = conn.execute(changed).mappings().first()
            except IntegrityError:
                raise Conflict(f"Action {ref} already exists", ref=ref) from None
            return to_action(row) if row else None

        return await self.db.write(change)

    async def delete(self, project_id: str, action_id: int) -> bool:
        statement = delete(actions).where(
            actions.c.id == action_id, actions.c.project_id == project_id
        )
        return await self.db.write(lambda conn: bool(conn.execute(statement).rowcount))

    async def by_ref(self, project_id: str, ref: str) -> Action | None:
        return await self._one(actions.c.project_id == project_id, actions.c.ref == ref)

    async def by_uuid(self, project_id: str, action_uuid: str) -> Action | None:
        return await self._one(actions.c.project_id == project_id, actions.c.uuid == action_uuid)

    async def _one(self, *where: ColumnElement[bool]) -> Action | None:
        def one(conn: Connection) -> Action | None:
            row = conn.execute(select(actions).where(*where)).mappings().first()
            return to_action(row) if row else None

        return await self.db.read(one)

    async def uuids(self, project_id: str, ids: list[int]) -> dict[int, str]:
        if not ids:
            return {}
        query = select(actions.c.id, actions.c.uuid).where(
            actions.c.project_id == project_id, actions.c.id.in_(ids)
        )
        return await self.db.read(lambda conn: {r.id: r.uuid for r in conn.execute(query)})

    async def in_project(self, project_id: str, pack: str | None = None) -> list[Action]:
        query = select(actions).where(actions.c.project_id == project_id)
        if pack is not None:
            query = query.where(actions.c.pack == pack)
        query = query.order_by(actions.c.ref)
        return await self.db.read(
            lambda conn: [to_action(r) for r in conn.execute(query).mappings()]
        )

    async def packs(self, project_id: str) -> dict[str, int]:
        query = (
            select(actions.c.pack, func.count())
            .where(actions.c.project_id == project_id)
            .group_by(actions.c.pack)
        )
        return await self.db.read(lambda conn: {p: int(n) for p, n in conn.execute(query)})
