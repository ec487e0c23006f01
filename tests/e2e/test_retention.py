"""Retention (issue 5): `execd gc` deletes ended executions past their time, with their
logs and artifacts, keeps the newest per action, and never touches unfinished work."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, update

from execd.store.database import sync_url
from execd.store.schema import executions
from tests.support import Deployment, insert_ended, submit, wait_for, wait_status


def run_gc(deployment: Deployment, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "execd", "gc", *args],
        env=deployment.env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def gc(deployment: Deployment, *args: str, **env: str) -> str:
    done = run_gc(deployment, *args, **env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_gc_deletes_what_the_policy_lets_go(deployment: Deployment) -> None:
    server = deployment.server(workers=1)
    client = server.client()
    for ref, script in (
        ("keep.ok", 'echo ok > "$EXECD_ARTIFACTS_DIR/a.txt"'),
        ("keep.bad", "exit 1"),
    ):
        body = {"ref": ref, "runner": "shell", "entry_point": script}
        assert client.post("/api/v1/actions", json=body).status_code == 201
    ok = [wait_status(client, submit(client, "keep.ok")["id"]) for _ in range(3)]
    bad = [wait_status(client, submit(client, "keep.bad")["id"]) for _ in range(2)]
    running = submit(client, "core.sleep", {"seconds": 60})
    wait_status(client, running["id"], "running")
    project = client.get("/api/v1/me").json()["data"]["project_id"]
    artifacts = Path(deployment.root) / "data" / "artifacts" / project
    assert all((artifacts / e["uuid"] / "artifacts" / "a.txt").is_file() for e in ok)

    # Everything that ended did so "ten days ago".
    engine = create_engine(sync_url(deployment.database_url))
    with engine.begin() as conn:
        conn.execute(
            update(executions)
            .where(executions.c.ended.is_not(None))
            .values(ended=time.time() - 10 * 86400)
        )
    engine.dispose()

    dry = gc(deployment, "--dry-run", EXECD_RETENTION_DAYS_FAILED="7")
    assert "would delete 2 executions" in dry
    assert all(client.get(f"/api/v1/executions/{e['id']}").status_code == 200 for e in bad)

    # --days sets the policy for this run, whatever a per-status setting says.
    out = gc(
        deployment,
        "--days",
        "7",
        EXECD_RETENTION_KEEP_PER_ACTION="1",
        EXECD_RETENTION_DAYS_COMPLETED="30",
    )
    assert re.search(r"deleted 3 executions", out), out  # 2 of keep.ok, 1 of keep.bad
    remaining = {e["id"] for e in client.get("/api/v1/executions").json()["data"]}
    assert remaining == {ok[-1]["id"], bad[-1]["id"], running["id"]}
    assert not (artifacts / ok[0]["uuid"]).exists()
    assert (artifacts / ok[-1]["uuid"] / "artifacts" / "a.txt").is_file()
    assert client.get(f"/api/v1/executions/{running['id']}").json()["data"]["status"] == "running"

    refused = run_gc(deployment)
    assert refused.returncode == 2 and "no retention policy" in refused.stderr
    client.post(f"/api/v1/executions/{running['id']}/cancel")


def test_serve_sweeps_past_what_it_cannot_delete(deployment: Deployment) -> None:
    """The periodic sweep of `execd serve`: more than a batch of old executions that
    cannot go yet (a child still waits) does not stop it from deleting what can, and
    the newest of each action are kept."""
    # The history is written while no sweep runs: a sweep between the parents and their
    # children would find the parents free to go.
    writer = deployment.server(workers=0)
    client = writer.client()
    ten_days = 10 * 86400
    held = insert_ended(
        deployment.database_url, client, 250, action_ref="ret.held", ended_ago=ten_days
    )
    waiting = insert_ended(
        deployment.database_url, client, 250, status="requested", parent_ids=held
    )
    free = insert_ended(
        deployment.database_url, client, 50, action_ref="ret.free", ended_ago=ten_days
    )
    assert max(held) < min(free)  # the held ones come first in every batch
    writer.stop()
    server = deployment.server(
        workers=0,
        EXECD_RETENTION_DAYS="7",
        EXECD_RETENTION_SECONDS="0.5",
        EXECD_RETENTION_KEEP_PER_ACTION="2",
    )
    client = server.client()

    def count(ref: str) -> int:
        response = client.get("/api/v1/executions", params={"action_ref": ref, "per_page": 1})
        total: int = response.json()["pagination"]["total_items"]
        return total

    wait_for(lambda: count("ret.free") == 2, timeout=30, message="the sweep of ret.free")
    kept = client.get("/api/v1/executions", params={"action_ref": "ret.free"}).json()["data"]
    assert sorted(e["id"] for e in kept) == free[-2:]
    assert count("ret.held") == 250
    assert count("core.noop") == len(waiting)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # only the file matters
def test_a_dry_run_changes_nothing(deployment: Deployment, tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    elsewhere = {"EXECD_DATABASE_URL": f"sqlite:///{empty}"}
    done = run_gc(deployment, "--dry-run", "--days", "1", **elsewhere)
    assert done.returncode == 2, done.stderr
    assert "execd migrate" in done.stderr
    assert not empty.exists()  # not even an empty file
    # An existing database of an older version is left as it is.
    with sqlite3.connect(empty) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
        conn.execute("INSERT INTO alembic_version VALUES ('0004')")
    again = run_gc(deployment, "--dry-run", "--days", "1", **elsewhere)
    assert again.returncode == 2 and "execd migrate" in again.stderr
    with sqlite3.connect(empty) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("0004",)]
        tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        assert tables == [("alembic_version",)]
