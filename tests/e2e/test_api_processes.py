"""`execd serve` with EXECD_API_PROCESSES=2: a second process serves the API on the same
port (the kernel spreads connections over both), is watched and started again, stops
with the server, and one scrape of /metrics counts what both answered."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support import (
    ADMIN_TOKEN,
    Deployment,
    Server,
    children_running,
    free_port,
    process_gone,
    submit,
    wait_for,
    wait_status,
)

ROUTE = "/api/v1/me"


def _api_children(server: Server) -> list[int]:
    return children_running(server.pid, "api-process")


def _fresh_requests(server: Server, count: int) -> None:
    """Each on a connection of its own, as many clients would come."""
    for _ in range(count):
        answer = httpx.get(
            f"{server.url}{ROUTE}", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10
        )
        assert answer.status_code == 200, answer.text


def _answered(server: Server) -> float:
    """What a scrape (on a connection of its own) says all processes answered on ROUTE."""
    scraped = httpx.get(
        f"{server.url}/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10
    )
    assert scraped.status_code == 200
    total = 0.0
    for family in text_string_to_metric_families(scraped.text):
        for sample in family.samples:
            if sample.name == "execd_http_requests_total" and sample.labels["route"] == ROUTE:
                total += sample.value
    return total


def _counting_pids(directory: Path) -> set[int]:
    """The processes that counted HTTP requests (prometheus-client's files, by pid)."""
    return {
        int(m[1]) for f in directory.glob("counter_*.db") if (m := re.search(r"_(\d+)", f.name))
    }


def test_two_processes_serve_the_api_and_are_counted_together(deployment: Deployment) -> None:
    server = deployment.server(workers=1, EXECD_API_PROCESSES="2")
    assert "API: 2 processes on that port" in server.log()
    (child,) = wait_for(lambda: _api_children(server), message="the second API process")

    _fresh_requests(server, 60)
    counted = deployment.root / "data" / "metrics"
    assert _counting_pids(counted) == {server.pid, child}  # both answered some
    # Whichever process answers the scrape, it adds up both.
    assert {_answered(server) for _ in range(8)} == {60}

    # One that dies is started again; the port keeps answering meanwhile, and what the
    # dead one counted still counts.
    os.kill(child, signal.SIGKILL)
    _fresh_requests(server, 20)
    (again,) = wait_for(
        lambda: [c for c in _api_children(server) if c != child],
        timeout=30,
        message="a new API process",
    )
    sent = 80

    def the_new_one_answers() -> bool:
        nonlocal sent
        _fresh_requests(server, 5)
        sent += 5
        return again in _counting_pids(counted)

    wait_for(the_new_one_answers, timeout=30, message="the new process answering")
    assert _answered(server) == sent  # the dead one's count included
    assert "child_process_exited" in server.log()

    # Stopping the server stops it too.
    assert server.stop() in (0, -signal.SIGTERM)
    assert process_gone(again)
    assert "Traceback" not in server.log()


def test_the_flags_of_serve_reach_its_children(deployment: Deployment, tmp_path: Path) -> None:
    """`--data-dir` given as a flag, not in the environment: the worker and API children
    use that data, not a `.execd` of their own in the working directory."""
    env = deployment.env(EXECD_API_PROCESSES="2", EXECD_WORKER_PROCESSES="1")
    del env["EXECD_DATA_DIR"]
    data_dir, port = tmp_path / "flagged", str(free_port())
    process = subprocess.Popen(
        [sys.executable, "-m", "execd", "serve", "--data-dir", str(data_dir), "--port", port],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _ready(url), timeout=60, message="the server")
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as api:
            ids = [submit(api, "core.noop")["id"] for _ in range(10)]  # over both API processes
            assert {wait_status(api, i)["status"] for i in ids} == {"completed"}
        assert not (tmp_path / ".execd").exists()
        assert (data_dir / "secret-key").exists()
    finally:
        process.terminate()
        process.wait(timeout=60)


def _ready(url: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    return False
