"""The OpenAPI document, as the server really answers.

FastAPI documents what a route declares: its success answer, and a 422 that execd never
sends (invalid input is a 400 in the dialect's own shape, api/errors.py). This module
rewrites each operation's answers: the 422 goes, and every error status the operation
can answer is listed with the error body of the dialect its path belongs to. The
bearer scheme, which the authenticating dependency declares (api/deps.py), gives
Swagger UI its Authorize button.

What the store can keep (domain/jsonsafe.py) is checked for every request, whatever
its route: no NUL in any text, integers within 64 bits. `_storable` states it in the
document the same way, once for every schema: text gets a pattern without NUL, numbers
their bounds, and a free-form object (parameters, criteria, a trigger's config) the
`JsonObject` schema, any JSON value under those rules."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import WithJsonSchema

from execd.domain import jsonsafe
from execd.domain.actions import BUILTIN_PACK, REF_PATTERN, USER_RUNNERS
from execd.domain.states import Priority

# The error body of each dialect, by the first path prefix that matches (api/errors.py
# and each dialect's `error_body`).
ERROR_SCHEMAS: dict[str, dict[str, Any]] = {
    "V1Error": {
        "type": "object",
        "required": ["error", "status"],
        "properties": {
            "error": {"type": "string", "description": "What is wrong, in a sentence"},
            "status": {"type": "integer", "description": "The HTTP status, again"},
            "errors": {
                "type": "array",
                "description": "A refused batch: each refused item's index, status, error",
                "items": {
                    "type": "object",
                    "required": ["index", "status", "error"],
                    "properties": {
                        "index": {"type": "integer"},
                        "status": {"type": "integer"},
                        "error": {"type": "string"},
                    },
                },
            },
        },
    },
    "TenantError": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {"type": "string"},
            "actionId": {"type": "string"},
            "executionId": {"type": "string"},
            "jobId": {"type": "string"},
            "reason": {"type": "string"},
        },
    },
    "FlowError": {
        "type": "object",
        "required": ["success", "error", "code", "message"],
        "properties": {
            "success": {"type": "boolean", "enum": [False]},
            "error": {"type": "string", "description": "A title: Invalid request, Not found"},
            "code": {"type": "string", "description": "INVALID_INPUT, NOT_FOUND, ..."},
            "message": {"type": "string"},
        },
    },
    "Error": {
        "type": "object",
        "required": ["error", "status"],
        "properties": {"error": {"type": "string"}, "status": {"type": "integer"}},
    },
}

NO_NUL = "^[^\\u0000]*$"
NOT_BLANK = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"
_MAX_SIGNED = 2**63 - 1
_BOUNDS = {"minimum": jsonsafe.MIN_INT, "maximum": _MAX_SIGNED}  # shown `_readable`
_JSON_VALUE = {"$ref": "#/components/schemas/JsonValue"}
JSON_VALUE = _JSON_VALUE
_JSON_OBJECT = {"$ref": "#/components/schemas/JsonObject"}


# -- What a handler checks itself, shown in the document ------------------------------
#
# Some values are checked by the handler, not by the model, so that a bad one gets the
# dialect's own message and code (INVALID_LIMIT, "Unknown runner ..."). `shown` puts
# the rule the handler applies in the document: `Annotated[str, shown(one_of(...))]`.


def shown(schema: dict[str, Any]) -> WithJsonSchema:
    return WithJsonSchema(schema)


# Named schemas a dialect adds to the document's components (one that refers to itself,
# such as a tree of criteria, needs a name): of what requests hold, and of answers.
COMPONENTS: dict[str, dict[str, Any]] = {}
ANSWERS: dict[str, dict[str, Any]] = {}


def component(name: str, schema: dict[str, Any], *, answer: bool = False) -> dict[str, Any]:
    """A reference to `schema`, listed in the components as `name`."""
    (ANSWERS if answer else COMPONENTS)[name] = schema
    return {"$ref": f"#/components/schemas/{name}"}


def answers(
    schema: dict[str, Any], status: int, also: dict[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """A route's `responses`: its success answer, and the statuses in `also` (each with
    what it means), carry `schema`."""
    content = {"application/json": {"schema": schema}}
    described = {status: "Success", **(also or {})}
    return {code: {"description": text, "content": content} for code, text in described.items()}


def record(required: dict[str, Any], **optional: Any) -> dict[str, Any]:
    """An answer's object: the fields in `required` are always there."""
    return {
        "type": "object",
        "required": list(required),
        "properties": {**required, **optional},
    }


