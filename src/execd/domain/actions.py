"""Actions: what can be executed, with which parameters, and how failures are retried."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import jsonschema.exceptions
import referencing.exceptions

from execd.domain import schema_checks, schema_messages, schemas
from execd.domain.patterns import BUDGET, PatternError, PatternTimeout, quoted
from execd.domain.sandbox import SandboxOptions

# Runners a user may choose; "local" is reserved for the built-in core pack.
USER_RUNNERS = frozenset({"shell", "command", "python", "http"})
RUNNERS = USER_RUNNERS | {"local"}
BUILTIN_PACK = "core"
SECRET_MASK = "********"

PACK = "[A-Za-z0-9][A-Za-z0-9_-]{0,99}"
REF_PATTERN = PACK + r"\.[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}"
_REF = re.compile(REF_PATTERN)
# What a retry can be triggered by: a failed or timed-out run, or a lease lost with its worker.
RETRY_CAUSES = frozenset({"failed", "timeout", "lost"})

EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}
MAX_SECONDS = 10 * 365 * 86400.0
MAX_RETRY_DELAY = 30 * 86400.0


def split_ref(ref: str) -> tuple[str, str]:
    """`pack.name` -> (pack, name); raises ValueError on a malformed reference."""
    if not _REF.fullmatch(ref):
        raise ValueError(
            f"Invalid action reference {ref!r}: expected 'pack.name' "
            "(letters, digits, '_', '-', and dots in the name)"
        )
    pack, name = ref.split(".", 1)
    return pack, name


@dataclass(frozen=True)
class RetryPolicy:
    """How many times an execution is attempted, and when the next attempt starts.

    Attempts are shared between causes: a run lost with its worker and a failed run
    both consume one. By default only lost runs are retried (at-least-once delivery);
    failures are retried only when `retry_on` names them.
    """

    max_attempts: int = 3
    retry_on: frozenset[str] = frozenset({"lost"})
    delay: float = 1.0
    backoff: float = 2.0
    max_delay: float = 300.0

    def delay_before(self, attempt: int) -> float:
        """Delay before attempt number `attempt` (2 = the first retry)."""
        exponent = min(max(0, attempt - 2), 64)  # beyond that the cap applies anyway
        return float(min(self.max_delay, self.delay * self.backoff**exponent))

    def allows(self, cause: str, attempt: int) -> bool:
        return cause in self.retry_on and attempt < self.max_attempts

    @staticmethod
    def json_schema() -> dict[str, Any]:
        """What `from_json` takes, as a JSON Schema."""
        delay = {"type": "number", "minimum": 0, "maximum": MAX_RETRY_DELAY}
        return {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "max_attempts": {"type": "integer", "minimum": 1, "maximum": 100},
                "retry_on": {"type": "array", "items": {"enum": sorted(RETRY_CAUSES)}},
                "delay": {**delay, "description": "Seconds before the first retry"},
                "backoff": {"type": "number", "minimum": 1, "maximum": 100},
                "max_delay": {**delay, "description": "Seconds at most between attempts"},
            },
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "max_attempts": self.max_attempts,
            "retry_on": sorted(self.retry_on),
            "delay": self.delay,
            "backoff": self.backoff,
            "max_delay": self.max_delay,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> RetryPolicy:
        if not data:
            return cls()
        if not isinstance(data, dict):
            raise ValueError("retry must be an object")
        known = {"max_attempts", "retry_on", "delay", "backoff", "max_delay"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"Unknown retry fields: {', '.join(sorted(unknown))}")
        default = cls()
        retry_on = data.get("retry_on", sorted(default.retry_on))
        if not isinstance(retry_on, list) or not all(
            isinstance(cause, str) and cause in RETRY_CAUSES for cause in retry_on
        ):
            raise ValueError(f"retry.retry_on must be a list of {sorted(RETRY_CAUSES)}")
        policy = cls(
            max_attempts=_number(data, "max_attempts", default.max_attempts, int),
            retry_on=frozenset(retry_on),
            delay=_number(data, "delay", default.delay, float),
            backoff=_number(data, "backoff", default.backoff, float),
            max_delay=_number(data, "max_delay", default.max_delay, float),
        )
        if not 1 <= policy.max_attempts <= 100:
            raise ValueError("retry.max_attempts must be between 1 and 100")
        if not (0 <= policy.delay <= MAX_RETRY_DELAY and 0 <= policy.max_delay <= MAX_RETRY_DELAY):
            raise ValueError(f"retry.delay and retry.max_delay must be 0 to {MAX_RETRY_DELAY:.0f}")
        if not 1 <= policy.backoff <= 100:
            raise ValueError("retry.backoff must be between 1 and 100")
        return policy


def _number(data: dict[str, Any], key: str, default: Any, kind: type) -> Any:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"retry.{key} must be a number")
    if kind is int and value != int(value):
        raise ValueError(f"retry.{key} must be an integer")
    return kind(value)


@dataclass(frozen=True)
class ActionSpec:
    """What a user defines: everything needed to run the action."""

    ref: str
    runner: str
    entry_point: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: dict(EMPTY_SCHEMA))
    timeout: float | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    enabled: bool = True
    description: str = ""
    # Network or not, and limits of its processes (shell, command and python runners).
    sandbox: SandboxOptions = field(default_factory=SandboxOptions)

    @property
    def pack(self) -> str:
        return split_ref(self.ref)[0]

    @property
    def name(self) -> str:
        return split_ref(self.ref)[1]


@dataclass(frozen=True)
class Action(ActionSpec):
    """A stored action. Built-in actions have no integer id."""

    id: int | None = None
    uuid: str = ""
    tenant_id: str | None = None
    project_id: str | None = None
    created: float | None = None
    updated: float | None = None
    created_by: str | None = None

    @property
    def builtin(self) -> bool:
        return self.pack == BUILTIN_PACK


def validate_spec(spec: ActionSpec) -> None:
    """Raise ValueError with a user-facing reason when a definition cannot work."""
    pack, _ = split_ref(spec.ref)
    if pack == BUILTIN_PACK:
        raise ValueError(f"The pack '{BUILTIN_PACK}' is built in; choose another pack name")
    if spec.runner not in USER_RUNNERS:
        raise ValueError(f"Unknown runner {spec.runner!r}; expected one of {sorted(USER_RUNNERS)}")
    if spec.runner in {"shell", "command", "python"} and not spec.entry_point.strip():
        raise ValueError(f"The {spec.runner} runner needs an entry_point")
    if spec.runner == "python" and ":" not in spec.entry_point:
        raise ValueError("A python entry_point has the form 'module:function'")
    if spec.runner == "command":
        _check_argv(spec.entry_point)
    if spec.timeout is not None and not 0 < spec.timeout <= MAX_SECONDS:
        raise ValueError(f"timeout must be between 0 and {MAX_SECONDS:.0f} seconds")
    check_schema(spec.parameters)


def _check_argv(entry_point: str) -> None:
    try:
        argv = json.loads(entry_point)
    except ValueError:
        argv = None
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise ValueError('A command entry_point is a JSON array of strings, e.g. ["ls", "{path}"]')


def check_schema(schema: dict[str, Any]) -> None:
    if not isinstance(schema, dict):
        raise ValueError("parameters must be a JSON Schema object")
    if schema.get("type", "object") != "object":
        raise ValueError("The parameters schema must describe an object (type: object)")
    try:
        objects = sum(1 for _ in schemas.walk(schema))
    except ValueError as exc:  # an `$id` that is not a URI
        raise ValueError(f"Invalid parameters schema: {exc}") from None
    if objects > schemas.MAX_SUBSCHEMAS:
        raise ValueError(
            f"The parameters schema is too large: {objects} objects that may be schemas, "
            f"at most {schemas.MAX_SUBSCHEMAS}"
        )
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        raise ValueError(f"Invalid parameters schema: {exc.message}") from None
    usable = schemas.for_validation(schema)
    for ref, resolver in schemas.refs(usable):
        if not ref.startswith("#"):
            raise ValueError(
                f"Invalid parameters schema: $ref {ref!r} points outside the schema; "
                "only local references ('#/$defs/...') are allowed"
            )
        try:
            resolver.lookup(ref)
        except referencing.exceptions.Unresolvable:
            raise ValueError(
                f"Invalid parameters schema: $ref {ref!r} resolves to nothing"
            ) from None
    try:
        check_bounds(usable)
    except ValueError as exc:
        raise ValueError(f"Invalid parameters schema: {exc}") from None


def check_bounds(schema: dict[str, Any]) -> None:
    """Raise ValueError unless validating against the schema has a bounded cost: its
    patterns are accepted by the bounded engine and its references do not loop."""
    schema_checks.check_patterns(schema)
    schema_checks.check_loops(schema)


Error = jsonschema.exceptions.ValidationError


class ParameterValidator:
    """Validates submitted parameters against an action's schema and fills defaults.

    Compiling a validator is costly, so one is kept per schema. An error never shows
    the value of a secret parameter: it names the parameter and the failed constraint.
    """

    def __init__(self, schema: dict[str, Any]) -> None:
        usable = schemas.for_validation(schema)
        try:
            check_bounds(usable)
        except ValueError as exc:
            raise ValueError(f"The action's parameters schema cannot be used: {exc}") from None
        self.schema = schema
        self.secrets = secret_names(schema)
        self._validator = schemas.Validator(usable, registry=schemas.registry(usable))
        self._known = schemas.known_values(usable)
        self._defaults = {
            name: prop["default"]
            for name, prop in schema.get("properties", {}).items()
            if isinstance(prop, dict) and "default" in prop
        }

    def __call__(self, parameters: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(parameters, dict):
            raise ValueError("parameters must be a JSON object")
        filled = {**copy.deepcopy(self._defaults), **parameters}
        shown = schema_messages.briefly_shown(filled)
        try:
            error = schemas.first_error(self._validator, shown, self._known)
        except (referencing.exceptions.Unresolvable, PatternError) as exc:
            raise ValueError(f"The action's parameters schema cannot be used: {exc}") from None
        except PatternTimeout as exc:
            raise ValueError(
                f"Invalid {self._subject(_holder(shown, exc.text))}: matching the pattern "
                f"{quoted(exc.pattern)} took longer than the {BUDGET * 1000:.0f} ms "
                "that validating parameters may take; the action's schema needs a simpler "
                "pattern"
            ) from None
        except schemas.TooCostly:
            raise ValueError(
                "Invalid parameters: checking them against the action's schema takes more "
                f"than the {schemas.MAX_STEPS:,} steps one validation may take; send fewer "
                "values, or simplify the schema"
            ) from None
        except RecursionError:
            raise ValueError(
                "Invalid parameters: nested too deeply to be checked against the action's schema"
            ) from None
        except ArithmeticError:
            raise ValueError(
                "Invalid parameters: a number is beyond what the action's schema can check"
            ) from None
        if error is not None:
            raise ValueError(self._explain(error, filled))
        return filled

    def _subject(self, path: list[str | int]) -> str:
        if not path:
            return "parameters"
        where = ".".join(str(p) for p in path)
        return f"parameter '{where}'" + (" (secret)" if path[0] in self.secrets else "")

    def _explain(self, error: Error, filled: dict[str, Any]) -> str:
        path = list(error.absolute_path)
        # An error about a secret, or about the whole object holding one, may quote it.
        holds_secret = path[0] in self.secrets if path else bool(self.secrets & filled.keys())
        detail = _constraint(error) if holds_secret else error.message
        return f"Invalid {self._subject(path)}: {detail}"


# What failed, said from the schema's side only: the value is never quoted.
_CONSTRAINTS = {
    "type": "is not of type {!r}",
    "minLength": "is too short: at least {} characters",
    "maxLength": "is too long: at most {} characters",
    "pattern": "does not match the pattern {!r}",
    "format": "is not a valid {}",
    "enum": "is not one of the allowed values",
    "const": "is not the expected value",
    "minimum": "is less than the minimum of {}",
    "exclusiveMinimum": "is less than or equal to the minimum of {}",
    "maximum": "is more than the maximum of {}",
    "exclusiveMaximum": "is more than or equal to the maximum of {}",
    "multipleOf": "is not a multiple of {}",
    "minItems": "has too few items: at least {}",
    "maxItems": "has too many items: at most {}",
    "uniqueItems": "has repeated items",
    "minProperties": "has too few properties: at least {}",
    "maxProperties": "has too many properties: at most {}",
}
# Keywords whose messages name properties but never quote a value.
_NAMES_ONLY = frozenset(
    {"required", "additionalProperties", "unevaluatedProperties", "dependentRequired"}
)


def _constraint(error: Error) -> str:
    keyword = error.validator
    if not isinstance(keyword, str):  # the `false` schema
        return "is not allowed"
    if keyword in _NAMES_ONLY:
        return error.message
    template = _CONSTRAINTS.get(keyword)
    if template is None:
        return f"does not satisfy the schema's {keyword!r}"
    return template.format(error.validator_value)


def _holder(parameters: dict[str, Any], text: str) -> list[str | int]:
    """The parameter holding this very string (a value or a key, at any depth)."""
    for name, value in parameters.items():
        if name is text or _holds(value, text):
            return [name]
    return []


def _holds(value: Any, text: str) -> bool:
    if value is text:
        return True
    if isinstance(value, dict):
        return any(key is text or _holds(child, text) for key, child in value.items())
    if isinstance(value, list):
        return any(_holds(child, text) for child in value)
    return False


def secret_names(schema: dict[str, Any]) -> frozenset[str]:
    return frozenset(
        name
        for name, prop in schema.get("properties", {}).items()
        if isinstance(prop, dict) and prop.get("secret") is True
    )


def mask_secrets(parameters: dict[str, Any], secrets: frozenset[str]) -> dict[str, Any]:
    if not secrets:
        return parameters
    return {k: (SECRET_MASK if k in secrets else v) for k, v in parameters.items()}
