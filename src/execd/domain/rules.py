"""Triggers, rules and enforcements: what makes executions happen without a client.

A *trigger* is a source of events: a webhook called over HTTP, a timer (cron
expression in a time zone, or an interval), or an execution of some action reaching
some status. A *rule* watches one trigger: when the trigger fires and the rule's
criteria match the event's payload, it runs an action with parameters rendered from
a template. Every such firing leaves an *enforcement*: the rule, the payload, the
outcome, and the executions it created.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from execd.domain import templates
from execd.domain.states import TERMINAL, parse_status

WEBHOOK, TIMER, EXECUTION = "webhook", "timer", "execution"
TRIGGER_TYPES = (WEBHOOK, TIMER, EXECUTION)
REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")

# Webhook authentication: the project's bearer token, or an HMAC-SHA256 signature of
# the raw body with the trigger's secret (header X-Execd-Signature: sha256=<hex>).
TOKEN, HMAC = "token", "hmac"

# After downtime, a timer that missed due times fires once for the latest of them
# ("latest", the default), for each of them up to MAX_CATCH_UP ("all"), or only if the
# latest is at most MISFIRE_GRACE seconds late ("skip").
CATCH_UP = ("latest", "all", "skip")
MAX_CATCH_UP = 100
MISFIRE_GRACE = 60.0
CATCH_UP_DAYS = 31  # missed cron times older than this are neither fired nor counted
MIN_INTERVAL = 1.0
MAX_INTERVAL = 366 * 86400.0


class RuleError(ValueError):
    """A trigger, rule or criteria definition that cannot be accepted."""


@dataclass(frozen=True)
class Trigger:
    id: int
    tenant_id: str
    project_id: str
    ref: str
    type: str
    description: str
    config: dict[str, Any]
    enabled: bool
    next_fire: float | None
    created: float
    updated: float
    has_secret: bool = False


@dataclass(frozen=True)
class Rule:
    id: int
    tenant_id: str
    project_id: str
    ref: str
    description: str
    trigger_id: int
    trigger_ref: str
    criteria: dict[str, Any] | None
    action_ref: str
    parameters: dict[str, Any]
    enabled: bool
    created: float
    updated: float
    created_by: str | None = None


@dataclass(frozen=True)
class Enforcement:
    id: int
    rule_id: int
    rule_ref: str
    trigger_id: int
    trigger_ref: str
    trigger_type: str
    payload: Any
    status: str  # succeeded | failed
    error: str | None
    depth: int
    execution_ids: list[int]
    created: float


@dataclass(frozen=True)
class TriggerSpec:
    ref: str
    type: str
    description: str = ""
    enabled: bool = True
    config: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, trigger: Trigger) -> TriggerSpec:
        """The definition of a stored trigger (to change some of it with `replace`)."""
        return cls(trigger.ref, trigger.type, trigger.description, trigger.enabled, trigger.config)


@dataclass(frozen=True)
class RuleSpec:
    ref: str
    trigger_ref: str
    action_ref: str
    description: str = ""
    criteria: dict[str, Any] | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True

    @classmethod
    def of(cls, rule: Rule) -> RuleSpec:
        """The definition of a stored rule (to change some of it with `replace`)."""
        return cls(
            rule.ref,
            rule.trigger_ref,
            rule.action_ref,
            rule.description,
            rule.criteria,
            rule.parameters,
            rule.enabled,
        )


def check_ref(kind: str, ref: str) -> None:
    # A rule's executions are submitted by "rule:<ref>" (at most 200 characters).
    longest = 190 if kind == "rule" else 200
    if not REF.fullmatch(ref) or len(ref) > longest:
        raise RuleError(
            f"A {kind} ref has 1 to {longest} letters, digits, '_', '.' or '-' and starts "
            "with a letter or digit"
        )


def check_template(parameters: Any) -> None:
    if not isinstance(parameters, dict):
        raise RuleError("parameters is an object (a template of the action's parameters)")
    try:
        templates.check(parameters)
    except templates.TemplateError as exc:
        raise RuleError(f"parameters: {exc}") from None


# -- trigger configuration ------------------------------------------------------------


def normalise_config(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """The trigger's configuration, checked and with its defaults filled in."""
    if kind == WEBHOOK:
        return _webhook_config(config)
    if kind == TIMER:
        return _timer_config(config)
    if kind == EXECUTION:
        return _execution_config(config)
    raise RuleError(f"Unknown trigger type {kind!r}; use one of {', '.join(TRIGGER_TYPES)}")


def _only(config: dict[str, Any], allowed: set[str], kind: str) -> None:
    extra = sorted(set(config) - allowed)
    if extra:
        raise RuleError(f"Unknown {kind} trigger setting(s): {', '.join(extra)}")


def _webhook_config(config: dict[str, Any]) -> dict[str, Any]:
    _only(config, {"auth"}, WEBHOOK)
    auth = config.get("auth", TOKEN)
    if auth not in (TOKEN, HMAC):
        raise RuleError("A webhook's auth is 'token' or 'hmac'")
    return {"auth": auth}


