"""A retention policy: how long ended executions are kept."""

from __future__ import annotations

from dataclasses import dataclass, field

from execd.domain.states import Status


@dataclass(frozen=True)
class Policy:
    """Keep ended executions `days[status]` days after they ended (a status missing
    from `days` is kept forever), and always the newest `keep_per_action` of each
    action in each project, whatever their age."""

    days: dict[Status, float] = field(default_factory=dict)
    keep_per_action: int = 0
    # Days to keep audit log entries (None: forever).
    audit_days: float | None = None

    @property
    def active(self) -> bool:
        return bool(self.days) or self.audit_days is not None
