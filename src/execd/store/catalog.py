"""User-defined actions, per project. The built-in core pack is not stored."""

from __future__ import annotations

import uuid as uuidlib
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from execd.domain.actions import Action, ActionSpec
from execd.errors import Conflict
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
    }


class Catalog:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self, tenant_id: str, project_id: str, spec: ActionSpec, created_by: str | None
    ) -> Action:
        async with self.db.transaction() as conn:
            now = await now_of(conn)
            values = {
                **_spec_values(spec),
                "uuid": str(uuidlib.uuid4()),
                "tenant_id": tenant_id,
                "project_id": project_id,
                "created": now,
                "updated": now,
                "created_by": created_by,
            }
            try:
                row = (
                    (await conn.execute(insert(actions).values(values).returning(*actions.c)))
                    .mappings()
                    .one()
                )
            except IntegrityError:
                raise Conflict(f"Action {spec.ref} already exists", ref=spec.ref) from None
        return to_action(row)

    async def update(self, project_id: str, action_id: int, spec: ActionSpec) -> Action | None:
        async with self.db.transaction() as conn:
            now = await now_of(conn)
            try:
                row = (
                    (
                        await conn.execute(
                            update(actions)
                            .where(actions.c.id == action_id, actions.c.project_id == project_id)
                            .values(**_spec_values(spec), updated=now)
                            .returning(*actions.c)
                        )
                    )
                    .mappings()
                    .first()
                )
            except IntegrityError:
                raise Conflict(f"Action {spec.ref} already exists", ref=spec.ref) from None
        return to_action(row) if row else None

    async def set_enabled(self, project_id: str, action_id: int, enabled: bool) -> Action | None:
        async with self.db.transaction() as conn:
            now = await now_of(conn)
            row = (
                (
                    await conn.execute(
                        update(actions)
                        .where(actions.c.id == action_id, actions.c.project_id == project_id)
                        .values(enabled=enabled, updated=now)
                        .returning(*actions.c)
                    )
                )
                .mappings()
                .first()
            )
        return to_action(row) if row else None

    async def delete(self, project_id: str, action_id: int) -> bool:
        async with self.db.transaction() as conn:
            result = await conn.execute(
                delete(actions).where(actions.c.id == action_id, actions.c.project_id == project_id)
            )
        return bool(result.rowcount)

    async def by_ref(self, project_id: str, ref: str) -> Action | None:
        return await self._one(actions.c.project_id == project_id, actions.c.ref == ref)

    async def by_uuid(self, project_id: str, action_uuid: str) -> Action | None:
        return await self._one(actions.c.project_id == project_id, actions.c.uuid == action_uuid)

    async def _one(self, *where: ColumnElement[bool]) -> Action | None:
        async with self.db.snapshot() as conn:
            row = (await conn.execute(select(actions).where(*where))).mappings().first()
        return to_action(row) if row else None

    async def list(self, project_id: str, pack: str | None = None) -> list[Action]:
        query = select(actions).where(actions.c.project_id == project_id)
        if pack is not None:
            query = query.where(actions.c.pack == pack)
        async with self.db.snapshot() as conn:
            rows = await conn.execute(query.order_by(actions.c.ref))
            return [to_action(r) for r in rows.mappings()]

    async def packs(self, project_id: str) -> dict[str, int]:
        async with self.db.snapshot() as conn:
            rows = await conn.execute(
                select(actions.c.pack, func.count())
                .where(actions.c.project_id == project_id)
                .group_by(actions.c.pack)
            )
            return {pack: int(n) for pack, n in rows}
