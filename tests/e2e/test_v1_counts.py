"""The v1 counts by status (`/api/v1/executions/stats` without analytics, and the
lists' totals) come from the kept counts of rolled-up hours plus a count of the rest:
they must say exactly what counting every row says, across sealed hours, the current
hour, executions older than the rollups, deletions and retention."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import create_engine, func, select

from execd.store.database import sync_url
from execd.store.schema import (
    execution_rollups_hourly,
    executions,
)
from tests.support import Deployment, ended_in, insert_ended, new_project, submit, wait_status

DAY = 86400.0
SHOWN = ("completed", "failed", "running", "pending", "cancelled", "timeout", "abandoned")


def execd(deployment: Deployment, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "execd", *args],
        env=deployment.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def counted(deployment: Deployment, project_id: str) -> dict[str, int]:
    """Every row of the project counted, in the v1 body's groups."""
    engine = create_engine(sync_url(deployment.database_url))
    with engine.connect() as conn:
        rows = conn.execute(
            select(executions.c.status, func.count())
            .where(executions.c.project_id == project_id)
            .group_by(executions.c.status)
        ).all()
    engine.dispose()
    by_status = {status: int(n) for status, n in rows}
    groups = {
        "running": ("running", "canceling"),
        "pending": ("requested", "scheduling", "scheduled"),
    }
    body = {name: sum(by_status.get(s, 0) for s in groups.get(name, (name,))) for name in SHOWN}
    return {"total": sum(by_status.values()), **body}


def stats(client: httpx.Client) -> dict[str, Any]:
    response = client.get("/api/v1/executions/stats")
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def total(client: httpx.Client, **params: str) -> int:
    response = client.get("/api/v1/executions", params={"per_page": 1, **params})
    assert response.status_code == 200, response.text
    found: int = response.json()["pagination"]["total_items"]
    return found


def rolled_up(deployment: Deployment) -> int:
    engine = create_engine(sync_url(deployment.database_url))
    with engine.connect() as conn:
        ended = conn.execute(select(func.sum(ended_in(execution_rollups_hourly)))).scalar()
    engine.dispose()
    return int(ended or 0)


def test_counts_stay_exact_across_sealed_hours_deletion_and_retention(
    deployment: Deployment,
) -> None:
    server = deployment.server(workers=1)
    admin = server.client()
    _, project_id, token = new_project(admin)
    client = server.client(token)
    _, other_project, other_token = new_project(admin)
    url = deployment.database_url

    # Two days ago, in hours the rollups will cover; another project alongside.
    old_ok = insert_ended(url, client, 30, action_ref="s.old", ended_ago=2 * DAY)
    old_bad = insert_ended(url, client, 10, action_ref="s.old", ended_ago=2 * DAY - 7200,
                           status="failed")  # fmt: skip
    insert_ended(url, server.client(other_token), 7, ended_ago=2 * DAY)
    assert stats(client) == counted(deployment, project_id)  # before any rollup
    execd(deployment, "rollup", "--rebuild")
    assert rolled_up(deployment) == 47

    # This hour (not sealed), waiting, and older than the hours the rollups cover.
    done = [wait_status(client, submit(client, "core.noop")["id"]) for _ in range(3)]
    assert {e["status"] for e in done} == {"completed"}
    submit(client, "core.noop", delay=3600)
    insert_ended(url, client, 4, action_ref="s.older", ended_ago=10 * DAY, status="timeout")

    expected = {"total": 48, "completed": 33, "failed": 10, "running": 0, "pending": 1,
                "cancelled": 0, "timeout": 4, "abandoned": 0}  # fmt: skip
    assert stats(client) == expected == counted(deployment, project_id)
    assert stats(server.client(other_token))["completed"] == 7
    assert total(client) == 48
    assert total(client, status="completed") == 33
    assert total(client, status="completed,failed,requested") == 44
    assert total(client, status="running") == 0
    assert total(client, action_ref="s.old", status="failed") == 10  # counted the plain way

    # Deleting executions of sealed hours: the counts follow, the rollups stay.
    deleted = client.post("/api/v1/executions/bulk/delete", json={"ids": old_ok[:5] + old_bad[:2]})
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["summary"] == {"deleted": 7}
    assert stats(client) == {**expected, "total": 41, "completed": 28, "failed": 8}
    assert stats(client) == counted(deployment, project_id)
    assert total(client, status="failed") == 8
    assert rolled_up(deployment) == 47

    # Retention takes everything that ended more than a day ago: sealed or older.
    out = execd(deployment, "gc", "--days", "1")
    assert "deleted 44 executions" in out, out
    assert stats(client) == {**expected, "total": 4, "completed": 3, "failed": 0, "timeout": 0}
    assert stats(client) == counted(deployment, project_id)
    assert total(client) == 4
    assert stats(server.client(other_token)) == counted(deployment, other_project)

    # Sealed again from scratch, nothing changes.
    execd(deployment, "rollup", "--rebuild")
    assert stats(client) == counted(deployment, project_id)
    assert stats(server.client(other_token)) == counted(deployment, other_project)


def test_a_created_range_pages_newest_first_with_its_total(deployment: Deployment) -> None:
    server = deployment.server(workers=0)
    _, _, token = new_project(server.client())
    client = server.client(token)
    url = deployment.database_url
    # Created one per second: 30 two days ago, 20 one day ago, 10 now.
    older = insert_ended(url, client, 30, ended_ago=2 * DAY)
    day = insert_ended(url, client, 20, ended_ago=DAY)
    insert_ended(url, client, 10)
    rows = _created(url, day)
    # Bounds half a second from any execution: an ISO time holds microseconds, and
    # one rounded from a timestamp may land on either side of the execution it names.
    since, until = iso(rows[day[0]] - 0.5), iso(rows[day[-1]] - 0.5)  # the last left out

    def page(**params: str) -> dict[str, Any]:
        response = client.get("/api/v1/executions", params={"per_page": 8, **params})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    first = page(created_after=since, created_before=until)
    assert [e["id"] for e in first["data"]] == day[-2::-1][:8]
    assert first["pagination"]["total_items"] == 19
    third = page(created_after=since, created_before=until, page="3")
    assert [e["id"] for e in third["data"]] == day[-2::-1][16:]
    ids, cursor = [], ""
    while cursor is not None:
        body = page(created_after=since, created_before=until, cursor=cursor)
        ids += [e["id"] for e in body["data"]]
        cursor = body["pagination"]["next_cursor"]
    assert ids == day[-2::-1]
    before = page(created_before=since, status="completed")
    assert before["pagination"]["total_items"] == 30
    assert [e["id"] for e in before["data"]] == older[::-1][:8]
    nothing = page(created_after=until, created_before=until)
    assert nothing["data"] == [] and nothing["pagination"]["total_items"] == 0


def _created(database_url: str, ids: list[int]) -> dict[int, float]:
    engine = create_engine(sync_url(database_url))
    with engine.connect() as conn:
        rows = conn.execute(
            select(executions.c.id, executions.c.created).where(executions.c.id.in_(ids))
        ).all()
    engine.dispose()
    return {i: created for i, created in rows}


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()
