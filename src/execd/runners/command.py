"""Shell scripts and argv commands.

Parameters never become part of a shell string:
- `shell` runs the entry point (or core.shell's `cmd`) with /bin/sh -c; parameters
  arrive as environment variables PARAM_<NAME> (JSON for non-strings), and core.shell's
  `args` as positional parameters $1, $2, ...
- `command` runs an argv list (the entry point, a JSON array) without any shell;
  an element that is exactly "{name}" is replaced by that parameter, and "{name}"
  inside a longer element by its text.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from execd.domain.executions import Outcome
from execd.runners.base import RunContext
from execd.runners.outcomes import process_outcome
from execd.runners.process import run_process

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def parameter_env(parameters: dict[str, Any]) -> dict[str, str]:
    env = {f"PARAM_{name.upper()}": as_text(value) for name, value in parameters.items()}
    env["EXECD_PARAMETERS"] = orjson.dumps(parameters).decode()
    return env


class ShellRunner:
    async def run(self, ctx: RunContext) -> Outcome:
        execution = ctx.execution
        params = execution.parameters
        if execution.entry_point:
            script, args, env = execution.entry_point, [], parameter_env(params)
        else:  # core.shell
            script = params["cmd"]
            args = [str(a) for a in params.get("args", [])]
            env = {str(k): str(v) for k, v in params.get("env", {}).items()}
        argv = ["/bin/sh", "-c", script, execution.action_ref, *args]
        return process_outcome(await run_process(ctx, argv, env))

    async def close(self) -> None:
        return None


def expand_argv(template: list[str], parameters: dict[str, Any]) -> list[str]:
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in parameters:
            raise KeyError(name)
        return as_text(parameters[name])

    return [_PLACEHOLDER.sub(one, str(element)) for element in template]


class CommandRunner:
    async def run(self, ctx: RunContext) -> Outcome:
        execution = ctx.execution
        template = orjson.loads(execution.entry_point)
        argv = expand_argv(template, execution.parameters)
        return process_outcome(await run_process(ctx, argv, parameter_env(execution.parameters)))

    async def close(self) -> None:
        return None
