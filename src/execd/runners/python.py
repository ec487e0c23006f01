"""Python functions (`module:function`), each call in a fresh subprocess."""

from __future__ import annotations

import os
import sys

import orjson

from execd.domain.executions import Outcome
from execd.runners.base import RunContext
from execd.runners.outcomes import process_outcome
from execd.runners.process import run_process


class PythonRunner:
    async def run(self, ctx: RunContext) -> Outcome:
        execution = ctx.execution
        params = execution.parameters
        if execution.entry_point:
            target, kwargs, extra_path = execution.entry_point, params, []
        else:  # core.python
            target = params["callable"]
            kwargs = params.get("kwargs", {})
            extra_path = [str(p) for p in params.get("pythonpath", [])]
        env = {
            "EXECD_KWARGS": orjson.dumps(kwargs).decode(),
            "EXECD_PYTHONPATH": os.pathsep.join([*extra_path, *ctx.python_path]),
        }
        argv = [sys.executable, "-m", "execd.runners.python_child", target]
        return process_outcome(await run_process(ctx, argv, env))

    async def close(self) -> None:
        return None
