"""From what a process did to how its execution ended."""

from __future__ import annotations

import signal

from execd.domain.executions import Outcome
from execd.domain.states import Status
from execd.runners.process import ProcessResult


def describe_exit(return_code: int) -> str:
    if return_code < 0:
        try:
            name = signal.Signals(-return_code).name
        except ValueError:
            name = f"signal {-return_code}"
        return f"killed by {name}"
    return f"exit code {return_code}"


def process_outcome(run: ProcessResult) -> Outcome:
    ok = run.return_code == 0
    if run.has_result:
        result = run.explicit_result
    else:
        result = {
            "return_code": run.return_code,
            "stdout": run.stdout_tail,
            "stderr": run.stderr_tail,
        }
    error = None
    if not ok:
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
