"""Shell scripts and argv commands.

Parameters never become part of a shell string:
- `shell` runs the entry point (or core.shell's `cmd`) with /bin/sh -c; parameters
  arrive as environment variables PARAM_<NAME> (JSON for non-strings), and core.shell's
  `args` as positional parameters $1, $2, ...
- `command` runs an argv list (the entry point, a JSON array) without any shell;
  an element that is exactly "{name}" is replaced by that parameter, and "{name}"
  inside a longer element by its text. In the script of a shell the argv starts
  (`["sh", "-c", "echo {name}"]`), "{name}" becomes a quoted "$PARAM_<NAME>" instead
  (and `${name}` stays the shell's own). A placeholder where its value could be read as
  code (`domain/shell.py`: the program's name, an interpreter's argument, single quotes
  in the script...) fails the run.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from execd.domain import shell
from execd.domain.core_pack import SHELL_ENV, SHELL_SCRIPT, runs_script_parameter
from execd.domain.executions import Outcome
from execd.domain.states import Status
from execd.runners.base import RunContext
from execd.runners.outcomes import process_outcome
from execd.runners.process import run_process

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SCRIPT_PLACEHOLDER = re.compile(r"(?<!\$)\{([A-Za-z_][A-Za-z0-9_]*)\}")


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def variable(name: str) -> str:
    return f"PARAM_{name.upper()}"


def parameter_env(parameters: dict[str, Any]) -> dict[str, str]:
    env = {variable(name): as_text(value) for name, value in parameters.items()}
    env["EXECD_PARAMETERS"] = orjson.dumps(parameters).decode()
    return env


class ShellRunner:
    async def run(self, ctx: RunContext) -> Outcome:
        execution = ctx.execution
        params = execution.parameters
        if runs_script_parameter(execution.runner, execution.entry_point):  # core.shell
            script = params[SHELL_SCRIPT]
            args = [str(a) for a in params.get("args", [])]
            env = {str(k): str(v) for k, v in params.get(SHELL_ENV, {}).items()}
        else:
            script, args, env = execution.entry_point, [], parameter_env(params)
        argv = ["/bin/sh", "-c", script, execution.action_ref, *args]
        return process_outcome(await run_process(ctx, argv, env))

    async def close(self) -> None:
        return None


class MissingParameter(ValueError):
    pass


def expand_argv(template: list[str], parameters: dict[str, Any]) -> list[str]:
    """The argv to run; raises MissingParameter for a placeholder naming a parameter
    that has no value, and ShellError for one where its value could be read as code."""

    def name(match: re.Match[str]) -> str:
        if match.group(1) not in parameters:
            raise MissingParameter(f"{match.group()} names no parameter of this execution")
        return match.group(1)

    script = shell.argv_script(template, _PLACEHOLDER)
    return [
        shell.substitute(element, _SCRIPT_PLACEHOLDER, lambda m: variable(name(m)))
        if index == script
        else _PLACEHOLDER.sub(lambda m: as_text(parameters[name(m)]), element)
        for index, element in enumerate(template)
    ]


class CommandRunner:
    async def run(self, ctx: RunContext) -> Outcome:
        execution = ctx.execution
        try:
            argv = expand_argv(orjson.loads(execution.entry_point), execution.parameters)
        except (shell.ShellError, MissingParameter) as exc:
            return Outcome(Status.FAILED, error=f"entry_point: {exc}")
        return process_outcome(await run_process(ctx, argv, parameter_env(execution.parameters)))

    async def close(self) -> None:
        return None
