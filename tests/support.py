"""Test support: databases on both backends, real server and worker processes,
bounded polling. No bare sleeps: every wait has a deadline and a condition."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
import psycopg

from execd.store.schema import ROLLED_UP

PG_ADMIN = os.environ.get("EXECD_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
ADMIN_TOKEN = "execd_test_admin_token_0123456789"
IN_CI = os.environ.get("CI", "").lower() == "true"

# Short leases and quick loops, so recovery is observable within seconds.
FAST = {
    "EXECD_LEASE_SECONDS": "2",
    "EXECD_HEARTBEAT_SECONDS": "0.5",
    "EXECD_REAPER_SECONDS": "0.5",
    "EXECD_POLL_SECONDS": "0.2",
    "EXECD_KILL_GRACE_SECONDS": "1",
    "EXECD_SHUTDOWN_GRACE_SECONDS": "5",
    "EXECD_TOKEN_CACHE_SECONDS": "0.5",
    "EXECD_RULES_POLL_SECONDS": "0.2",
    "EXECD_LOG_LEVEL": "warning",
    # One API process unless a test asks for more (tests/e2e/test_api_processes.py).
    "EXECD_API_PROCESSES": "1",
}

T = TypeVar("T")


def wait_for(
    condition: Callable[[], T | bool | None],
    *,
    timeout: float = 20.0,
    interval: float = 0.05,
    message: str = "condition",
) -> T:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last  # type: ignore[return-value]
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message} (last: {last!r})")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def postgres_reachable() -> bool:
    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def _pg_url(name: str) -> str:
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


class PostgresDatabases:
    """Fresh databases cloned from one migrated template (fast, and isolated)."""

    def __init__(self) -> None:
        self.template = f"execd_tpl_{uuid.uuid4().hex[:10]}"
        self.created: list[str] = []
        self._admin(f'CREATE DATABASE "{self.template}"')
        from execd.store.migrate import upgrade

        upgrade(_pg_url(self.template))

    def _admin(self, sql: str) -> None:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(sql)

    def new(self) -> str:
        name = f"execd_t_{uuid.uuid4().hex[:12]}"
        self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        self.created.append(name)
        return _pg_url(name)

    def drop(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with contextlib.suppress(psycopg.Error):
            self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        for name in [*self.created, self.template]:
            with contextlib.suppress(psycopg.Error):
                self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class SqliteDatabases:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.template = root / "template.db"
        from execd.store.migrate import upgrade

        upgrade(f"sqlite:///{self.template}")

    def new(self) -> str:
        path = self.root / f"{uuid.uuid4().hex[:12]}.db"
        shutil.copyfile(self.template, path)
        return f"sqlite:///{path}"

    def drop(self, url: str) -> None:
        path = Path(url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(str(path) + suffix).unlink()

    def close(self) -> None:
        return None


@dataclass
class Process:
    """An execd process (server or worker) started the way a user starts it."""

    args: list[str]
    env: dict[str, str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self, cwd: Path | None = None) -> Process:
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "execd", *self.args],
            env=self.env,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait: the graceful path."""
        if not self.alive():
            return self.popen.returncode if self.popen else None
        assert self.popen is not None
        self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            message = f"execd {self.args[0]} did not stop on SIGTERM:\n{self.log()}"
            raise AssertionError(message) from None

    def kill(self) -> None:
        """SIGKILL: a crash. Its children (runs in their own sessions) are left to the reaper
        of the test, as they would be left on a real machine."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=10)


@dataclass
class Server(Process):
    port: int = 0
    clients: list[httpx.Client] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, cwd: Path | None = None) -> Server:
        super().start(cwd)

        def up() -> bool:
            if not self.alive():
                raise AssertionError(f"server exited early:\n{self.log()}")
            try:
                return httpx.get(self.url + "/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=30, interval=0.1, message="server health")
        return self

    def client(self, token: str = ADMIN_TOKEN) -> httpx.Client:
        client = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
            event_hooks={"response": [self._show_unexpected]},
        )
        self.clients.append(client)
        return client

    def _show_unexpected(self, response: httpx.Response) -> None:
        """A 500 is never meant: the server's traceback goes into the test's report."""
        if response.status_code == 500:
            tail = "\n".join(self.log().splitlines()[-60:])
            print(
                f"--- {response.request.method} {response.request.url.path} answered 500; "
                f"the end of {self.log_path.name} ---\n{tail}"
            )

    def close_clients(self) -> None:
        for client in self.clients:
            client.close()
        self.clients.clear()


def process_gone(pid: int) -> bool:
    """Gone, or a zombie nobody has reaped yet (it runs nothing any more)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def children_running(pid: int, command: str) -> list[int]:
    """The live child processes of `pid` that run `execd <command>`."""
    found = []
    for child in psutil.Process(pid).children():
        with contextlib.suppress(psutil.Error):  # gone, or a zombie not yet reaped
            if child.status() != psutil.STATUS_ZOMBIE and command in child.cmdline():
                found.append(child.pid)
    return found


