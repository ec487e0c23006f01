"""Analytics (issue 5): /api/v1/executions/stats keeps the document's body and, when
asked, groups what ended by action and by time bucket with failure rates and duration
percentiles, computed in the database on both backends."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from sqlalchemy import create_engine, func, select, update

from execd.domain.times import iso
from execd.store.database import sync_url
from execd.store.schema import (
    execution_rollups_hourly,
    executions,
)
from tests.support import Deployment, ended_in, new_project, submit, wait_status

HOUR = 3600.0
T0 = 1_780_000_000.0 - (1_780_000_000.0 % HOUR)  # the start of an hour, in 2026


def test_stats_group_by_action_and_hour(deployment: Deployment) -> None:
    server = deployment.server(workers=2)
    _, _, token = new_project(server.client())
    client = server.client(token)
    for ref, script in (("a.ok", "true"), ("a.bad", "exit 1")):
        assert client.post("/api/v1/actions", json={
            "ref": ref, "runner": "shell", "entry_point": script}).status_code == 201  # fmt: skip
    ok = [submit(client, "a.ok")["id"] for _ in range(20)]
    bad = [submit(client, "a.bad")["id"] for _ in range(4)]
    for execution_id in ok + bad:
        wait_status(client, execution_id)

    plain = client.get("/api/v1/executions/stats").json()
    counts = {"total": 24, "completed": 20, "failed": 4, "running": 0}
    assert plain == {"data": {**counts, "pending": 0, "cancelled": 0, "timeout": 0, "abandoned": 0}}

    # Known times: a.ok run i lasts i seconds and ends in the first hour; the a.bad runs
    # last 100 s and end two in each hour.
    engine = create_engine(sync_url(deployment.database_url))
    with engine.begin() as conn:
        for i, execution_id in enumerate(ok, start=1):
            conn.execute(update(executions).where(executions.c.id == execution_id)
                         .values(started=T0 + 60 * i, ended=T0 + 60 * i + i))  # fmt: skip
        for i, execution_id in enumerate(bad):
            end = T0 + 1000 + HOUR * (i // 2)
            conn.execute(update(executions).where(executions.c.id == execution_id)
                         .values(started=end - 100, ended=end))  # fmt: skip
    engine.dispose()
    window = {"since": "2026-05-28T00:00:00Z", "until": "2026-06-01T00:00:00Z"}
    queries = [
        {"group_by": "action", **window},
        {"bucket": "hour", **window},
        {"bucket": "hour", "group_by": "action", **window},
        {"bucket": "day", "since": "2026-05-20T00:00:00Z", "until": "2026-06-01T12:30:00Z"},
    ]

    def answers() -> list[dict[str, Any]]:
        found = []
        for params in queries:
            response = client.get("/api/v1/executions/stats", params=params)
            assert response.status_code == 200, response.text
            found.append(response.json()["data"])
        return found

    # Those hours are older than the rollups (which began when the server started):
    # answered from the executions themselves.
    raw = answers()
    check(raw)
    # The same from rollups, once they are computed again from the executions.
    done = subprocess.run(
        [sys.executable, "-m", "execd", "rollup", "--rebuild"],
        env=deployment.env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split()[2]) >= 2  # at least the two hours with executions
    engine = create_engine(sync_url(deployment.database_url))
    with engine.connect() as conn:
        rolled = conn.execute(select(func.sum(ended_in(execution_rollups_hourly)))).scalar()
    engine.dispose()
    assert rolled == 24
    assert answers() == raw

    # A window that holds nothing, and bad parameters.
    empty = client.get("/api/v1/executions/stats", params={"group_by": "action"})
    assert empty.json()["data"]["groups"] == []  # the last 24 hours: the times are in May
    for params in (
        {"bucket": "minute"},
        {"group_by": "colour"},
        {"since": "2026-06-01T00:00:00Z", "until": "2026-05-01T00:00:00Z", "bucket": "hour"},
        {"since": "2000-01-01T00:00:00Z", "bucket": "hour"},
    ):
        bad_request = client.get("/api/v1/executions/stats", params=params)
        assert bad_request.status_code == 400, params
        assert bad_request.json()["status"] == 400


def close(ms: int, seconds: float) -> bool:
    """Percentiles come from histograms: within 1 %."""
    return abs(ms - seconds * 1000) <= seconds * 10


def check(answers: list[dict[str, Any]]) -> None:
    by_action, hourly, both, daily = answers
    assert by_action["total"] == 24  # the document's counts stay as they are
    groups = {g["action_ref"]: g for g in by_action["groups"]}
    ok, bad = groups["a.ok"], groups["a.bad"]
    assert ok["ended"] == 20 and ok["completed"] == 20 and ok["failure_rate"] == 0.0
    # Durations 1..20 s: nearest rank p50 = 10 s, p95 = 19 s, p99 = 20 s.
    assert [close(ok["duration_ms"][p], s) for p, s in (("p50", 10), ("p95", 19), ("p99", 20))]\
        == [True, True, True], ok["duration_ms"]  # fmt: skip
    assert bad["failure_rate"] == 1.0 and bad["failed"] == 4
    assert close(bad["duration_ms"]["p50"], 100)
    assert ok["throughput_per_hour"] == round(20 / 96, 3)  # four days

    buckets = hourly["groups"]
    assert [(b["bucket"], b["ended"], b["failed"]) for b in buckets] == [
        (iso(T0), 22, 2), (iso(T0 + HOUR), 2, 2)]  # fmt: skip
    assert buckets[0]["throughput_per_hour"] == 22.0
    assert buckets[0]["failure_rate"] == round(2 / 22, 4)
    assert [(g["bucket"], g["action_ref"], g["ended"]) for g in both["groups"]] == [
        (iso(T0), "a.bad", 2), (iso(T0), "a.ok", 20), (iso(T0 + HOUR), "a.bad", 2)]  # fmt: skip
    # Days (UTC), over a window with ragged edges.
    assert [(g["bucket"][:10], g["ended"]) for g in daily["groups"]] == [
        (iso(T0)[:10], 24)]  # fmt: skip
