"""Who is calling, and what their role lets them do."""

from __future__ import annotations

from dataclasses import dataclass

from execd.errors import Forbidden

# Each role includes everything the roles before it may do.
ROLES = ("viewer", "operator", "admin")


@dataclass(frozen=True)
class Principal:
    token_id: int
    tenant_id: str
    project_id: str
    role: str
    name: str

    def can(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)

    @property
    def label(self) -> str:
        """How the caller appears in `submitted_by`."""
        return self.name


def require(caller: Principal, role: str) -> None:
    """Refuse (403) a caller whose role is below `role`."""
    if not caller.can(role):
        raise Forbidden(f"This needs the {role} role; the token has {caller.role}")
