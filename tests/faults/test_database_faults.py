"""Fault injection: PostgreSQL restarted under load, on a throw-away cluster this test
starts itself with the installed PostgreSQL binaries (never the machine's own server).
Every submission acknowledged is kept and runs to its end; while the database is down,
calls answer 503, never 500; the service comes back by itself."""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import Deployment, free_port, wait_for, wait_status

pytestmark = pytest.mark.fault
BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin"))


def _as_postgres(*argv: str) -> None:
    subprocess.run(
        ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", *argv],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip


@pytest.fixture
def cluster() -> Iterator[tuple[str, list[str]]]:
    """A PostgreSQL cluster of the test's own: its URL, and pg_ctl for it (a command to
    complete with what to do; its log goes to a file, so nothing holds our pipes)."""
    missing = not BIN or os.geteuid() != 0 or shutil.which("setpriv") is None
    if missing:
        reason = "needs root, setpriv and the PostgreSQL server binaries"
        if os.environ.get("CI") == "true":
            pytest.fail(f"the fault suite runs in CI: {reason}")
        pytest.skip(reason)
    bin_dir = BIN[-1]
    base = Path(tempfile.mkdtemp(prefix="execd-pg-"))
    base.chmod(0o755)
    data = base / "data"
    shutil.chown(base, "postgres", "postgres")
    port = free_port()
    _as_postgres(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                 "--no-sync")  # fmt: skip
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
    ctl = [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-o", options]
    _as_postgres(*ctl, "-w", "start")
    try:
        _as_postgres(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "execd")
        yield f"postgresql://postgres@127.0.0.1:{port}/execd", ctl
    finally:
        subprocess.run(
            ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups",
             *ctl, "-m", "immediate", "stop"],
            capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)


def test_postgresql_restarted_under_load_loses_nothing_and_answers_503(
    cluster: tuple[str, list[str]], tmp_path: Path, report: Callable[[str], None]
) -> None:
    url, ctl = cluster
    deployment = Deployment(database_url=url, root=tmp_path)
    try:
        server = deployment.server(workers=1)
        client = server.client()
        acknowledged: list[int] = []
        answers: Counter[str] = Counter()
        lock = threading.Lock()
        stop = threading.Event()

        def submitting() -> None:
            while not stop.is_set():
                try:
                    response = client.post(
                        "/api/v1/executions/execute", json={"action_ref": "core.noop"}
                    )
                except httpx.HTTPError:
                    with lock:
                        answers["no answer"] += 1
                    continue
                with lock:
                    answers[str(response.status_code)] += 1
                    if response.status_code == 201:
                        acknowledged.append(response.json()["data"]["id"])
                if response.status_code == 503:
                    time.sleep(0.05)

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            clients = [pool.submit(submitting) for _ in range(4)]
            wait_for(lambda: len(acknowledged) >= 100, timeout=60, message="100 acknowledged")
            restarted_at = time.monotonic()
            _as_postgres(*ctl, "-m", "fast", "-w", "restart")
            before = len(acknowledged)
            wait_for(lambda: len(acknowledged) >= before + 100, timeout=60,
                     message="100 more acknowledged after the restart")  # fmt: skip
            back_after = time.monotonic() - restarted_at
            stop.set()
            for done in clients:
                done.result()
        lost = [i for i in acknowledged if client.get(f"/api/v1/executions/{i}").status_code != 200]
        ended = [wait_status(client, i, timeout=60)["status"] for i in acknowledged[-50:]]
        stuck = sum(1 for status in ended if status != "completed")
        report(
            f"PostgreSQL restarted under load: answers {dict(answers)}, acknowledged"
            f" {len(acknowledged)}, lost {len(lost)}, stuck {stuck} (of the last 50),"
            f" back within {back_after:.1f} s"
        )
        assert not lost and stuck == 0
        assert not [a for a in answers if a.startswith("5") and a != "503"], answers
    finally:
        deployment.close()