def one_of(values: Iterable[str], description: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "enum": list(values)}
    if description:
        schema["description"] = description
    return schema


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def given(name: str) -> dict[str, Any]:
    """A rule: `name` is there, and not null."""
    return {"required": [name], "properties": {name: {"not": {"type": "null"}}}}


def absent(*names: str) -> dict[str, Any]:
    """A rule: none of `names` is there, unless as null."""
    return {"properties": {name: {"type": "null"} for name in names}}


def whole(low: int, high: int, description: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer", "minimum": low, "maximum": high}
    if description:
        schema["description"] = description
    return schema


ACTION_REF: dict[str, Any] = {
    "type": "string",
    "pattern": f"^{REF_PATTERN}$",
    "maxLength": 300,
    "description": "pack.name: letters, digits, '_' and '-', and dots in the name",
}
# An action one defines: any ref but those of the built-in pack.
NEW_ACTION_REF: dict[str, Any] = {**ACTION_REF, "not": {"pattern": f"^{BUILTIN_PACK}\\."}}


def action_rules(entry_point: str) -> dict[str, Any]:
    """What each runner needs of the entry point (domain/actions.py `validate_spec`):
    a script, an argv list, module:function; an http action's URL comes with its
    parameters."""
    needs = {
        "shell": {"anyOf": [{"type": "string", "pattern": NOT_BLANK}, {"type": "array"}]},
        "command": {"type": "array", "minItems": 1, "items": {"type": "string"}},
        "python": {"type": "string", "pattern": "^[^\\u0000]*:[^\\u0000]*$"},
        "http": {},
    }
    return {
        "anyOf": [
            {
                "properties": {"runner": {"const": runner}, entry_point: need},
                "required": [entry_point] if need else [],
            }
            for runner, need in needs.items()
        ]
    }


RUNNER = one_of(sorted(USER_RUNNERS))
ACTION_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "description": "A JSON Schema (2020-12) of the parameters, describing an object",
    "properties": {"type": {"const": "object"}},
    "additionalProperties": _JSON_VALUE,
}
PRIORITY_NAME = one_of([p.label for p in Priority] + [p.name.lower() for p in Priority])
PRIORITY: dict[str, Any] = {
    "anyOf": [PRIORITY_NAME, whole(int(min(Priority)), int(max(Priority)), "0 (low) to 3")]
}


