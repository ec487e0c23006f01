"""Rule criteria, trigger settings and timer schedules (domain/rules.py)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from execd.domain.criteria import check_criteria, matches
from execd.domain.rules import RuleError, due_times, next_fire, normalise_config

EVENT = {
    "payload": {
        "severity": "high",
        "count": 7,
        "ratio": 0.5,
        "flag": True,
        "tags": ["db", "prod"],
        "host": {"name": "web-12", "zone": "eu"},
        "nothing": None,
    }
}


@pytest.mark.parametrize(
    ("criterion", "expected"),
    [
        ({"field": "payload.severity", "op": "equals", "value": "high"}, True),
        ({"field": "payload.severity", "op": "equals", "value": "low"}, False),
        ({"field": "payload.count", "op": "equals", "value": 7.0}, True),
        ({"field": "payload.flag", "op": "equals", "value": 1}, False),  # true is not 1
        ({"field": "payload.severity", "op": "not_equals", "value": "low"}, True),
        ({"field": "payload.absent", "op": "not_equals", "value": "low"}, True),
        ({"field": "payload.tags", "op": "contains", "value": "prod"}, True),
        ({"field": "payload.tags", "op": "contains", "value": "dev"}, False),
        ({"field": "payload.host.name", "op": "contains", "value": "web"}, True),
        ({"field": "payload.host", "op": "contains", "value": "zone"}, True),
        ({"field": "payload.host.name", "op": "regex", "value": r"^web-\d+$"}, True),
        ({"field": "payload.count", "op": "regex", "value": "7"}, False),  # not text
        ({"field": "payload.count", "op": "gt", "value": 5}, True),
        ({"field": "payload.count", "op": "lt", "value": 5}, False),
        ({"field": "payload.ratio", "op": "lte", "value": 0.5}, True),
        ({"field": "payload.severity", "op": "gt", "value": 3}, False),  # no cross-type order
        ({"field": "payload.severity", "op": "gte", "value": "high"}, True),
        ({"field": "payload.nothing", "op": "exists"}, True),
        ({"field": "payload.absent", "op": "exists"}, False),
        ({"field": "payload.absent", "op": "exists", "value": False}, True),
        ({"field": "payload.tags.1", "op": "equals", "value": "prod"}, True),
        ({"field": "payload.tags.9", "op": "exists"}, False),
        ({"field": "payload.tags.²", "op": "exists"}, False),  # not an ASCII digit
        ({"and": [{"field": "payload.count", "op": "gt", "value": 1},
                  {"field": "payload.severity", "op": "equals", "value": "high"}]}, True),
        ({"and": [{"field": "payload.count", "op": "gt", "value": 1},
                  {"field": "payload.severity", "op": "equals", "value": "low"}]}, False),
        ({"or": [{"field": "payload.count", "op": "gt", "value": 100},
                 {"field": "payload.severity", "op": "equals", "value": "high"}]}, True),
        ({"not": {"field": "payload.flag", "op": "equals", "value": True}}, False),
    ],
)  # fmt: skip
def test_criteria(criterion: dict[str, object], expected: bool) -> None:
    check_criteria(criterion)
    assert matches(criterion, EVENT) is expected


def test_no_criteria_match_everything() -> None:
    assert matches(None, EVENT)


def test_a_catastrophic_regex_gives_up_instead_of_hanging() -> None:
    criterion = {"field": "payload.text", "op": "regex", "value": "^(a+)+$"}
    check_criteria(criterion)
    assert matches(criterion, {"payload": {"text": "a" * 40 + "!"}}) is False
    stalling = {"field": "payload.text", "op": "regex", "value": "^(a|aa)+$"}
    check_criteria(stalling)
    assert matches(stalling, {"payload": {"text": "a" * 40 + "!"}}) is False


@pytest.mark.alone
def test_regex_criteria_of_a_rule_share_one_time_budget() -> None:
    stalling = {"field": "payload.text", "op": "regex", "value": "^(a|aa)+$"}
    quick = {"field": "payload.host", "op": "regex", "value": "^web-"}
    event = {"payload": {"text": "a" * 40 + "!", "host": "web-1"}}
    assert matches(quick, event) is True
    # Once the budget is spent, the rule's later regexes count as no match too.
    assert matches({"or": [stalling, quick]}, event) is False


@pytest.mark.parametrize(
    "criteria",
    [
        [],
        {"and": "x"},
        {"field": "x", "op": "regex", "value": "(unclosed"},
        {"field": "x", "op": "regex", "value": "((((a{100}){100}){100}){100})"},
        {"field": "x", "op": "regex", "value": "a" * 1001},
        {"field": "x", "op": "regex", "value": 7},
        {"field": "x", "op": "lt"},
        {"field": "x", "op": "equals", "value": 1, "extra": 2},
        {"not": {"not": {"not": {"field": "x", "op": "nope", "value": 1}}}},
    ],
)
def test_bad_criteria_are_refused(criteria: object) -> None:
    with pytest.raises(RuleError):
        check_criteria(criteria)


def test_criteria_size_is_bounded() -> None:
    wide = {"or": [{"field": "x", "op": "exists"} for _ in range(200)]}
    with pytest.raises(RuleError, match="at most"):
        check_criteria(wide)


BERLIN = ZoneInfo("Europe/Berlin")


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN).timestamp()


def test_cron_follows_the_time_zone_across_daylight_saving() -> None:
    config = normalise_config("timer", {"cron": "30 2 * * *", "timezone": "Europe/Berlin"})
    assert config["catch_up"] == "latest"
    # 2:30 does not exist on 2026-03-29 in Berlin (clocks jump from 2:00 to 3:00): the
    # timer fires when the jump happens, then at 2:30 again the next day.
    first = next_fire(config, at("2026-03-28T03:00:00"))
    second = next_fire(config, first)
    assert datetime.fromtimestamp(first, BERLIN).isoformat() == "2026-03-29T03:00:00+02:00"
    assert datetime.fromtimestamp(second, BERLIN).isoformat() == "2026-03-30T02:30:00+02:00"


def test_catch_up_policies_after_downtime() -> None:
    due = at("2026-05-01T10:00:00")
    now = at("2026-05-01T10:10:30")  # ten due times missed (10:00 ... 10:10)
    every = {"cron": "* * * * *", "timezone": "Europe/Berlin"}
    for policy, fired, skipped in (("all", 11, 0), ("latest", 1, 10), ("skip", 1, 10)):
        firing = due_times({**every, "catch_up": policy}, due, now)
        assert len(firing.times) == fired and firing.skipped == skipped, policy
        assert firing.upcoming == at("2026-05-01T10:11:00")
    assert due_times({**every, "catch_up": "latest"}, due, now).times == [at("2026-05-01T10:10:00")]
    # Later than the grace (60 s): "skip" fires nothing.
    late = due_times({**every, "catch_up": "skip"}, due, at("2026-05-01T10:11:59") - 0.5)
    assert late.times == [at("2026-05-01T10:11:00")]
    interval = {"interval": 120.0, "catch_up": "skip"}
    assert due_times(interval, due, due + 350).times == []  # the last, +240, is 110 s late
    assert due_times(interval, due, due + 350).upcoming == due + 360
    assert due_times(interval, due, due + 250).times == [due + 240]
    assert len(due_times({"interval": 1.0, "catch_up": "all"}, due, due + 10_000).times) == 100


@pytest.mark.parametrize(
    ("kind", "config"),
    [
        ("timer", {"cron": "* * *"}),
        ("timer", {"interval": 10, "timezone": "UTC"}),
        ("timer", {"interval": True}),
        ("execution", {"statuses": []}),
        ("execution", {"action_ref": ""}),
        ("webhook", {"auth": "basic"}),
        ("webhook", {"colour": "red"}),
    ],
)
def test_bad_trigger_settings_are_refused(kind: str, config: dict[str, object]) -> None:
    with pytest.raises(RuleError):
        normalise_config(kind, config)


def test_a_repeated_hour_fires_once() -> None:
    config = normalise_config("timer", {"cron": "30 2 * * *", "timezone": "Europe/Berlin"})
    # 2026-10-25: 2:00-3:00 happens twice in Berlin.
    first = next_fire(config, at("2026-10-25T01:00:00"))
    second = next_fire(config, first)
    assert datetime.fromtimestamp(first, BERLIN).isoformat() == "2026-10-25T02:30:00+02:00"
    assert datetime.fromtimestamp(second, BERLIN).isoformat() == "2026-10-26T02:30:00+01:00"
