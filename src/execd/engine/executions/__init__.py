"""Executions, as every API dialect uses them. Dialects translate; they never talk to
the store themselves.

`ExecutionService` is what the runtime holds: one class, its use cases in the modules
of their concern, each a part standing on base.py (the store's parts, finding one
execution, storing a new one):

- submitting.py: one execution, or a batch in one transaction;
- reading.py: search, export, figures, history, output, artifacts, result packages,
  and the workers;
- control.py: cancel, retry, delete;
- analytics.py: what ended in a window, and the rollups behind it.
"""

from __future__ import annotations

from execd.engine.executions.analytics import Analytics
from execd.engine.executions.control import Control
from execd.engine.executions.reading import Reading, shown_name
from execd.engine.executions.submitting import (
    DEFAULT_OPTIONS,
    MAX_BATCH,
    MAX_IDEMPOTENCY_KEY,
    Submission,
    SubmitOptions,
    Submitting,
    submission,
)

__all__ = [
    "DEFAULT_OPTIONS",
    "MAX_BATCH",
    "MAX_IDEMPOTENCY_KEY",
    "ExecutionService",
    "Submission",
    "SubmitOptions",
    "shown_name",
    "submission",
]


class ExecutionService(Submitting, Reading, Control, Analytics):
    """Submit, read and control the executions of the caller's project."""
