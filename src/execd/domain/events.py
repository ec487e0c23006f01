"""The event log as every layer reads it: an event, and a place in the log."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from execd.domain.executions import MAX_ID

_DIGITS = re.compile(r"[0-9]{1,19}")


@dataclass(frozen=True, order=True)
class Position:
    """A place in the log: after the event (txid, id). Opaque to clients as text."""

    txid: int
    id: int

    def __str__(self) -> str:
        return f"{self.txid}-{self.id}"

    @classmethod
    def parse(cls, text: str) -> Position:
        txid, sep, event_id = text.strip().partition("-")
        if not sep or not _DIGITS.fullmatch(txid) or not _DIGITS.fullmatch(event_id):
            raise ValueError(f"not an event position: {text!r}")
        position = cls(int(txid), int(event_id))
        if position.txid > MAX_ID or position.id > MAX_ID:
            raise ValueError(f"not an event position: {text!r}")
        return position


@dataclass(frozen=True)
class LogEvent:
    position: Position
    execution_id: int
    tenant_id: str
    project_id: str
    action_ref: str | None  # None once the execution is deleted
    kind: str  # created | status | progress
    from_status: str | None
    to_status: str
    at: float
    attempt: int
    message: str | None
    data: Any
