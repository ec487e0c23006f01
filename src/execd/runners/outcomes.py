"""From what a process did to how its execution ended."""

from __future__ import annotations

import signal

from execd.domain.executions import Outcome
from execd.domain.sandbox import describe_size
from execd.domain.states import Status
from execd.runners.process import ProcessResult

# What programs print when an rlimit refuses them memory or a new process: how a run
# that died of a limit by itself (rather than stopped by the watcher) is recognised.
_NO_MEMORY = (
    "MemoryError",
    "Cannot allocate memory",
    "out of memory",
    "memory exhausted",
    "bad_alloc",
    "failed to allocate",
)
_NO_PROCESS = ("Cannot fork", "fork: retry", "fork: Resource temporarily unavailable")


def describe_exit(return_code: int) -> str:
    if return_code < 0:
        try:
            name = signal.Signals(-return_code).name
        except ValueError:
            name = f"signal {-return_code}"
        return f"killed by {name}"
    return f"exit code {return_code}"


def limit_reached(run: ProcessResult) -> str | None:
    """Which of the action's limits ended the run, if one did."""
    if run.limit is not None:
        return run.limit
    limits, said = run.limits, run.stderr_tail
    # A shell that could not fork says so, and may still exit 0: the limit was hit.
    if limits.processes and any(marker in said for marker in _NO_PROCESS):
        return f"process limit reached: {limits.processes} processes and threads"
    if run.return_code == 0:
        return None
    if run.return_code == -signal.SIGXCPU and limits.cpu_seconds:
        return f"CPU time limit reached: {limits.cpu_seconds:g} s of CPU time"
    if limits.memory_bytes and any(marker in said for marker in _NO_MEMORY):
        return f"memory limit reached: more than {describe_size(limits.memory_bytes)} refused"
    return None


def process_outcome(run: ProcessResult) -> Outcome:
    limit = limit_reached(run)
    ok = run.return_code == 0 and limit is None
    if run.has_result:
        result = run.explicit_result
    else:
        result = {
            "return_code": run.return_code,
            "stdout": run.stdout_tail,
            "stderr": run.stderr_tail,
        }
    error = None
    if limit is not None:
        error = limit
    elif not ok:
        error = describe_exit(run.return_code)
        if isinstance(result, dict) and isinstance(result.get("error"), str):
            error = f"{error}: {result['error']}"
        elif lines := run.stderr_tail.strip().splitlines():
            error = f"{error}: {lines[-1][:500]}"
    return Outcome(
        status=Status.COMPLETED if ok else Status.FAILED,
        result=result,
        error=error,
        exit_code=run.return_code,
        usage=run.usage,
        progress=dict(run.control.progress) or None,
    )
