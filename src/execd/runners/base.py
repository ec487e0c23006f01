"""What a runner gets and gives back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from execd.domain.executions import Execution, Outcome
from execd.runners.paths import ExecutionPaths
from execd.runners.sandbox import Sandbox, Unsandboxed


@dataclass
class RunContext:
    execution: Execution
    paths: ExecutionPaths
    output_limit: int
    result_limit: int
    kill_grace: float
    python_path: list[str] = field(default_factory=list)
    # The part of the service's environment the action's process sees.
    inherited_env: dict[str, str] = field(default_factory=dict)
    # Called with each change of progress/counters as the action reports it.
    on_progress: Callable[[dict[str, Any]], None] = lambda update: None
    # Called with resource usage samples of the process tree.
    on_usage: Callable[[dict[str, Any]], None] = lambda usage: None
    on_pid: Callable[[int], None] = lambda pid: None
    # Where its processes run (runners/sandbox.py).
    sandbox: Sandbox = field(default_factory=Unsandboxed)


class Runner(Protocol):
    async def run(self, ctx: RunContext) -> Outcome:
        """Run to the end. Cancelling the awaiting task must stop the run (and its
        processes) before the cancellation propagates."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class InlineRunner(Runner, Protocol):
    """A runner whose actions end at once, touch nothing outside the worker and cannot
    hang: the worker may run them inside the transaction that claims them."""

    def settle(self, execution: Execution) -> Outcome: ...
