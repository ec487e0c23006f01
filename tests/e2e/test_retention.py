"""Retention (issue 5): `execd gc` deletes ended executions past their time, with their
logs and artifacts, keeps the newest per action, and never touches unfinished work."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine, update

from execd.store.database import sync_url
from execd.store.schema import executions
from tests.support import Deployment, submit, wait_status


def gc(deployment: Deployment, *args: str, **env: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "execd", "gc", *args],
        env=deployment.env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )
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

    out = gc(deployment, "--days", "7", EXECD_RETENTION_KEEP_PER_ACTION="1")
    assert re.search(r"deleted 3 executions", out), out  # 2 of keep.ok, 1 of keep.bad
    remaining = {e["id"] for e in client.get("/api/v1/executions").json()["data"]}
    assert remaining == {ok[-1]["id"], bad[-1]["id"], running["id"]}
    assert not (artifacts / ok[0]["uuid"]).exists()
    assert (artifacts / ok[-1]["uuid"] / "artifacts" / "a.txt").is_file()
    assert client.get(f"/api/v1/executions/{running['id']}").json()["data"]["status"] == "running"

    refused = subprocess.run(
        [sys.executable, "-m", "execd", "gc"], env=deployment.env(), capture_output=True, text=True
    )
    assert refused.returncode == 2 and "no retention policy" in refused.stderr
    client.post(f"/api/v1/executions/{running['id']}/cancel")
