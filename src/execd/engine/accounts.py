"""Authentication and the administration of tenants, projects and tokens."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass, replace
from pathlib import Path

from execd.data_dir import made_once
from execd.domain.access import (
    ANONYMOUS,
    ANONYMOUS_ROLES,
    Principal,
    check_expiry,
    require,
    require_system,
    token_scope,
)
from execd.domain.accounts import Project, Tenant, TokenRecord
from execd.domain.errors import Conflict, InvalidInput, NotFound, Unauthorized
from execd.domain.executions import MAX_ID
from execd.store.accounts import Accounts

DEFAULT_TENANT = "default"
DEFAULT_PROJECT = "default"
ADMIN_TOKEN_NAME = "admin"
TOKEN_PREFIX = "execd_"
# A token's last use is written at most this often (seconds), by any number of nodes.
LAST_USED_EVERY = 60.0
MISSING = "Missing Authorization header (expected 'Bearer <token>')"


@dataclass(frozen=True)
class Session:
    """A dashboard sign-in. `caller` acts in the project the session shows (an admin's
    choice among the projects it manages); `token` is the token's own principal."""

    caller: Principal
    token: Principal
    csrf: str
    expires: float


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class AccountService:
    def __init__(
        self,
        accounts: Accounts,
        *,
        cache_seconds: float = 30.0,
        anonymous_role: str | None = None,
    ) -> None:
        if anonymous_role is not None and anonymous_role not in ANONYMOUS_ROLES:
            raise ValueError(f"A caller without a token cannot be {anonymous_role!r}")
        self.accounts = accounts
        self.cache_seconds = cache_seconds
        self.anonymous_role = anonymous_role
        self._anonymous: Principal | None = None
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    async def authenticate(self, authorization: str | None) -> Principal:
        """`Authorization: Bearer <token>` -> the caller. Results are cached briefly,
        so a revoked token stops working within `cache_seconds` on every node; a token
        is cached no longer than until it expires, so an expired one stops at once.
        Only a lookup that misses the cache may record the token's use, and only once
        a minute: authentication costs no write per request. No header at all (None,
        not an empty one) is the anonymous caller where anonymous access is on."""
        if authorization is None and self.anonymous_role is not None:
            return await self.anonymous()
        if not authorization:
            raise Unauthorized(MISSING)
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Malformed Authorization header (expected 'Bearer <token>')")
        digest = hash_token(token.strip())
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            principal = cached[1]
        else:
            record = await self.accounts.token_by_hash(digest)
            principal = _principal(record) if record else None
            if record is not None and _used_long_ago(record):
                await self.accounts.mark_used(record.id, LAST_USED_EVERY)
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now + _cached_for(record, self.cache_seconds), principal)
        if principal is None:
            raise Unauthorized("Invalid, expired or revoked token")
        return principal

    async def anonymous(self) -> Principal:
        """Who a request without credentials is (EXECD_ANONYMOUS_ROLE): no token, the
        configured project role, confined to the default tenant's default project as a
        token of that role would be. Looked up once (the default project never moves)."""
        if self.anonymous_role is None:
            raise Unauthorized(MISSING)
        if self._anonymous is None:
            tenant = await self.accounts.tenant_named(DEFAULT_TENANT)
            project = None
            if tenant is not None:
                project = await self.accounts.project_named(tenant.id, DEFAULT_PROJECT)
            if project is None:  # not bootstrapped yet: nobody to act as
                raise Unauthorized(MISSING)
            self._anonymous = Principal(
                token_id=None,
                tenant_id=project.tenant_id,
                project_id=project.id,
                role=self.anonymous_role,
                name=ANONYMOUS,
            )
        return self._anonymous

    async def bootstrap(self, data_dir: Path, admin_token: str | None) -> tuple[Project, str]:
        """The default tenant and project, and the admin token that reaches them."""
        tenant = await self.accounts.tenant_named(DEFAULT_TENANT)
        if tenant is None:
            tenant = await _create_or_get_tenant(self.accounts, DEFAULT_TENANT)
        project = await self.accounts.project_named(tenant.id, DEFAULT_PROJECT)
        if project is None:
            try:
                project = await self.accounts.create_project(tenant.id, DEFAULT_PROJECT)
            except Conflict:  # another node got there first
                project = await self.accounts.project_named(tenant.id, DEFAULT_PROJECT)
                assert project is not None
        token = admin_token or _stored_admin_token(data_dir)
        await self.accounts.replace_startup_token(
            tenant.id, project.id, ADMIN_TOKEN_NAME, hash_token(token)
        )
        self._cache.clear()
        return project, token

    # -- dashboard sessions --------------------------------------------------------------
    # The browser holds a random session id in an HttpOnly cookie, never the token; the
    # database holds the id's hash. A session lives until it is signed out, it expires,
    # or its token is revoked, expires or (the startup token) is replaced.

    async def sign_in(self, token: str, lifetime: float) -> str:
        """A new session for a valid token: its id (Unauthorized otherwise)."""
        principal = await self.authenticate(f"Bearer {token}")
        session_id = secrets.token_urlsafe(32)
        await self.accounts.add_session(
            hash_token(session_id),
            hash_token(token.strip()),
            principal.project_id,
            secrets.token_urlsafe(32),
            lifetime,
        )
        return session_id

    async def session(self, session_id: str | None) -> Session:
        record = await self.accounts.session(hash_token(session_id)) if session_id else None
        if record is None:
            raise Unauthorized("Sign in to continue")
        token = _principal(record.token)
        caller = token
        if record.project_id != token.project_id:
            project = await self.accounts.project(record.project_id)
            if project is not None and token.manages(project.tenant_id):
                caller = replace(token, tenant_id=project.tenant_id, project_id=project.id)
        return Session(caller, token, record.csrf, record.expires)

    async def show_project(self, session_id: str, session: Session, project_id: str) -> None:
        """Switch what a session shows to another project its token manages."""
        if project_id != session.token.project_id:
            await self._project(session.token, project_id)  # NotFound unless managed
        await self.accounts.show_project(hash_token(session_id), project_id)

    async def sign_out(self, session_id: str) -> None:
        await self.accounts.end_session(hash_token(session_id))

    # -- administration ----------------------------------------------------------------
    # A system admin reaches every tenant, a tenant admin its own: to it another
    # tenant's ids (and system tokens) answer as ids that do not exist.

    async def create_tenant(self, caller: Principal, name: str) -> Tenant:
        require_system(caller)
        return await self.accounts.create_tenant(_name(name))

    async def list_tenants(self, caller: Principal) -> list[Tenant]:
        require(caller, "admin")
        if caller.system:
            return await self.accounts.tenants()
        return [await self._tenant(caller, caller.tenant_id)]

    async def create_project(self, caller: Principal, tenant_id: str, name: str) -> Project:
        require(caller, "admin")
        tenant = await self._tenant(caller, tenant_id)
        return await self.accounts.create_project(tenant.id, _name(name))

    async def list_projects(self, caller: Principal, tenant_id: str | None) -> list[Project]:
        require(caller, "admin")
        if tenant_id is not None:
            tenant_id = (await self._tenant(caller, tenant_id)).id
        elif not caller.system:
            tenant_id = caller.tenant_id
        return await self.accounts.projects(tenant_id)

    async def create_token(
        self,
        caller: Principal,
        *,
        name: str,
        role: str,
        project_id: str | None = None,
        scope: str | None = None,
        expires_in: float | None = None,
        expires: float | None = None,
    ) -> tuple[TokenRecord, str]:
        """A new token (returned once, in clear) for the caller's project or another
        project the caller administers. Only a system admin makes system tokens."""
        require(caller, "admin")
        scope = token_scope(role, scope)
        if scope == "system":
            require_system(caller)
        check_expiry(expires_in, expires, time.time())
        project = await self._project(caller, project_id or caller.project_id)
        return await _add_token(self.accounts, project, name, role, scope, expires_in, expires)

    async def list_tokens(self, caller: Principal, project_id: str | None) -> list[TokenRecord]:
        """A project's tokens; a tenant admin does not see system tokens."""
        require(caller, "admin")
        project = await self._project(caller, project_id or caller.project_id)
        return [t for t in await self.accounts.list_tokens(project.id) if _sees(caller, t)]

    async def revoke_token(self, caller: Principal, token_id: int) -> None:
        require(caller, "admin")
        record = await self.accounts.token(token_id) if 0 < token_id <= MAX_ID else None
        if record is None or not _sees(caller, record):
            raise NotFound(f"Token {token_id} not found", token_id=token_id)
        if record.startup and record.revoked is None:
            raise Conflict(
                "The startup admin token cannot be revoked through the API: restart the "
                "server with a new EXECD_ADMIN_TOKEN to replace it",
                token_id=token_id,
            )
        if not await self.accounts.revoke_token(token_id):
            raise NotFound(f"Token {token_id} not found", token_id=token_id)
        self._cache.clear()

    async def issue_directly(
        self,
        *,
        tenant: str,
        project: str,
        name: str,
        role: str,
        create: bool = False,
        scope: str | None = None,
        expires_in: float | None = None,
        expires: float | None = None,
    ) -> tuple[TokenRecord, str]:
        """For operators with database access (`execd token create --direct`): a token for
        the named (or identified) tenant and project, creating them if asked to."""
        accounts = self.accounts
        scope = token_scope(role, scope)
        check_expiry(expires_in, expires, time.time())
        found_tenant = await accounts.tenant(tenant) or await accounts.tenant_named(tenant)
        if found_tenant is None:
            if not create:
                raise NotFound(f"No tenant {tenant!r} (use --create to create it)")
            found_tenant = await _create_or_get_tenant(accounts, tenant)
        found = await accounts.project(project)
        if found is None or found.tenant_id != found_tenant.id:
            found = await accounts.project_named(found_tenant.id, project)
        if found is None:
            if not create:
                raise NotFound(f"No project {project!r} in tenant {found_tenant.name!r}")
            found = await accounts.create_project(found_tenant.id, _name(project))
        return await _add_token(accounts, found, name, role, scope, expires_in, expires)

    async def _tenant(self, caller: Principal, tenant_id: str) -> Tenant:
        tenant = await self.accounts.tenant(tenant_id) if caller.manages(tenant_id) else None
        if tenant is None:
            raise NotFound(f"Tenant {tenant_id} not found", tenant_id=tenant_id)
        return tenant

    async def _project(self, caller: Principal, project_id: str) -> Project:
        project = await self.accounts.project(project_id)
        if project is None or not caller.manages(project.tenant_id):
            raise NotFound(f"Project {project_id} not found", project_id=project_id)
        return project