def _timer_config(config: dict[str, Any]) -> dict[str, Any]:
    _only(config, {"cron", "timezone", "interval", "catch_up"}, TIMER)
    cron, interval = config.get("cron"), config.get("interval")
    if (cron is None) == (interval is None):
        raise RuleError("A timer has either a cron expression or an interval (seconds)")
    catch_up = config.get("catch_up", "latest")
    if catch_up not in CATCH_UP:
        raise RuleError(f"catch_up is one of {', '.join(CATCH_UP)}")
    if interval is not None:
        if (
            isinstance(interval, bool)
            or not isinstance(interval, int | float)
            or not MIN_INTERVAL <= interval <= MAX_INTERVAL
        ):
            raise RuleError(
                f"interval is a number of seconds from {MIN_INTERVAL:.0f} to {MAX_INTERVAL:.0f}"
            )
        if "timezone" in config:
            raise RuleError("timezone applies to cron timers only")
        return {"interval": float(interval), "catch_up": catch_up}
    if not isinstance(cron, str) or len(cron) > 200 or len(cron.split()) != 5:
        raise RuleError("cron is a five-field cron expression such as '*/5 * * * *'")
    zone = config.get("timezone", "UTC")
    if not isinstance(zone, str):
        raise RuleError("timezone is an IANA time zone name such as 'Europe/Berlin'")
    _zone(zone)
    try:
        CronSim(cron, datetime.now(UTC))
    except CronSimError as exc:
        raise RuleError(f"Invalid cron expression {cron!r}: {exc}") from None
    return {"cron": cron, "timezone": zone, "catch_up": catch_up}


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise RuleError(f"Unknown time zone {name!r}") from None


def _execution_config(config: dict[str, Any]) -> dict[str, Any]:
    _only(config, {"action_ref", "statuses"}, EXECUTION)
    action_ref = config.get("action_ref")
    valid = isinstance(action_ref, str) and 0 < len(action_ref) <= 300
    if action_ref is not None and not valid:
        raise RuleError("action_ref is the ref of an action (omit it for any action)")
    raw = config.get("statuses")
    if raw is None:
        statuses = sorted(s.value for s in TERMINAL)
    else:
        if not isinstance(raw, list) or not raw or not all(isinstance(s, str) for s in raw):
            raise RuleError("statuses is a non-empty list of execution statuses")
        try:
            statuses = sorted({parse_status(s).value for s in raw})
        except ValueError as exc:
            raise RuleError(str(exc)) from None
    return {"action_ref": action_ref, "statuses": statuses}


def execution_matches(config: dict[str, Any], action_ref: str, status: str) -> bool:
    wanted = config.get("action_ref")
    return (wanted is None or wanted == action_ref) and status in config.get("statuses", ())


# -- timers ---------------------------------------------------------------------------


def next_fire(config: dict[str, Any], after: float) -> float:
    """The first due time of a timer strictly after `after` (seconds since the epoch)."""
    interval = config.get("interval")
    if interval is not None:
        return after + float(interval)
    return next(_cron_times(config, after))


def _cron_times(config: dict[str, Any], after: float) -> Iterator[float]:
    zone = _zone(config.get("timezone", "UTC"))
    start = datetime.fromtimestamp(after, zone)
    for moment in CronSim(config["cron"], start):
        yield moment.timestamp()


@dataclass(frozen=True)
class Firing:
    """What a timer does now that its due time has come."""

    times: list[float]  # the due times it fires for, oldest first
    skipped: int  # due times its catch-up policy let go
    upcoming: float  # its next due time, after now


def due_times(config: dict[str, Any], due: float, now: float) -> Firing:
    """The times a timer fires for now (its stored `due` time has come), following its
    catch-up policy, and its next due time after `now`."""
    interval = config.get("interval")
    if interval is not None:
        # Intervals skip ahead arithmetically: no walk through a long downtime.
        behind = max(0, math.floor((now - due) / interval))
        first = max(0, behind - MAX_CATCH_UP + 1)
        missed = [due + k * interval for k in range(first, behind + 1)]
        total, upcoming = behind + 1, due + (behind + 1) * interval
    else:
        # A long downtime is walked through from CATCH_UP_DAYS ago at most: a
        # per-minute cron missed for a year is not 500,000 steps.
        if due < now - CATCH_UP_DAYS * 86400:
            due = next_fire(config, now - CATCH_UP_DAYS * 86400)
        missed, total, upcoming = [due], 1, next_fire(config, due)
        while upcoming <= now:
            missed = [*missed[-(MAX_CATCH_UP - 1) :], upcoming]
            total += 1
            upcoming = next_fire(config, upcoming)
    policy = config.get("catch_up", "latest")
    if policy == "skip":
        missed = missed[-1:] if missed and now - missed[-1] <= MISFIRE_GRACE else []
    elif policy != "all":
        missed = missed[-1:]
    return Firing(missed, total - len(missed), upcoming)
