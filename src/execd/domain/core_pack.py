"""The built-in `core` pack, available in every project."""

from __future__ import annotations

import uuid

from execd.domain.actions import Action, RetryPolicy

# Stable identifiers, the same in every installation, so that the tenant dialects
# (which address actions by GUID) can reach the built-ins too.
_NAMESPACE = uuid.UUID("7f1d5c1e-6b0a-4f43-9a55-2b1c3b0e9d11")

# core.shell's parameters: the script, and variables added to its environment.
SHELL_SCRIPT = "cmd"
SHELL_ENV = "env"


def runs_script_parameter(runner: str, entry_point: str) -> bool:
    """A shell action without an entry point (core.shell) runs its SHELL_SCRIPT."""
    return runner == "shell" and not entry_point


def _builtin(ref: str, runner: str, entry_point: str, description: str, **props: object) -> Action:
    required = [k for k, v in props.items() if isinstance(v, dict) and v.pop("required", False)]
    schema = {"type": "object", "properties": props, "required": required}
    return Action(
        ref=ref,
        runner=runner,
        entry_point=entry_point,
        parameters=schema,
        retry=RetryPolicy(),
        description=description,
        uuid=str(uuid.uuid5(_NAMESPACE, ref)),
    )


def _core() -> dict[str, Action]:
    actions = [
        _builtin("core.noop", "local", "noop", "Does nothing and completes."),
        _builtin(
            "core.echo",
            "local",
            "echo",
            "Returns its message as the result.",
            message={"type": "string", "default": ""},
        ),
        _builtin(
            "core.sleep",
            "command",
            '["sleep", "{seconds}"]',
            "Sleeps for the given number of seconds (a real `sleep` process).",
            seconds={"type": "number", "minimum": 0, "required": True},
        ),
        _builtin(
            "core.shell",
            "shell",
            "",
            "Runs `cmd` with /bin/sh. Values reach the script only as positional "
            "arguments (`args` -> $1, $2, ...) and environment variables (`env`); a "
            "template's placeholder in `cmd` becomes a quoted reference to a variable "
            "added to `env`.",
            cmd={"type": "string", "minLength": 1, "required": True},
            args={"type": "array", "items": {"type": "string"}, "default": []},
            env={"type": "object", "additionalProperties": {"type": "string"}, "default": {}},
        ),
        _builtin(
            "core.python",
            "python",
            "",
            "Calls `callable` ('module:function') in a fresh Python subprocess with `kwargs`.",
            callable={"type": "string", "pattern": "^[\\w.]+:[\\w.]+$", "required": True},
            kwargs={"type": "object", "default": {}},
            pythonpath={"type": "array", "items": {"type": "string"}, "default": []},
        ),
        _builtin(
            "core.http",
            "http",
            "",
            "Sends an HTTP request; fails on a 4xx/5xx answer.",
            url={"type": "string", "minLength": 1, "required": True},
            method={"type": "string", "default": "GET"},
            headers={"type": "object", "additionalProperties": {"type": "string"}, "default": {}},
            params={"type": "object", "default": {}},
            json={},
            body={"type": "string"},
            timeout={"type": "number", "exclusiveMinimum": 0, "default": 30},
        ),
    ]
    return {a.ref: a for a in actions}


CORE_ACTIONS: dict[str, Action] = _core()
CORE_BY_UUID: dict[str, Action] = {a.uuid: a for a in CORE_ACTIONS.values()}
