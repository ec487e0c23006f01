"""Tenants, projects and API tokens (stored as SHA-256 hashes, never in clear)."""

from __future__ import annotations

import uuid as uuidlib
from dataclasses import asdict
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from execd.domain.accounts import Project, SessionRecord, Tenant, TokenRecord
from execd.domain.errors import Conflict
from execd.store.clock import now_of
from execd.store.database import Database
from execd.store.schema import dashboard_sessions, projects, tenants, tokens


class Accounts:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create_tenant(self, name: str) -> Tenant:
        def create(conn: Connection) -> Tenant:
            tenant = Tenant(id=str(uuidlib.uuid4()), name=name, created=now_of(conn))
            try:
                conn.execute(insert(tenants).values(asdict(tenant)))
            except IntegrityError:
                raise Conflict(f"A tenant named {name!r} already exists") from None
            return tenant

        return await self.db.write(create)

    async def create_project(self, tenant_id: str, name: str) -> Project:
        def create(conn: Connection) -> Project:
            project = Project(
                id=str(uuidlib.uuid4()), tenant_id=tenant_id, name=name, created=now_of(conn)
            )
            try:
                conn.execute(insert(projects).values(asdict(project)))
            except IntegrityError:
                raise Conflict(f"Tenant {tenant_id} already has a project named {name!r}") from None
            return project

        return await self.db.write(create)

    async def tenant(self, tenant_id: str) -> Tenant | None:
        row = await self._first(select(tenants).where(tenants.c.id == tenant_id))
        return Tenant(**row) if row else None

    async def tenant_named(self, name: str) -> Tenant | None:
        row = await self._first(select(tenants).where(tenants.c.name == name))
        return Tenant(**row) if row else None

    async def tenants(self) -> list[Tenant]:
        rows = await self._all(select(tenants).order_by(tenants.c.created))
        return [Tenant(**r) for r in rows]

    async def project(self, project_id: str) -> Project | None:
        row = await self._first(select(projects).where(projects.c.id == project_id))
        return Project(**row) if row else None

    async def project_named(self, tenant_id: str, name: str) -> Project | None:
        query = select(projects).where(projects.c.tenant_id == tenant_id, projects.c.name == name)
        row = await self._first(query)
        return Project(**row) if row else None

    async def projects(self, tenant_id: str | None = None) -> list[Project]:
        query = select(projects).order_by(projects.c.created)
        if tenant_id is not None:
            query = query.where(projects.c.tenant_id == tenant_id)
        return [Project(**r) for r in await self._all(query)]

    async def add_token(
        self,
        tenant_id: str,
        project_id: str,
        name: str,
        role: str,
        token_hash: str,
        *,
        scope: str,
        expires: float | None = None,
        lifetime: float | None = None,
    ) -> TokenRecord:
        """A new token, ending at `expires` or `lifetime` seconds from now (if given)."""

        def add(conn: Connection) -> TokenRecord:
            now = now_of(conn)
            values = {
                "tenant_id": tenant_id,
                "project_id": project_id,
                "name": name,
                "role": role,
                "token_hash": token_hash,
                "created": now,
                "scope": scope,
                "expires": now + lifetime if lifetime is not None else expires,
            }
            token_id = conn.execute(
                insert(tokens).values(values).returning(tokens.c.id)
            ).scalar_one()
            return _token({**values, "id": token_id, "revoked": None})

        return await self.db.write(add)

    async def replace_startup_token(
        self, tenant_id: str, project_id: str, name: str, token_hash: str
    ) -> None:
        """Make `token_hash` the one live startup token (a system admin's)."""
        startup = {
            "tenant_id": tenant_id,
            "project_id": project_id,
            "name": name,
            "role": "admin",
            "scope": "system",
            "startup": True,
            "expires": None,
            "revoked": None,
        }

        def replace(conn: Connection) -> None:
            now = now_of(conn)
            conn.execute(
                update(tokens)
                .where(
                    tokens.c.startup.is_(True),
                    tokens.c.token_hash != token_hash,
                    tokens.c.revoked.is_(None),
                )
                .values(revoked=now)
            )
            found = conn.execute(
                select(tokens.c.id).where(tokens.c.token_hash == token_hash)
            ).first()
            if found is None:
                conn.execute(insert(tokens).values(token_hash=token_hash, created=now, **startup))
            else:
                conn.execute(update(tokens).where(tokens.c.id == found.id).values(startup))

        await self.db.write(replace)

    async def token_by_hash(self, token_hash: str) -> TokenRecord | None:
        """The live token (neither revoked nor expired) with this hash."""

        def find(conn: Connection) -> TokenRecord | None:
            expires = tokens.c.expires
            query = select(tokens).where(
                tokens.c.token_hash == token_hash,
                tokens.c.revoked.is_(None),
                expires.is_(None) | (expires > now_of(conn)),
            )
            row = conn.execute(query).mappings().first()
            return _token(dict(row)) if row else None

        return await self.db.read(find)

    async def token(self, token_id: int) -> TokenRecord | None:
        row = await self._first(select(tokens).where(tokens.c.id == token_id))
        return _token(row) if row else None

    async def list_tokens(self, project_id: str) -> list[TokenRecord]:
        query = select(tokens).where(tokens.c.project_id == project_id).order_by(tokens.c.id)
        return [_token(r) for r in await self._all(query)]

    async def revoke_token(self, token_id: int) -> bool:
        """Revoke a live token, unless it is the startup token."""
        query = update(tokens).where(
            tokens.c.id == token_id, tokens.c.revoked.is_(None), tokens.c.startup.is_(False)
        )

        def revoke(conn: Connection) -> bool:
            return bool(conn.execute(query.values(revoked=now_of(conn))).rowcount)

        return await self.db.write(revoke)

    async def mark_used(self, token_id: int, every: float) -> None:
        """Record a use, unless one was recorded in the last `every` seconds (by this
        node or another: the condition is checked by the database)."""

        def mark(conn: Connection) -> None:
            now = now_of(conn)
            last = tokens.c.last_used
            conn.execute(
                update(tokens)
                .where(tokens.c.id == token_id, last.is_(None) | (last <= now - every))
                .values(last_used=now)
            )

        # Bookkeeping: a use lost in a power cut is harmless, and this write, made while
        # a request is authenticated, must not carry that request's audit entry.
        await self.db.write(mark, durable=False)

    # -- dashboard sessions ---------------------------------------------------------------

    async def add_session(
        self, id_hash: str, token_hash: str, project_id: str, csrf: str, lifetime: float
    ) -> None:
        """A new sign-in; the expired ones of every token go at the same time."""

        def add(conn: Connection) -> None:
            now = now_of(conn)
            conn.execute(delete(dashboard_sessions).where(dashboard_sessions.c.expires <= now))
            conn.execute(
                insert(dashboard_sessions).values(
                    id_hash=id_hash,
                    token_hash=token_hash,
                    project_id=project_id,
                    csrf=csrf,
                    created=now,
                    expires=now + lifetime,
                )
            )

        await self.db.write(add)

    async def session(self, id_hash: str) -> SessionRecord | None:
        """The unexpired session with this hash, if its token is live."""

        def find(conn: Connection) -> SessionRecord | None:
            now = now_of(conn)
            s, t = dashboard_sessions, tokens
            query = (
                select(
                    t, s.c.project_id.label("shown_project"), s.c.csrf, s.c.expires.label("ends")
                )
                .join(s, s.c.token_hash == t.c.token_hash)
                .where(
                    s.c.id_hash == id_hash,
                    s.c.expires > now,
                    t.c.revoked.is_(None),
                    t.c.expires.is_(None) | (t.c.expires > now),
                )
            )
            row = conn.execute(query).mappings().first()
            if row is None:
                return None
            data = dict(row)
            shown, csrf, ends = data.pop("shown_project"), data.pop("csrf"), data.pop("ends")
            return SessionRecord(_token(data), shown, csrf, ends)

        return await self.db.read(find)

    async def show_project(self, id_hash: str, project_id: str) -> None:
        query = update(dashboard_sessions).where(dashboard_sessions.c.id_hash == id_hash)
        await self.db.write(lambda conn: conn.execute(query.values(project_id=project_id)))

    async def end_session(self, id_hash: str) -> None:
        query = delete(dashboard_sessions).where(dashboard_sessions.c.id_hash == id_hash)
        await self.db.write(lambda conn: conn.execute(query))

    async def _first(self, query: Any) -> dict[str, Any] | None:
        def first(conn: Connection) -> dict[str, Any] | None:
            row = conn.execute(query).mappings().first()
            return dict(row) if row else None

        return await self.db.read(first)

    async def _all(self, query: Any) -> list[dict[str, Any]]:
        return await self.db.read(lambda conn: [dict(r) for r in conn.execute(query).mappings()])


def _token(row: dict[str, Any]) -> TokenRecord:
    data = dict(row)
    data.pop("token_hash", None)
    return TokenRecord(**data)
