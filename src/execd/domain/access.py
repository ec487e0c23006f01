"""Who is calling, and what their role and scope let them do."""

from __future__ import annotations

from dataclasses import dataclass

from execd.domain.errors import Forbidden, InvalidInput

# Each role includes everything the roles before it may do.
ROLES = ("viewer", "operator", "admin")
# How far a token reaches: its project (viewers, operators), its tenant (an admin) or
# every tenant (a system admin: the startup token and the tokens it makes so).
SCOPES = ("project", "tenant", "system")
MAX_TOKEN_LIFETIME = 10 * 365 * 86400
# The roles a request without credentials may be given (EXECD_ANONYMOUS_ROLE), and the
# name it acts under (in `submitted_by`, the audit log, `GET /api/v1/me`).
ANONYMOUS_ROLES = ("viewer", "operator")
ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Principal:
    token_id: int | None  # None: no token was sent (anonymous access)
    tenant_id: str
    project_id: str
    role: str
    name: str
    scope: str = "project"

    def can(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)

    @property
    def anonymous(self) -> bool:
        return self.token_id is None

    @property
    def system(self) -> bool:
        return self.scope == "system"

    def manages(self, tenant_id: str) -> bool:
        """Whether this token may administer the tenant (its projects and tokens)."""
        return self.can("admin") and (self.system or tenant_id == self.tenant_id)

    @property
    def label(self) -> str:
        """How the caller appears in `submitted_by`."""
        return self.name


def require(caller: Principal, role: str) -> None:
    """Refuse (403) a caller whose role is below `role`."""
    if not caller.can(role):
        raise Forbidden(f"This needs the {role} role; the token has {caller.role}")


def require_system(caller: Principal) -> None:
    """Refuse (403) a caller that is not a system admin."""
    require(caller, "admin")
    if not caller.system:
        raise Forbidden("This needs a system admin token; this one administers its tenant only")


def token_scope(role: str, scope: str | None) -> str:
    """The scope of a new token: admins reach their tenant unless `system` is asked
    for; viewers and operators reach their project only."""
    if role not in ROLES:
        raise InvalidInput(f"Invalid role {role!r}; expected one of {', '.join(ROLES)}")
    if scope is None:
        return "tenant" if role == "admin" else "project"
    if scope not in SCOPES:
        raise InvalidInput(f"Invalid scope {scope!r}; expected one of {', '.join(SCOPES)}")
    if (role == "admin") != (scope != "project"):
        raise InvalidInput(
            f"A {role} token has the scope {'tenant or system' if role == 'admin' else 'project'}"
        )
    return scope


def check_expiry(expires_in: float | None, expires: float | None, now: float) -> None:
    """A new token lives `expires_in` seconds or until `expires` (seconds since the
    epoch), at most ten years; with neither, until it is revoked."""
    if expires_in is not None and expires is not None:
        raise InvalidInput("Give expires_in or expires, not both")
    if expires_in is not None and not 1 <= expires_in <= MAX_TOKEN_LIFETIME:
        raise InvalidInput(f"expires_in is 1 to {MAX_TOKEN_LIFETIME} seconds (ten years)")
    if expires is not None and not now < expires <= now + MAX_TOKEN_LIFETIME:
        raise InvalidInput("expires must be a time in the future, at most ten years away")
