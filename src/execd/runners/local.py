"""Built-in actions that run inside the worker: no process, no directories."""

from __future__ import annotations

from execd.domain.executions import Outcome
from execd.domain.states import Status
from execd.runners.base import RunContext


class LocalRunner:
    async def run(self, ctx: RunContext) -> Outcome:
        entry = ctx.execution.entry_point
        if entry == "noop":
            return Outcome(Status.COMPLETED, result=None)
        if entry == "echo":
            message = ctx.execution.parameters.get("message", "")
            return Outcome(Status.COMPLETED, result={"message": message})
        return Outcome(Status.FAILED, error=f"unknown built-in entry point {entry!r}")

    async def close(self) -> None:
        return None
