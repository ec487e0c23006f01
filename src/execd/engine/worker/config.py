"""What a worker is told: its name, how much it runs at once, its leases and timings,
the limits of each run and where runs work."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class WorkerConfig:
    name: str
    capacity: int
    labels: list[str]
    lease_seconds: float
    heartbeat_seconds: float
    poll_seconds: float
    kill_grace_seconds: float
    shutdown_grace_seconds: float
    output_limit_bytes: int
    result_limit_bytes: int
    work_root: Path
    keep_work_dirs: bool = False
    python_path: list[str] = field(default_factory=list)
    action_env: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)
