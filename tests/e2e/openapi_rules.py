"""What the schemathesis run (test_v1_fuzz.py) is told beyond the OpenAPI document.

The document states every rule a schema can state. A few rules no schema can: they
compare a value with the clock, or two values with each other (a window's start with
its end). The operations' descriptions and docs/api-*.md state them in words; here the
generator learns them, so that a request breaking one is not counted as a schema-valid
request refused. The formats the document names beyond JSON Schema's own (a cron
expression) get a generator here too.

Loaded by the schemathesis CLI through SCHEMATHESIS_HOOKS."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import schemathesis
from hypothesis import strategies as st

from execd.domain.access import MAX_TOKEN_LIFETIME
from execd.domain.actions import MAX_SECONDS
from execd.domain.analytics import BUCKETS, MAX_BUCKETS

DAY = 86400.0


def _field(low: int, high: int) -> st.SearchStrategy[str]:
    number = st.integers(low, high).map(str)
    step = st.integers(1, high).map(lambda n: f"*/{n}")
    return st.one_of(st.just("*"), number, step)


# Five fields: minute, hour, day of month (up to 28: every month has it), month, weekday.
CRON = st.tuples(_field(0, 59), _field(0, 23), _field(1, 28), _field(1, 12), _field(0, 6)).map(
    " ".join
)
schemathesis.openapi.format("cron", CRON)


def _moment(value: Any, *, end_of_day: bool = False) -> float | None:
    """Seconds since the epoch of an ISO 8601 date or date-time, as the API reads it."""
    if not isinstance(value, str) or not value:
        return None
    moment = datetime.fromisoformat(value.strip().upper())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    extra = DAY if end_of_day and len(value.strip()) == 10 else 0.0
    return moment.timestamp() + extra


def _in_order(start: float | None, end: float | None, *, strictly: bool = False) -> bool:
    if start is None or end is None:
        return True
    return start < end if strictly else start <= end


def _stats_window(query: dict[str, Any]) -> bool:
    """The v1 stats: since before until (by default the last day), and at most
    MAX_BUCKETS buckets."""
    if not any(query.get(k) for k in ("group_by", "bucket", "since", "until")):
        return True
    until = _moment(query.get("until")) or time.time()
    since = _moment(query.get("since"))
    since = since if since is not None else until - DAY
    width = BUCKETS.get(query.get("bucket") or "")
    return since < until and (width is None or (until - since) / width <= MAX_BUCKETS)


def _token_lifetime(body: Any) -> bool:
    """A token's expires is in the future, at most ten years away."""
    expires = _moment(body.get("expires")) if isinstance(body, dict) else None
    now = time.time()
    return expires is None or now + 60 < expires <= now + MAX_TOKEN_LIFETIME - 60


def _job_time(body: Any) -> bool:
    """A job's scheduledTime is at most ten years away."""
    scheduling = body.get("scheduling") if isinstance(body, dict) else None
    if not isinstance(scheduling, dict) or scheduling.get("executeImmediately", True):
        return True
    moment = _moment(scheduling.get("scheduledTime"))
    return moment is None or moment <= time.time() + MAX_SECONDS - 60


def _flow_window(query: dict[str, Any]) -> bool:
    """The flow history API: startDate not after endDate."""
    start = _moment(query.get("startDate"))
    return _in_order(start, _moment(query.get("endDate"), end_of_day=True))


RULES = {
    ("GET", "/api/v1/executions/stats"): lambda case: _stats_window(case.query or {}),
    ("POST", "/api/v1/tokens"): lambda case: _token_lifetime(case.body),
    ("POST", "/api/{tenantId}/{projectId}/execution/job"): lambda case: _job_time(case.body),
    ("GET", "/api/history/executions"): lambda case: _flow_window(case.query or {}),
    ("GET", "/api/history/execution-stats"): lambda case: _flow_window(case.query or {}),
}


@schemathesis.hook
def filter_case(context: Any, case: Any) -> bool:
    rule = RULES.get((case.operation.method.upper(), case.operation.path))
    try:
        return rule is None or rule(case)
    except (ValueError, OverflowError, TypeError):
        return True  # not a value the rule reads: the server's answer is checked as it is
