"""Escape attempts: an operator of tenant B runs actions that try to reach the server,
the database, tenant A's running action and files, and the machine. Each attempt must
fail, and each test reads what the action printed about its attempt, not merely that
it printed nothing. Real server, both backends, the sandbox as `execd serve` sets it up.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from execd.runners import cgroups
from tests.support import (
    ADMIN_TOKEN,
    IN_CI,
    Deployment,
    Server,
    new_project,
    submit,
    wait_for,
    wait_status,
)

UID_BASE = 3_000_000  # EXECD_SANDBOX_UID_BASE's default


def _run(client: httpx.Client, cmd: str, **kw: Any) -> tuple[dict[str, Any], str]:
    done = wait_status(client, submit(client, "core.shell", {"cmd": cmd}, **kw)["id"], timeout=60)
    return done, _output(client, done["id"])


def _output(client: httpx.Client, execution_id: int) -> str:
    out = client.get(f"/api/v1/executions/{execution_id}/output/stdout").text
    return out + client.get(f"/api/v1/executions/{execution_id}/output/stderr").text


def _section(said: str, name: str) -> str:
    return said.split(f"== {name}\n", 1)[1].split("\n== ", 1)[0]


def _define(client: httpx.Client, ref: str, entry_point: str, **extra: Any) -> None:
    body = {"ref": ref, "runner": "shell", "entry_point": entry_point, **extra}
    created = client.post("/api/v1/actions", json=body)
    assert created.status_code == 201, created.text


@pytest.fixture
def tenants(shared_server: Server, admin: httpx.Client) -> tuple[httpx.Client, httpx.Client]:
    """Tenant A (the victim) and tenant B (the attacker): an operator of each."""
    _, _, a = new_project(admin)
    _, _, b = new_project(admin)
    return shared_server.client(a), shared_server.client(b)


def test_an_action_reaches_nothing_of_the_service_or_of_other_tenants(
    shared_server: Server, tenants: tuple[httpx.Client, httpx.Client]
) -> None:
    a, b = tenants
    secret = f"SECRET-{uuid.uuid4().hex}"
    marker = f"ARTIFACT-{uuid.uuid4().hex}"
    _define(
        a,
        "victim.hold",
        "echo holding; sleep 120",
        parameters={
            "type": "object",
            "properties": {"api_key": {"type": "string", "secret": True}},
        },
    )
    made, _ = _run(a, f'echo {marker} > "$EXECD_ARTIFACTS_DIR/report.txt"')
    assert made["status"] == "completed"
    hold = submit(a, "victim.hold", {"api_key": secret})
    running = wait_status(a, hold["id"], "running")
    wait_for(lambda: a.get(f"/api/v1/executions/{hold['id']}").json()["data"]["pid"])
    sandbox_pid = a.get(f"/api/v1/executions/{hold['id']}").json()["data"]["pid"]
    victim_pids = [sandbox_pid, *(p.pid for p in psutil.Process(sandbox_pid).children(True))]

    data_dir = Path(shared_server.env["EXECD_DATA_DIR"])
    a_project = a.get("/api/v1/me").json()["data"]["project_id"]
    report = data_dir / "artifacts" / a_project / made["uuid"] / "artifacts" / "report.txt"
    assert report.read_text().strip() == marker  # it is there, for the service
    database = shared_server.env["EXECD_DATABASE_URL"].removeprefix("sqlite:///")
    theirs = f"{a_project}/{made['uuid']}/artifacts/report.txt"
    scan = "cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c PARAM_API_KEY"
    probe = f"""
        exec 2>&1
        echo "== server environ"; tr '\\0' '\\n' < /proc/{shared_server.pid}/environ
        echo "== init environ"; tr '\\0' '\\n' < /proc/1/environ
        echo "== processes"; ls /proc | grep -c '^[0-9]'
        echo "== environ scan"; {scan}
        echo "== walk up"; ls -a "$EXECD_ARTIFACTS_DIR/../../.." | tr '\\n' ' '; echo
        echo "== other artifacts"; cat "$EXECD_ARTIFACTS_DIR/../../{theirs}" {report}
        echo "== database"; head -c 16 {database}; ls {data_dir}
        echo "== postgres socket"; ls /var/run/postgresql
        echo "== writes"; for p in /usr/x /etc/x /x /execd/x {data_dir}/x; do touch "$p"; done
        echo "== signal"; kill -9 {" ".join(map(str, victim_pids))}; echo "exit $?"
        echo "== end"
    """
    done, said = _run(b, probe)
    assert done["status"] == "completed", said

    assert ADMIN_TOKEN not in said and secret not in said and marker not in said
    assert "EXECD_DATABASE_URL" not in said and "EXECD_ADMIN_TOKEN" not in said
    assert "No such file" in _section(said, "server environ")
    # The sandbox's init belongs to another uid (root), or is the action's own.
    init = _section(said, "init environ")
    assert "Permission denied" in init or "EXECD_EXECUTION_ID" in init
    assert int(_section(said, "processes")) <= 5
    assert _section(said, "environ scan").strip() == "0"
    top = set(_section(said, "walk up").split())
    assert "execd" in top and a_project not in top and "artifacts" not in top
    assert _section(said, "other artifacts").count("No such file or directory") == 2
    assert _section(said, "database").count("No such file or directory") == 2
    assert "No such file or directory" in _section(said, "postgres socket")
    writes = _section(said, "writes").splitlines()
    assert len(writes) == 5 and all(line.startswith("touch: cannot touch") for line in writes)
    assert not (data_dir / "x").exists() and not Path("/x").exists()
    signal = _section(said, "signal")
    assert signal.count("No such process") == len(victim_pids) and "exit 1" in signal

    # Tenant A is untouched: its action still runs, its file is still there.
    assert a.get(f"/api/v1/executions/{hold['id']}").json()["data"]["status"] == "running"
    assert report.read_text().strip() == marker
    assert running["config"]["api_key"] == "********"
    assert a.post(f"/api/v1/executions/{hold['id']}/cancel").status_code == 200
    wait_status(a, hold["id"], "cancelled")


def test_a_fork_bomb_stops_at_the_process_limit(
    shared_server: Server, tenants: tuple[httpx.Client, httpx.Client]
) -> None:
    _, b = tenants
    _define(b, "bomb.fork", "bomb() { bomb | bomb & }; bomb; sleep 2", limits={"processes": 32})
    done = wait_status(b, submit(b, "bomb.fork")["id"], timeout=60)
    assert done["status"] == "failed"
    assert done["error"] == "process limit reached: 32 processes and threads"
    assert "Cannot fork" in _output(b, done["id"])
    assert httpx.get(shared_server.url + "/healthz", timeout=5).status_code == 200

    assert shared_server.popen is not None
    server = psutil.Process(shared_server.popen.pid)

    def sandboxed(process: psutil.Process) -> bool:
        try:
            return bool(process.uids().real >= UID_BASE)
        except psutil.NoSuchProcess:
            return False

    def nothing_left() -> bool:  # of this server's runs (other tests may run sandboxes now)
        return not [p for p in server.children(recursive=True) if sandboxed(p)]

    wait_for(nothing_left, message="no process of a sandbox uid left")


def test_each_limit_ends_the_run_failed_with_its_reason(
    tenants: tuple[httpx.Client, httpx.Client],
) -> None:
    _, b = tenants
    cases = {
        "memory": (
            "python3 -c 'x = bytearray(300 * 1024 * 1024)'",
            {"memory_bytes": 64 * 1024 * 1024},
            "memory limit reached: more than 64 MiB refused",
        ),
        "cpu": ("while :; do :; done", {"cpu_seconds": 1}, "CPU time limit reached"),
        # A file in /tmp (a tmpfs) is no process's memory: the run's cgroup counts it.
        "tmpfs": (
            "head -c 300000000 /dev/zero > /tmp/fill",
            {"memory_bytes": 64 * 1024 * 1024},
            "memory limit reached: more than 64 MiB in use (the kernel stopped a process)",
        ),
        "output": ("yes 'some output'", {"output_bytes": 8192}, "output limit reached"),
    }
    if cgroups.detect(None) is None and not IN_CI:  # the server here cannot make them either
        del cases["tmpfs"]
    for name, (script, limits, _) in cases.items():
        _define(b, f"limits.{name}", script, limits=limits)
        shown = b.get(f"/api/v1/actions/limits.{name}").json()["data"]
        assert shown["limits"] == limits and shown["network"] is True
    runs = {name: submit(b, f"limits.{name}")["id"] for name in cases}
    for name, (_, _, reason) in cases.items():
        done = wait_status(b, runs[name], timeout=60)
        assert done["status"] == "failed", (name, done)
        assert done["error"].startswith(reason), (name, done["error"])
    refused = b.post(
        "/api/v1/actions",
        json={"ref": "limits.bad", "runner": "shell", "entry_point": "true", "limits": {"x": 1}},
    )
    assert refused.status_code == 400
    assert "Unknown limits: x" in refused.json()["error"]


def test_network_can_be_turned_off_per_action(
    shared_server: Server, tenants: tuple[httpx.Client, httpx.Client]
) -> None:
    _, b = tenants
    port = shared_server.port
    connect = (
        'python3 -c "import socket; s = socket.socket(); s.settimeout(5); '
        f"print('reached' if s.connect_ex(('127.0.0.1', {port})) == 0 else 'unreachable')\""
    )
    _define(b, "net.off", connect, network=False)
    _define(b, "net.on", connect)
    assert b.get("/api/v1/actions/net.off").json()["data"]["network"] is False
    off = wait_status(b, submit(b, "net.off")["id"])
    on = wait_status(b, submit(b, "net.on")["id"])
    assert _output(b, off["id"]).strip() == "unreachable"
    assert _output(b, on["id"]).strip() == "reached"


def test_the_tenant_api_defines_sandbox_options_too(
    shared_server: Server, admin: httpx.Client
) -> None:
    tenant_id, project_id, token = new_project(admin)
    client = shared_server.client(token)
    base = f"/api/{tenant_id}/{project_id}/action"
    body = {
        "name": "offline",
        "runner": "shell",
        "entryPoint": "true",
        "network": False,
        "limits": {"processes": 8},
    }
    created = client.post(base, json=body)
    assert created.status_code in (200, 201), created.text
    shown = created.json()
    assert shown["network"] is False and shown["limits"] == {"processes": 8}
    bad = client.post(base, json={**body, "name": "bad", "limits": {"processes": 0}})
    assert bad.status_code == 400 and "limits.processes" in bad.text


def test_an_unsandboxed_worker_says_so_everywhere(deployment: Deployment) -> None:
    server = deployment.server(EXECD_SANDBOX="none")
    assert "WARNING: EXECD_SANDBOX=none: actions run unsandboxed" in server.log()
    admin = server.client()
    system = admin.get("/api/v1/system").json()["data"]
    assert system["sandbox"] == "none"
    assert system["warnings"] and "unsandboxed" in system["warnings"][0]
    me = admin.get("/api/v1/me").json()["data"]
    status = admin.get(f"/api/{me['tenant_id']}/execution/system/status").json()
    assert status["sandbox"] == "none" and status["warnings"]
    assert {n["sandbox"] for n in status["executionNodes"]} == {"none"}
    assert admin.get("/api/v1/workers").json()["data"][0]["sandbox"] == "none"


def test_a_sandboxed_server_says_so(shared_server: Server, admin: httpx.Client) -> None:
    system = admin.get("/api/v1/system").json()["data"]
    assert system["sandbox"] == "bubblewrap" and system["warnings"] == []
    assert "WARNING" not in shared_server.log()


def test_the_data_directory_is_private(deployment: Deployment) -> None:
    server = deployment.server()
    client = server.client()
    done = wait_status(
        client, submit(client, "core.shell", {"cmd": 'echo x > "$EXECD_ARTIFACTS_DIR/a"'})["id"]
    )
    data_dir = Path(server.env["EXECD_DATA_DIR"])

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    assert mode(data_dir) == 0o700
    assert mode(data_dir / "secret-key") == 0o600
    if deployment.database_url.startswith("sqlite:///"):
        database = Path(deployment.database_url.removeprefix("sqlite:///"))
        assert mode(database) == 0o600 and mode(Path(f"{database}-wal")) == 0o600
    artifacts = [p for p in (data_dir / "artifacts").rglob("*")]
    assert artifacts and all(not mode(p) & 0o077 for p in artifacts), done


def test_a_data_directory_others_can_write_is_refused(deployment: Deployment) -> None:
    data_dir = deployment.root / "open"
    data_dir.mkdir()
    data_dir.chmod(0o777)
    env = deployment.env(EXECD_DATA_DIR=str(data_dir), EXECD_PORT="0")
    refused = subprocess.run(
        [sys.executable, "-m", "execd", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        f"error: the data directory {data_dir} is writable by every user (mode 0777): "
        f"make it private (chmod 700 {data_dir}) or choose another EXECD_DATA_DIR"
    )
    assert os.listdir(data_dir) == []


def _serve(env: dict[str, str], user: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*(user or []), sys.executable, "-m", "execd", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_data_directory_that_cannot_be_made_or_written_is_a_clear_refusal(
    deployment: Deployment,
) -> None:
    """Exit 2 and one line saying what and why: never a traceback from the database."""
    blocker = deployment.root / "a-file"
    blocker.write_text("not a directory")
    made = _serve(deployment.env(EXECD_DATA_DIR=str(blocker / "data"), EXECD_PORT="0"))
    assert made.returncode == 2, made.stderr
    assert made.stderr.strip() == (
        f"error: the data directory {blocker / 'data'} cannot be created (Not a directory): "
        "choose another EXECD_DATA_DIR"
    )
    # Not the service user's to write: a folder of root's, the server run as nobody.
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root to run the server as another user")
    base = Path(tempfile.mkdtemp(prefix="execd-not-yours-"))  # one nobody can reach
    try:
        base.chmod(0o755)
        data_dir = base / "roots"
        data_dir.mkdir(mode=0o755)
        env = deployment.env(EXECD_DATA_DIR=str(data_dir), EXECD_PORT="0")
        nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
        refused = _serve(env, nobody)
    finally:
        shutil.rmtree(base)
    assert refused.returncode == 2, refused.stderr
    assert "Traceback" not in refused.stderr
    assert refused.stderr.strip() == (
        f"error: the data directory {data_dir} cannot be written (Permission denied): give "
        "the service's user write access to it, or choose another EXECD_DATA_DIR"
    )
