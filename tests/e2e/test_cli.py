"""The `execd` command as users run it: serve, migrate, token create --direct."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support import Deployment, Process, wait_for


def execd(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "execd", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_migrate_then_token_create(deployment: Deployment) -> None:
    env = deployment.env()
    migrated = execd("migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    assert "up to date" in migrated.stdout

    missing = execd("token", "create", "--direct", "--name", "ci", "--tenant", "acme", env=env)
    assert missing.returncode == 2
    assert "No tenant 'acme'" in missing.stderr and "Traceback" not in missing.stderr

    created = execd(
        "token", "create", "--direct", "--name", "ci", "--role", "viewer",
        "--tenant", "acme", "--project", "etl", "--create", env=env,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    fields = dict(re.findall(r"^(\w+):\s+(\S+)$", created.stdout, re.M))
    assert fields["token"].startswith("execd_")

    server = deployment.server(workers=0)
    me = server.client(fields["token"]).get("/api/v1/me")
    assert me.status_code == 200
    assert me.json()["data"] == {
        "tenant_id": fields["tenant"],
        "project_id": fields["project"],
        "role": "viewer",
        "scope": "project",
        "token_name": "ci",
    }


def test_serve_prints_its_url_and_keeps_a_generated_admin_token(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXECD_")}
    deployment = Deployment(database_url="", root=tmp_path)
    env.update(deployment.env())
    del env["EXECD_ADMIN_TOKEN"], env["EXECD_DATABASE_URL"]  # the defaults of `make run`
    data_dir = Path(env["EXECD_DATA_DIR"])

    def start_and_read_token() -> str:
        port = str(deployment_port := _port())
        log = tmp_path / f"serve-{port}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "execd", "serve", "--port", port],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            banner = wait_for(
                lambda: "admin token:" in log.read_text() and log.read_text(),
                message="the startup banner",
            )
            assert f"ready at http://127.0.0.1:{deployment_port}" in banner
            token = re.search(r"admin token: (\S+)", banner)
            assert token is not None
            response = httpx.get(
                f"http://127.0.0.1:{port}/api/v1/me",
                headers={"Authorization": f"Bearer {token.group(1)}"},
            )
            assert response.json()["data"]["role"] == "admin"
            return token.group(1)
        finally:
            process.terminate()
            # uvicorn re-raises the SIGTERM it handled once it has shut down cleanly.
            assert process.wait(timeout=30) in (0, -15)
            assert "Traceback" not in log.read_text()

    first = start_and_read_token()
    assert (data_dir / "execd.db").exists()
    token_file = data_dir / "admin-token"
    assert token_file.read_text().strip() == first
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert start_and_read_token() == first


def _port() -> int:
    from tests.support import free_port

    return free_port()


def test_worker_serves_the_devices_named_on_its_command_line(deployment: Deployment) -> None:
    server = deployment.server(workers=0)
    client = server.client()
    worker = Process(
        args=["worker", "--name", "w-cli", "--device", "bench-1", "--device", "bench-2"],
        env=deployment.env(),
        log_path=deployment.root / "worker-cli.log",
    )
    deployment.processes.append(worker.start())

    def registered() -> dict[str, object] | None:
        nodes = client.get("/api/v1/workers").json()["data"]
        return next((n for n in nodes if n["name"] == "w-cli"), None)

    node = wait_for(registered, message="worker registered")
    assert node["devices"] == ["bench-1", "bench-2"]
    devices = client.get("/api/devices").json()["devices"]
    assert [(d["id"], d["online"], [w["name"] for w in d["workers"]]) for d in devices] == [
        ("bench-1", True, ["w-cli"]),
        ("bench-2", True, ["w-cli"]),
    ]
