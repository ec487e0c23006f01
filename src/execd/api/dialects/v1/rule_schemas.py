"""What the OpenAPI document shows of triggers and rules: a trigger's config by its type,
a rule's criteria (domain/rules.py checks them)."""

from __future__ import annotations

from typing import Any
from zoneinfo import available_timezones

from execd.api.openapi import JSON_VALUE, absent, component
from execd.domain.rules import (
    CATCH_UP,
    EXECUTION,
    HMAC,
    MAX_INTERVAL,
    MIN_INTERVAL,
    REF,
    TIMER,
    TOKEN,
    WEBHOOK,
)
from execd.domain.states import Status

REF_SCHEMA = {"type": "string", "pattern": f"^{REF.pattern}$", "maxLength": 200}
_CATCH_UP = {"enum": list(CATCH_UP), "description": "What a timer does about missed times"}
_STATUSES = {"type": "array", "minItems": 1, "items": {"enum": [s.value for s in Status]}}


def _settings(required: list[str], **properties: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": required,
        "properties": properties,
    }


_CONFIG = {
    WEBHOOK: _settings([], auth={"enum": [TOKEN, HMAC], "description": "How calls sign in"}),
    TIMER: {
        "anyOf": [
            _settings(
                ["cron"],
                cron={"type": "string", "format": "cron", "description": "Five fields"},
                timezone={"enum": sorted(available_timezones()), "description": "IANA name"},
                catch_up=_CATCH_UP,
            ),
            _settings(
                ["interval"],
                interval={"type": "number", "minimum": MIN_INTERVAL, "maximum": MAX_INTERVAL},
                catch_up=_CATCH_UP,
            ),
        ]
    },
    EXECUTION: _settings(
        [],
        action_ref={"type": ["string", "null"], "minLength": 1, "maxLength": 300},
        statuses=_STATUSES,
    ),
}
# A trigger's config is that of its type (a timer's is not optional); only an HMAC
# webhook has a secret.
_HMAC = {
    "required": ["config"],
    "properties": {"config": {"required": ["auth"], "properties": {"auth": {"const": HMAC}}}},
}
TRIGGER_RULES: dict[str, Any] = {
    "anyOf": [
        {
            "properties": {"type": {"const": kind}, "config": config},
            "required": ["config"] if kind == TIMER else [],
            "anyOf": [_HMAC, absent("secret")] if kind == WEBHOOK else [absent("secret")],
        }
        for kind, config in _CONFIG.items()
    ]
}


def _comparison(ops: list[str], value: dict[str, Any], needed: bool) -> dict[str, Any]:
    text = {"type": "string", "minLength": 1, "maxLength": 500}
    return _settings(
        ["field", "op", "value"] if needed else ["field", "op"],
        field={**text, "description": "A dotted path into the event: payload.severity"},
        op={"enum": ops},
        value=value,
    )


_CRITERION_REF = {"$ref": "#/components/schemas/Criterion"}
CRITERIA = component(
    "Criterion",
    {
        "description": "A comparison, or and/or/not over criteria",
        "anyOf": [
            *(
                _settings(
                    [word], **{word: {"type": "array", "minItems": 1, "items": _CRITERION_REF}}
                )
                for word in ("and", "or")
            ),
            _settings(["not"], **{"not": _CRITERION_REF}),
            _comparison(["exists"], {"type": ["boolean", "null"]}, needed=False),
            _comparison(["regex"], {"type": "string", "format": "regex"}, needed=True),
            _comparison(["gt", "gte", "lt", "lte"], {"type": ["number", "string"]}, needed=True),
            _comparison(["equals", "not_equals", "contains"], JSON_VALUE, needed=True),
        ],
    },
)
