"""The `execd` command as users run it: serve, migrate, token create --direct."""

from __future__ import annotations

import os
import pty
import re
import select
import socket
import stat
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from execd.store.migrate import current_head
from tests.support import Deployment, Process, wait_for


def execd(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "execd", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_migrate_says_what_it_did(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXECD_")}
    env.update(EXECD_DATA_DIR=str(tmp_path), EXECD_DATABASE_URL=f"sqlite:///{tmp_path}/new.db")
    made = execd("migrate", env=env)
    assert made.returncode == 0, made.stderr
    head = current_head()
    assert made.stdout == f"database migrated: schema none (a new database) -> {head}\n"
    again = execd("migrate", env=env)
    assert again.stdout == f"database is up to date (schema {head})\n"


def test_version_as_a_command_and_as_an_option() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXECD_")}
    command, option = execd("version", env=env), execd("--version", env=env)
    assert command.returncode == option.returncode == 0, option.stderr
    assert option.stdout == command.stdout and re.fullmatch(r"\d+\.\d+\.\d+\S*\n", option.stdout)


def test_migrate_then_token_create(deployment: Deployment) -> None:
    env = deployment.env()
    migrated = execd("migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    assert f"database is up to date (schema {current_head()})" in migrated.stdout

    missing = execd("token", "create", "--direct", "--name", "ci", "--tenant", "acme", env=env)
    assert missing.returncode == 2
    assert "No tenant 'acme'" in missing.stderr and "Traceback" not in missing.stderr

    created = execd(
        "token", "create", "--direct", "--name", "ci", "--role", "viewer",
        "--tenant", "acme", "--project", "etl", "--create", env=env,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    fields = dict(re.findall(r"^(\w+)\s+(\S+)$", created.stdout, re.M))
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


def _serve_banner(env: dict[str, str], out: Any, read: Callable[[], str]) -> str:
    """Start `execd serve` with its output to `out`, return its banner, and stop it."""
    port = str(_port())
    process = subprocess.Popen(
        [sys.executable, "-m", "execd", "serve", "--port", port],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    try:
        banner = wait_for(lambda: "admin token" in (text := read()) and text, message="banner")
        assert f"ready at http://127.0.0.1:{port}" in banner
        token = env.get("EXECD_ADMIN_TOKEN")
        if token is None:
            token = (Path(env["EXECD_DATA_DIR"]) / "admin-token").read_text().strip()
        me = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/me", headers={"Authorization": f"Bearer {token}"}
        )
        assert me.json()["data"]["role"] == "admin"
        return read()  # answered: the whole banner was written before
    finally:
        process.terminate()
        # uvicorn re-raises the SIGTERM it handled once it has shut down cleanly.
        assert process.wait(timeout=30) in (0, -15)
        assert "Traceback" not in read()


def test_serve_keeps_a_generated_admin_token_and_never_logs_it(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXECD_")}
    deployment = Deployment(database_url="", root=tmp_path)
    env.update(deployment.env())
    del env["EXECD_ADMIN_TOKEN"], env["EXECD_DATABASE_URL"]  # the defaults of `make run`
    data_dir = Path(env["EXECD_DATA_DIR"])
    token_file = data_dir / "admin-token"

    def to_log(name: str) -> str:
        log = tmp_path / name
        with log.open("wb") as out:
            return _serve_banner(env, out, lambda: log.read_text())

    # Output to a file (a log): where the token is, never the token.
    first = to_log("first.log")
    token = token_file.read_text().strip()
    assert token.startswith("execd_") and token not in first
    assert f"admin token: made now, in {token_file}" in first
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert (data_dir / "execd.db").exists()
    again = to_log("again.log")
    assert f"admin token: in {token_file}" in again and token not in again
    assert token_file.read_text().strip() == token

    # Set by the operator: never printed.
    env["EXECD_ADMIN_TOKEN"] = chosen = "chosen-" + uuid.uuid4().hex
    told = to_log("chosen.log")
    assert "the one EXECD_ADMIN_TOKEN sets" in told and chosen not in told


@pytest.mark.parametrize("processes", ["1", "2"])
def test_serve_on_a_taken_port_says_so_before_anything_else(
    deployment: Deployment, processes: str
) -> None:
    # Taken as another execd takes it: SO_REUSEPORT, which a second one could share.
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        env = {**deployment.env(), "EXECD_PORT": str(port), "EXECD_API_PROCESSES": processes}
        refused = execd("serve", env=env)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert refused.stdout == ""  # no banner, no token
    assert f"port {port} on 127.0.0.1 is in use" in refused.stderr
    assert "EXECD_PORT=8091 make run" in refused.stderr and "Traceback" not in refused.stderr


def test_serve_shows_a_token_it_makes_once_to_a_terminal(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXECD_")}
    env.update(Deployment(database_url="", root=tmp_path).env())
    del env["EXECD_ADMIN_TOKEN"], env["EXECD_DATABASE_URL"]
    token_file = Path(env["EXECD_DATA_DIR"]) / "admin-token"

    def on_terminal() -> str:
        leader, follower = pty.openpty()
        seen = bytearray()

        def read() -> str:
            while select.select([leader], [], [], 0)[0]:
                try:
                    seen.extend(os.read(leader, 65536))
                except OSError:
                    break
            return seen.decode(errors="replace")

        try:
            return _serve_banner(env, follower, read)
        finally:
            os.close(follower)
            os.close(leader)

    first = on_terminal()
    token = token_file.read_text().strip()
    assert "shown this once" in first and token in first
    second = on_terminal()
    assert f"admin token: in {token_file}" in second and token not in second


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
