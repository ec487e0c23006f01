"""Timers and execution triggers with two servers on one database (issue 5): a cron
timer fires once per due time, each status change fires an execution trigger once,
and after downtime each catch-up policy does what docs/rules.md says."""

from __future__ import annotations

import itertools
import time
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, update

from execd.store.database import sync_url
from execd.store.schema import triggers
from tests.support import Deployment, new_project, submit, wait_for, wait_status


def make(client: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(path, json=body)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def fired(client: httpx.Client, rule: str) -> list[dict[str, Any]]:
    response = client.get("/api/v1/enforcements", params={"rule": rule, "per_page": 100})
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["data"]
    return found


def timer(client: httpx.Client, ref: str, config: dict[str, Any]) -> None:
    make(client, "/api/v1/triggers", {"ref": ref, "type": "timer", "config": config})
    make(client, "/api/v1/rules", {"ref": ref, "trigger": ref, "action_ref": "core.noop"})


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_two_servers_fire_a_cron_timer_once_per_minute(deployment: Deployment) -> None:
    first = deployment.server(workers=1)
    second = deployment.server(workers=1)
    _, _, token = new_project(first.client())
    one, two = first.client(token), second.client(token)
    started = time.time()
    timer(one, "every-minute", {"cron": "* * * * *", "timezone": "Europe/Berlin"})
    # An interval timer at the same time: one firing per second, not two.
    timer(two, "every-second", {"interval": 1})

    # The interval timer first: five firings, each due second once, none skipped.
    seconds = wait_for(
        lambda: len(found := fired(one, "every-second")) >= 5 and found,
        timeout=30,
        message="five interval firings",
    )
    times = [datetime.fromisoformat(e["payload"]["scheduled_time"]).timestamp() for e in seconds]
    assert len(set(times)) == len(times), "a due time fired twice"
    ordered = sorted(times)
    assert all(round(b - a, 3) == 1.0 for a, b in itertools.pairwise(ordered)), (
        "a due time was skipped"
    )

    # The cron timer: two consecutive minutes, each fired once between both servers.
    wait_for(
        lambda: len(fired(one, "every-minute")) >= 2,
        timeout=135,
        interval=0.5,
        message="two minutes of the cron timer",
    )
    time.sleep(2)  # a second server that was late would have fired by now
    minutes = fired(two, "every-minute")
    due = sorted(datetime.fromisoformat(e["payload"]["scheduled_time"]) for e in minutes)
    assert len(due) == 2, minutes
    assert all(d.second == 0 and d.microsecond == 0 for d in due)
    assert due[0].timestamp() > started  # the first minute that turned after the timer was made
    assert (due[1] - due[0]).total_seconds() == 60, due


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_two_servers_fire_an_execution_trigger_once_per_status_change(
    deployment: Deployment,
) -> None:
    first = deployment.server(workers=1)
    second = deployment.server(workers=1)
    _, _, token = new_project(first.client())
    one, two = first.client(token), second.client(token)
    config = {"action_ref": "core.echo", "statuses": ["completed"]}
    make(one, "/api/v1/triggers", {"ref": "echo-done", "type": "execution", "config": config})
    make(one, "/api/v1/rules", {"ref": "after-echo", "trigger": "echo-done",
                                "action_ref": "core.noop"})  # fmt: skip
    # Submitted through both servers, run by both servers' workers, followed by both.
    ids = [submit(c, "core.echo", {"message": str(n)})["id"] for n, c in enumerate([one, two] * 15)]
    for execution_id in ids:
        assert wait_status(one, execution_id)["status"] == "completed"
    wait_for(lambda: len(fired(one, "after-echo")) >= len(ids), timeout=30, message="30 firings")
    time.sleep(2)  # a second firing of any of them would have happened by now
    sources = [e["payload"]["execution"]["id"] for e in fired(two, "after-echo")]
    assert sorted(sources) == sorted(ids)


def test_missed_due_times_follow_the_catch_up_policy(deployment: Deployment) -> None:
    server = deployment.server(workers=1)
    _, _, token = new_project(server.client())
    client = server.client(token)
    for policy in ("all", "latest", "skip"):
        timer(client, f"catch-{policy}", {"interval": 120, "catch_up": policy})
    timer(client, "cron-all", {"cron": "* * * * *", "timezone": "UTC", "catch_up": "all"})
    # The service was "down" for ten minutes: each timer's due time is long past.
    missed_minute = (time.time() // 60) * 60 - 300
    engine = create_engine(sync_url(deployment.database_url))
    with engine.begin() as conn:
        conn.execute(
            update(triggers)
            .where(triggers.c.ref.like("catch-%"))
            .values(next_fire=time.time() - 590)
        )
        conn.execute(
            update(triggers).where(triggers.c.ref == "cron-all").values(next_fire=missed_minute)
        )
    engine.dispose()

    # The cron timer fires every minute it missed, from the first, each once.
    minutes = wait_for(lambda: len(found := fired(client, "cron-all")) >= 6 and found)
    due = sorted(
        datetime.fromisoformat(e["payload"]["scheduled_time"]).timestamp() for e in minutes
    )
    assert due[0] == missed_minute
    assert all(b - a == 60 for a, b in itertools.pairwise(due)), due

    every = wait_for(lambda: len(found := fired(client, "catch-all")) >= 5 and found)
    latest = wait_for(lambda: fired(client, "catch-latest"))
    skip_timer = wait_for(
        lambda: (
            (t := client.get("/api/v1/triggers/catch-skip").json()["data"])["next_fire"]
            and datetime.fromisoformat(t["next_fire"]).timestamp() > time.time()
            and t
        )
    )
    assert len(every) == 5  # 590, 470, 350, 230 and 110 seconds ago
    # Each was late by more than the misfire grace (60 s).
    assert all(e["payload"]["catch_up"] and e["payload"]["skipped"] == 0 for e in every)
    # "latest" fired once, for the last due time (110 s ago), and let four go; "skip"
    # let all go, the last being later than the grace.
    assert len(latest) == 1
    assert latest[0]["payload"]["skipped"] == 4 and latest[0]["payload"]["catch_up"]
    assert fired(client, "catch-skip") == []
    assert skip_timer["enabled"] is True
    # Each moved on to its next due time in the future.
    for policy in ("all", "latest"):
        data = client.get(f"/api/v1/triggers/catch-{policy}").json()["data"]
        assert datetime.fromisoformat(data["next_fire"]).timestamp() > time.time()