@dataclass
class Deployment:
    """Servers and workers sharing one database and data directory."""

    database_url: str
    root: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: list[Process] = field(default_factory=list)

    def env(self, **overrides: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EXECD_")}
        env.update(FAST)
        env.update(
            EXECD_DATABASE_URL=self.database_url,
            EXECD_DATA_DIR=str(self.root / "data"),
            EXECD_ADMIN_TOKEN=ADMIN_TOKEN,
        )
        env.update(self.extra_env)
        env.update(overrides)
        return env

    def server(self, *, workers: int | None = 1, **env: str) -> Server:
        """`workers`: worker loops in the server's process; None: the default split
        (worker processes by the core count, or EXECD_WORKER_PROCESSES in `env`)."""
        port = free_port()
        if workers is not None:
            env["EXECD_EMBEDDED_WORKERS"] = str(workers)
        server = Server(
            args=["serve"],
            env=self.env(EXECD_PORT=str(port), **env),
            log_path=self.root / f"server-{port}.log",
            port=port,
        )
        self.processes.append(server)
        return server.start()

    def worker(self, name: str, **env: str) -> Process:
        worker = Process(
            args=["worker"],
            env=self.env(EXECD_WORKER_NAME=name, **env),
            log_path=self.root / f"worker-{name}.log",
        )
        self.processes.append(worker)
        return worker.start()

    def print_logs(self, lines: int = 300) -> None:
        """The end of each process's log, for a failed test's report."""
        for process in self.processes:
            tail = process.log().splitlines()[-lines:]
            print(f"--- the last {len(tail)} lines of {process.log_path.name} ---")
            print("\n".join(tail))

    def close(self) -> None:
        for process in reversed(self.processes):
            if isinstance(process, Server):
                process.close_clients()
            with contextlib.suppress(AssertionError):
                process.stop(timeout=20)
        self.processes.clear()


# -- API helpers ---------------------------------------------------------------------


def submit(
    client: httpx.Client, action_ref: str, parameters: dict[str, Any] | None = None, **kw: Any
) -> dict[str, Any]:
    response = client.post(
        "/api/v1/executions/execute",
        json={"action_ref": action_ref, "parameters": parameters or {}, **kw},
    )
    assert response.status_code in (200, 201), response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def get(client: httpx.Client, execution_id: int) -> dict[str, Any]:
    response = client.get(f"/api/v1/executions/{execution_id}")
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


TERMINAL = {"completed", "failed", "cancelled", "timeout", "abandoned"}


def wait_status(
    client: httpx.Client,
    execution_id: int,
    statuses: set[str] | str = frozenset(TERMINAL),
    timeout: float = 30.0,
) -> dict[str, Any]:
    wanted = {statuses} if isinstance(statuses, str) else set(statuses)

    def reached() -> dict[str, Any] | None:
        execution = get(client, execution_id)
        return execution if execution["status"] in wanted else None

    return wait_for(
        reached, timeout=timeout, message=f"execution {execution_id} in {sorted(wanted)}"
    )


def history(client: httpx.Client, execution_id: int) -> list[dict[str, Any]]:
    response = client.get(f"/api/v1/executions/{execution_id}/history")
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["data"]
    return events


def new_project(admin: httpx.Client, role: str = "operator") -> tuple[str, str, str]:
    """A fresh tenant and project, and a token for it: (tenant_id, project_id, token)."""
    tenant = admin.post("/api/v1/tenants", json={"name": f"t-{uuid.uuid4().hex[:8]}"})
    assert tenant.status_code == 201, tenant.text
    tenant_id = tenant.json()["data"]["id"]
    project = admin.post("/api/v1/projects", json={"tenant_id": tenant_id, "name": "p"})
    assert project.status_code == 201, project.text
    project_id = project.json()["data"]["id"]
    token = admin.post(
        "/api/v1/tokens", json={"name": "test", "role": role, "project_id": project_id}
    )
    assert token.status_code == 201, token.text
    return tenant_id, project_id, token.json()["data"]["token"]


def children_of(pid: int) -> Iterator[int]:
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(pid).children(recursive=True):
            yield child.pid


def insert_ended(
    database_url: str,
    client: httpx.Client,
    count: int,
    *,
    action_ref: str = "core.noop",
    ended_ago: float = 0.0,
    status: str = "completed",
    parent_ids: list[int] | None = None,
) -> list[int]:
    """`count` executions of the client's project, written straight into the database
    (as many through the API would take minutes), oldest first; their ids. They ended
    `ended_ago` seconds ago (an unfinished `status` has them waiting instead); with
    `parent_ids`, the n-th is a child of the n-th parent."""
    from sqlalchemy import create_engine, insert

    from execd.store.database import sync_url
    from execd.store.schema import executions

    me = client.get("/api/v1/me").json()["data"]
    pack = action_ref.split(".", 1)[0]
    now = time.time() - ended_ago
    ended = status in TERMINAL
    ids: list[int] = []
    engine = create_engine(sync_url(database_url))
    with engine.begin() as conn:
        for start in range(0, count, 10_000):
            rows = [
                {
                    "uuid": str(uuid.uuid4()),
                    "tenant_id": me["tenant_id"],
                    "project_id": me["project_id"],
                    "action_ref": action_ref,
                    "pack": pack,
                    "runner": "local",
                    "entry_point": "noop",
                    "parameters": {"n": n},
                    "status": status,
                    "priority": 1,
                    "attempt": 1,
                    "max_attempts": 1,
                    "fence": 1,
                    "parent_id": parent_ids[n] if parent_ids else None,
                    "created": now - count + n,
                    "updated": now - count + n,
                    "started": now - count + n,
                    "ended": now - count + n + 0.01 if ended else None,
                    "result": {"message": "x" * 50} if ended else None,
                }
                for n in range(start, min(count, start + 10_000))
            ]
            ids += conn.execute(insert(executions).returning(executions.c.id), rows).scalars()
    engine.dispose()
    return ids


def ended_in(rollups: Any) -> Any:
    """What a rollup row counts: the sum of its status columns."""
    return sum((rollups.c[status] for status in ROLLED_UP[1:]), rollups.c[ROLLED_UP[0]])
