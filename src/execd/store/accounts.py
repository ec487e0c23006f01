"""Tenants, projects and API tokens (stored as SHA-256 hashes, never in clear)."""

from __future__ import annotations

import uuid as uuidlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from execd.errors import Conflict
from execd.store.clock import now_of
from execd.store.database import Database
from execd.store.schema import projects, tenants, tokens


@dataclass(frozen=True)
class Tenant:
    id: str
    name: str
    created: float


@dataclass(frozen=True)
class Project:
    id: str
    tenant_id: str
    name: str
    created: float


@dataclass(frozen=True)
class TokenRecord:
    id: int
    tenant_id: str
    project_id: str
    name: str
    role: str
    created: float
    revoked: float | None


class Accounts:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create_tenant(self, name: str, tenant_id: str | None = None) -> Tenant:
        async with self.db.transaction() as conn:
            now = await now_of(conn)
            values = {"id": tenant_id or str(uuidlib.uuid4()), "name": name, "created": now}
            try:
                await conn.execute(insert(tenants).values(values))
            except IntegrityError:
                raise Conflict(f"A tenant named {name!r} already exists") from None
        return Tenant(**values)

    async def create_project(
        self, tenant_id: str, name: str, project_id: str | None = None
    ) -> Project:
        async with self.db.transaction() as conn:
            now = await now_of(conn)
            values = {
                "id": project_id or str(uuidlib.uuid4()),
                "tenant_id": tenant_id,
                "name": name,
                "created": now,
            }
            try:
                await conn.execute(insert(projects).values(values))
            except IntegrityError:
                raise Conflict(f"Tenant {tenant_id} already has a project named {name!r}") from None
        return Project(**values)

    async def tenant(self, tenant_id: str) -> Tenant | None:
        async with self.db.snapshot() as conn:
            row = (await conn.execute(select(tenants).where(tenants.c.id == tenant_id))).first()
        return Tenant(**row._mapping) if row else None

    async def tenant_named(self, name: str) -> Tenant | None:
        async with self.db.snapshot() as conn:
            row = (await conn.execute(select(tenants).where(tenants.c.name == name))).first()
        return Tenant(**row._mapping) if row else None

    async def tenants(self) -> list[Tenant]:
        async with self.db.snapshot() as conn:
            rows = await conn.execute(select(tenants).order_by(tenants.c.created))
            return [Tenant(**r._mapping) for r in rows]

    async def project(self, project_id: str) -> Project | None:
        async with self.db.snapshot() as conn:
            row = (await conn.execute(select(projects).where(projects.c.id == project_id))).first()
        return Project(**row._mapping) if row else None

    async def project_named(self, tenant_id: str, name: str) -> Project | None:
        async with self.db.snapshot() as conn:
            row = (
                await conn.execute(
                    select(projects).where(
                        projects.c.tenant_id == tenant_id, projects.c.name == name
                    )
                )
            ).first()
        return Project(**row._mapping) if row else None

    async def projects(self, tenant_id: str | None = None) -> list[Project]:
        query = select(projects).order_by(projects.c.created)
        if tenant_id is not None:
            query = query.where(projects.c.tenant_id == tenant_id)
        async with self.db.snapshot() as conn:
            return [Project(**r._mapping) for r in await conn.execute(query)]

    async def add_token(
        self, tenant_id: str, project_id: str, name: str, role: str, token_hash: str
    ) -> TokenRecord:
        async with self.db.transaction() as conn:
            now = await now_of(conn)
            values = {
                "tenant_id": tenant_id,
                "project_id": project_id,
                "name": name,
                "role": role,
                "token_hash": token_hash,
                "created": now,
            }
            token_id = (
                await conn.execute(insert(tokens).values(values).returning(tokens.c.id))
            ).scalar_one()
        return TokenRecord(
            id=token_id,
            tenant_id=tenant_id,
            project_id=project_id,
            name=name,
            role=role,
            created=now,
            revoked=None,
        )

    async def replace_token(
        self, tenant_id: str, project_id: str, name: str, role: str, token_hash: str
    ) -> None:
        """Make `token_hash` the one live token called `name` in the project."""
        async with self.db.transaction() as conn:
            now = await now_of(conn)
            await conn.execute(
                update(tokens)
                .where(
                    tokens.c.project_id == project_id,
                    tokens.c.name == name,
                    tokens.c.token_hash != token_hash,
                    tokens.c.revoked.is_(None),
                )
                .values(revoked=now)
            )
            found = (
                await conn.execute(select(tokens.c.id).where(tokens.c.token_hash == token_hash))
            ).first()
            if found is None:
                await conn.execute(
                    insert(tokens).values(
                        tenant_id=tenant_id,
                        project_id=project_id,
                        name=name,
                        role=role,
                        token_hash=token_hash,
                        created=now,
                    )
                )
            else:
                await conn.execute(
                    update(tokens).where(tokens.c.id == found.id).values(revoked=None, role=role)
                )

    async def token_by_hash(self, token_hash: str) -> TokenRecord | None:
        async with self.db.snapshot() as conn:
            row = (
                await conn.execute(
                    select(tokens).where(
                        tokens.c.token_hash == token_hash, tokens.c.revoked.is_(None)
                    )
                )
            ).first()
        return _token(row._mapping) if row else None

    async def list_tokens(self, project_id: str) -> list[TokenRecord]:
        async with self.db.snapshot() as conn:
            rows = await conn.execute(
                select(tokens).where(tokens.c.project_id == project_id).order_by(tokens.c.id)
            )
            return [_token(r._mapping) for r in rows]

    async def revoke_token(self, project_id: str | None, token_id: int) -> bool:
        query = update(tokens).where(tokens.c.id == token_id, tokens.c.revoked.is_(None))
        if project_id is not None:
            query = query.where(tokens.c.project_id == project_id)
        async with self.db.transaction() as conn:
            now = await now_of(conn)
            result = await conn.execute(query.values(revoked=now))
            return bool(result.rowcount)


def _token(row: Any) -> TokenRecord:
    data = dict(row)
    data.pop("token_hash")
    return TokenRecord(**data)