def _principal(record: TokenRecord) -> Principal:
    return Principal(
        token_id=record.id,
        tenant_id=record.tenant_id,
        project_id=record.project_id,
        role=record.role,
        name=record.name,
        scope=record.scope,
    )


def _sees(caller: Principal, token: TokenRecord) -> bool:
    return caller.manages(token.tenant_id) and (caller.system or token.scope != "system")


def _cached_for(record: TokenRecord | None, seconds: float) -> float:
    """How long a lookup may be reused: never past the token's expiry by this node's
    clock. After it the database, whose clock set `expires`, decides again."""
    if record is None or record.expires is None:
        return seconds
    return min(seconds, record.expires - time.time())


def _used_long_ago(record: TokenRecord) -> bool:
    """By this node's clock: a hint that spares the write; the database decides."""
    return record.last_used is None or record.last_used <= time.time() - LAST_USED_EVERY


def _name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise InvalidInput("A name needs 1 to 200 characters")
    return name


async def _add_token(
    accounts: Accounts,
    project: Project,
    name: str,
    role: str,
    scope: str,
    expires_in: float | None,
    expires: float | None,
) -> tuple[TokenRecord, str]:
    token = new_token()
    record = await accounts.add_token(
        project.tenant_id,
        project.id,
        _name(name),
        role,
        hash_token(token),
        scope=scope,
        expires=expires,
        lifetime=expires_in,
    )
    return record, token


async def _create_or_get_tenant(accounts: Accounts, name: str) -> Tenant:
    try:
        return await accounts.create_tenant(name)
    except Conflict:
        tenant = await accounts.tenant_named(name)
        assert tenant is not None
        return tenant


def _stored_admin_token(data_dir: Path) -> str:
    """Generated on first start and kept (mode 0600) in the data directory."""
    return made_once(data_dir / "admin-token", new_token)
