"""Tenants, their projects, the tokens that act in them, and dashboard sign-ins: the
records every layer passes around (the store keeps them, the API shows them)."""

from __future__ import annotations

from dataclasses import dataclass


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
class SessionRecord:
    """A dashboard sign-in: its live token and the project it shows."""

    token: TokenRecord
    project_id: str
    csrf: str
    expires: float


@dataclass(frozen=True)
class TokenRecord:
    id: int
    tenant_id: str
    project_id: str
    name: str
    role: str
    created: float
    revoked: float | None
    scope: str = "project"
    startup: bool = False
    expires: float | None = None
    last_used: float | None = None