def _readable(bound: Any) -> Any:
    """A bound as the document shows it. FastAPI's document model holds bounds as
    doubles, so a whole one comes back as an integer; past 2**53 it is cut, toward
    zero, to 15 significant digits, which a client that reads JSON numbers as doubles
    (most do) reads exactly: every value within it is still taken."""
    if isinstance(bound, float) and bound.is_integer():
        bound = int(bound)
    if not isinstance(bound, int) or abs(bound) <= 2**53:
        return bound
    step = 10 ** (len(str(abs(bound))) - 15)
    return (-1 if bound < 0 else 1) * (abs(bound) // step * step)


STORABLE_SCHEMAS: dict[str, dict[str, Any]] = {
    "JsonValue": {
        "description": (
            "Any JSON value execd can store: text without NUL characters, integers "
            f"within 64 bits, finite numbers, nested at most {jsonsafe.MAX_DEPTH} deep"
        ),
        "anyOf": [
            {"type": "null"},
            {"type": "boolean"},
            {"type": "number", **{k: _readable(v) for k, v in _BOUNDS.items()}},
            {"type": "string", "pattern": NO_NUL},
            {"type": "array", "items": _JSON_VALUE},
            _JSON_OBJECT,
        ],
    },
    "JsonObject": {
        "type": "object",
        "propertyNames": {"pattern": NO_NUL},
        "additionalProperties": _JSON_VALUE,
    },
}
_SUBSCHEMAS = ("items", "not", "additionalProperties", "propertyNames")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_FREE = {"type", "title", "description", "default", "examples", "additionalProperties"}


def _free_form(node: dict[str, Any]) -> bool:
    """An object (or any value) whose content the schema leaves open."""
    if node.get("type") == "object":
        return node.keys() <= _FREE and node.get("additionalProperties", True) is True
    return not node.keys() - {"title", "description", "default", "examples"}


def _storable(node: Any) -> Any:
    """`node`, a schema, saying what the store can keep (see the module's text)."""
    if not isinstance(node, dict) or "$ref" in node or "const" in node or "enum" in node:
        return node
    if _free_form(node):
        kept = {k: v for k, v in node.items() if k in ("title", "description", "default")}
        return {**kept, "allOf": [_JSON_OBJECT if node.get("type") else _JSON_VALUE]}
    kind = node.get("type")
    if kind == "string" and "pattern" not in node and "format" not in node:
        node["pattern"] = NO_NUL
    elif kind in ("integer", "number"):
        for bound, value in _BOUNDS.items():
            node[bound] = _readable(node.get(bound, value))
    elif kind == "object" and node.get("additionalProperties", True) is not False:
        node.setdefault("propertyNames", {"pattern": NO_NUL})
    for key in _SUBSCHEMAS:
        if key in node:
            node[key] = _storable(node[key])
    for key in _SCHEMA_LISTS:
        if key in node:
            node[key] = [_storable(item) for item in node[key]]
    if "properties" in node:
        node["properties"] = {k: _storable(v) for k, v in node["properties"].items()}
    return node


def _requests(spec: dict[str, Any]) -> None:
    """Apply `_storable` to what a request holds: its parameters and its body, and the
    named schemas they use (the components so far: errors are added after). Answers
    are left as they are: they hold what was stored, and error messages may quote what
    was refused."""
    schemas = spec["components"]["schemas"]
    for name in list(schemas):
        schemas[name] = _storable(schemas[name])
    for item in spec.get("paths", {}).values():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                parameter["schema"] = _storable(parameter["schema"])
            for media in operation.get("requestBody", {}).get("content", {}).values():
                if "schema" in media:
                    media["schema"] = _storable(media["schema"])


_TENANT = ("/api/{tenantId}/",)
_FLOWS = ("/api/flows", "/api/history", "/api/devices")


def _error_schema(path: str) -> str:
    if path.startswith("/api/v1/"):
        return "V1Error"
    if path.startswith(_FLOWS):
        return "FlowError"
    if path.startswith(_TENANT):
        return "TenantError"
    return "Error"


_WHY = {
    400: "The request is malformed or refused as it stands (the message says what)",
    401: "No token, or one that is not valid (expired, revoked, unknown)",
    403: "The token's role or scope does not allow this",
    404: "What the path or the request names does not exist (or is not the token's)",
    408: "The request body was not sent in time",
    409: "It conflicts with the state of what it names",
    413: "The request body is larger than this route takes",
    429: "A rate limit was reached: Retry-After says when to try again",
    503: "The store is out of reach for a moment: Retry-After says when to try again",
}
_LIMITED = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds"}}


def _statuses(method: str, operation: dict[str, Any]) -> list[int]:
    """The error statuses an operation can answer."""
    secured = bool(operation.get("security"))
    parameters = operation.get("parameters", [])
    body = "requestBody" in operation
    statuses = [400] if parameters or body else []
    if secured:
        statuses += [401, 403, 429]
    if any(p["in"] == "path" for p in parameters) or body or secured:
        statuses.append(404)
    if method != "get":
        statuses.append(409)
    if body:
        statuses += [408, 413]
    return sorted([*statuses, 503])


def document(app: FastAPI) -> dict[str, Any]:
    spec = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    components = spec.setdefault("components", {})
    components.setdefault("schemas", {}).update(copy.deepcopy(COMPONENTS))  # the pass writes
    _requests(spec)
    components["schemas"].update({**ERROR_SCHEMAS, **STORABLE_SCHEMAS, **ANSWERS})
    for path, item in spec.get("paths", {}).items():
        schema = {"$ref": f"#/components/schemas/{_error_schema(path)}"}
        for method, operation in item.items():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            for status in _statuses(method, operation):
                answer: dict[str, Any] = {
                    "description": _WHY[status],
                    "content": {"application/json": {"schema": schema}},
                }
                if status in (429, 503):
                    answer["headers"] = _LIMITED
                responses.setdefault(str(status), answer)
    schemas = components["schemas"]
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return spec


def install(app: FastAPI) -> None:
    """Serve `document(app)` at /openapi.json (built once, at the first request)."""
    built: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if not built:
            built.update(document(app))
        return built

    app.openapi = openapi  # type: ignore[method-assign]
