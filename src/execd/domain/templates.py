"""Sandboxed templating: `{{ path.to.value }}` placeholders filled from a context.

Only look-ups, never code: a placeholder names a value by a dotted path through
objects (and list positions), nothing is evaluated. Flow steps and rule parameter
templates both use it. A shell script (core.shell's `cmd`) is filled differently: its
placeholders become references to environment variables that carry the values, and a
placeholder where a value could be read as code is refused (`domain/shell.py`).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from execd.domain import shell
from execd.domain.actions import Action
from execd.domain.core_pack import SHELL_ENV, SHELL_SCRIPT, runs_script_parameter

_INDEX = re.compile(r"[0-9]{1,9}")  # ASCII digits only: int() reads other digits too
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_-]+)*)\s*\}\}")


class TemplateError(ValueError):
    pass


def render(value: Any, context: dict[str, Any]) -> Any:
    """Fill the placeholders in every string of `value`. A string that is exactly one
    placeholder takes the value with its JSON type; inside longer text, the value's
    text (JSON for non-strings) is inserted."""
    if isinstance(value, str):
        whole = _PLACEHOLDER.fullmatch(value)
        if whole:
            return lookup(whole.group(1), context)
        return _PLACEHOLDER.sub(lambda m: _text(lookup(m.group(1), context)), value)
    if isinstance(value, dict):
        return {k: render(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, context) for v in value]
    return value


def render_parameters(
    template: dict[str, Any], context: dict[str, Any], action: Action | None
) -> dict[str, Any]:
    """The parameters of `action` (of a sub-flow: None) from a template. In a script
    the action runs with a shell, each placeholder becomes a quoted reference to a
    variable, named after its path (`$TEMPLATE_PAYLOAD_HOST`), added to the script's
    environment with the value's text; TemplateError names a placeholder that stands
    where its value could be read as code."""
    rendered = render(template, context)
    assert isinstance(rendered, dict)
    if action is None or not runs_script_parameter(action.runner, action.entry_point):
        return rendered
    script = template.get(SHELL_SCRIPT)
    if not isinstance(script, str) or not _PLACEHOLDER.search(script):
        return rendered
    env = rendered.get(SHELL_ENV, {})
    if not isinstance(env, dict):
        raise TemplateError(f"{SHELL_ENV} must be an object: it carries {SHELL_SCRIPT}'s values")
    variables: dict[str, str] = {}  # path -> variable

    def variable(match: re.Match[str]) -> str:
        path = match.group(1)
        if path not in variables:
            variables[path] = _variable(path, {*env, *variables.values()})
        return variables[path]

    try:
        filled = shell.substitute(script, _PLACEHOLDER, variable)
    except shell.ShellError as exc:
        raise TemplateError(f"{SHELL_SCRIPT}: {exc}") from None
    values = {name: _text(lookup(path, context)) for path, name in variables.items()}
    return {**rendered, SHELL_SCRIPT: filled, SHELL_ENV: {**env, **values}}


def _variable(path: str, taken: set[str]) -> str:
    base = "TEMPLATE_" + re.sub(r"[^A-Z0-9_]", "_", path.upper())
    name, number = base, 1
    while name in taken:
        number += 1
        name = f"{base}_{number}"
    return name


# What opens a placeholder: `{{` and a name. `{{.Names}}` (a Go template, as docker and
# kubectl take) or `{{ 7 }}` does not, and passes through as text.
_OPENING = re.compile(r"\{\{\s*[A-Za-z_]")


def check(value: Any) -> None:
    """Refuse text that opens a placeholder but is not one (a filter, an expression
    after the name, no closing braces): rendered, it would go out as literal text."""
    if isinstance(value, str):
        rest = _PLACEHOLDER.sub("", value)
        if found := _OPENING.search(rest):
            start = found.start()
            raise TemplateError(
                f"Not a placeholder: {rest[start : start + 40]!r}. A placeholder is "
                "{{ path.to.value }}: a dotted path, nothing else"
            )
    elif isinstance(value, dict):
        for item in value.values():
            check(item)
    elif isinstance(value, list):
        for item in value:
            check(item)


def parameters_used(value: Any) -> set[str]:
    """The flow parameters (top-level names) the placeholders in `value` read."""
    return {path.split(".")[1] for path in paths_used(value) if path.startswith("parameters.")}


def paths_used(value: Any) -> set[str]:
    """The dotted paths the placeholders in `value` read."""
    if isinstance(value, str):
        return set(_PLACEHOLDER.findall(value))
    if isinstance(value, dict):
        return set().union(*(paths_used(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(paths_used(v) for v in value))
    return set()


MISSING = object()


def find(path: str, context: Any) -> Any:
    """The value at a dotted path (a number picks a list item), or `MISSING`."""
    value = context
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and is_index(part) and int(part) < len(value):
            value = value[int(part)]
        else:
            return MISSING
    return value


def is_index(part: str) -> bool:
    """Whether a path part picks a list item (ASCII digits: int() reads others too)."""
    return _INDEX.fullmatch(part) is not None


def exists(path: str, context: Any) -> bool:
    return find(path, context) is not MISSING


def lookup(path: str, context: dict[str, Any]) -> Any:
    value = find(path, context)
    if value is MISSING:
        raise TemplateError(f"Unknown template value {{{{ {path} }}}}")
    return value


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return "" if value is None else orjson.dumps(value).decode()
