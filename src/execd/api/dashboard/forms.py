"""Forms generated from an action's parameter schema, and the values read back.

Each top-level property becomes a field by its type: text, a number, a checkbox, a
choice (an enum), or JSON for arrays and objects. What the browser sends is turned back
into those types; the schema itself is checked by the service, as for the API, and its
error is put next to the field it names."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from execd.domain.actions import secret_names

MAX_FIELDS = 100


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # text, number, integer, boolean, choice, json, secret
    required: bool
    description: str
    default: Any
    choices: list[Any]

    @property
    def id(self) -> str:
        return "p-" + re.sub(r"[^A-Za-z0-9_-]", "_", self.name)

    def shown(self, values: dict[str, str] | None) -> str:
        """The field's text: what was sent, else the default as the form shows it."""
        if values is not None and self.name in values:
            return values[self.name]
        if self.default is None or self.kind == "secret":
            return ""
        if self.kind == "json":
            return json.dumps(self.default)
        return str(self.default).lower() if isinstance(self.default, bool) else str(self.default)


def fields(schema: dict[str, Any]) -> list[Field]:
    properties = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    secrets = secret_names(schema)
    found = []
    for name, spec in list(properties.items())[:MAX_FIELDS]:
        spec = spec if isinstance(spec, dict) else {}
        kind = _kind(spec)
        if name in secrets:
            kind = "secret"
        found.append(
            Field(
                name=name,
                kind=kind,
                required=name in required,
                description=str(spec.get("description") or ""),
                default=spec.get("default"),
                choices=list(spec.get("enum") or []),
            )
        )
    return found


def _kind(spec: dict[str, Any]) -> str:
    if spec.get("enum"):
        return "choice"
    kind = spec.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    return {
        "string": "text",
        "number": "number",
        "integer": "integer",
        "boolean": "boolean",
    }.get(str(kind), "json")


def values(found: list[Field], form: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The parameters the form holds, and the fields it could not read (name: why).
    An empty field is left out, so that the schema's default applies."""
    parameters: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for field in found:
        if field.kind == "boolean":
            parameters[field.name] = form.get(field.name) == "true"
            continue
        text = form.get(field.name, "")
        if text == "":
            continue
        try:
            parameters[field.name] = _read(field, text)
        except ValueError as exc:
            problems[field.name] = str(exc)
    return parameters, problems


def _read(field: Field, text: str) -> Any:
    if field.kind == "integer":
        try:
            return int(text)
        except ValueError:
            raise ValueError("a whole number is expected") from None
    if field.kind == "number":
        try:
            number = float(text)
        except ValueError:
            raise ValueError("a number is expected") from None
        return int(number) if number.is_integer() else number
    if field.kind == "json":
        try:
            return json.loads(text)
        except ValueError:
            raise ValueError('JSON is expected, such as [1, 2] or {"key": "value"}') from None
    if field.kind == "choice":
        for choice in field.choices:
            if text == (json.dumps(choice) if not isinstance(choice, str) else choice):
                return choice
        raise ValueError("one of the choices is expected")
    return text


_FIELD_OF = (
    re.compile(r"^Invalid parameter '([^'.]+)"),
    re.compile(r"'([^']+)' is a required property"),
)


def field_of(message: str, names: set[str]) -> str | None:
    """The field an error of the parameter check is about, if it names one."""
    for pattern in _FIELD_OF:
        found = pattern.search(message)
        if found and found.group(1) in names:
            return found.group(1)
    return None
