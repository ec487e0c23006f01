"""Worker nodes as every layer sees them: their states, and what the registry knows
of one (store/workers.py keeps them; the service layer hides the machine from
tenants)."""

from __future__ import annotations

from dataclasses import dataclass, field

ACTIVE, DRAINING, OFFLINE = "active", "draining", "offline"


@dataclass(frozen=True)
class WorkerNode:
    id: int
    name: str
    host: str | None  # None where the caller may not see the machine (service layer)
    pid: int | None
    labels: list[str]
    capacity: int
    active: int
    cpu_percent: float | None
    memory_percent: float | None
    memory_bytes: int | None
    state: str
    version: str | None
    started: float
    last_heartbeat: float
    devices: list[str] = field(default_factory=list)
    cpu_count: int | None = None
    memory_total: int | None = None
    sandbox: str | None = None  # how it runs actions (runners/sandbox.py); None: unknown
