"""Fault injection, both backends: the API server SIGKILLed while clients submit. Every
submission it acknowledged (201) is found after a restart and runs to its end; prints
tries, acknowledged, lost, stuck and answers that were neither 2xx nor a dropped
connection."""

from __future__ import annotations

import concurrent.futures
import threading
import time
import uuid
from collections.abc import Callable

import httpx
import pytest

from tests.support import Deployment, wait_for, wait_status

pytestmark = pytest.mark.fault
TRIES = 600


def test_a_server_killed_during_submissions_keeps_every_acknowledged_one(
    deployment: Deployment, report: Callable[[str], None]
) -> None:
    server = deployment.server(workers=0)
    client = server.client()
    acknowledged: list[int] = []
    refused: list[int] = []
    keys: dict[str, int] = {}
    lock = threading.Lock()

    def post(_: int) -> None:
        key = uuid.uuid4().hex
        body = {"action_ref": "core.noop", "idempotency_key": key}
        try:
            response = client.post("/api/v1/executions/execute", json=body)
        except httpx.HTTPError:
            return  # the server went away: this one's fate is unknown to its client
        with lock:
            if response.status_code == 201:
                acknowledged.append(response.json()["data"]["id"])
                keys[key] = acknowledged[-1]
            else:
                refused.append(response.status_code)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(post, i) for i in range(TRIES)]
        wait_for(lambda: len(acknowledged) >= 100, timeout=60, message="100 acknowledged")
        server.kill()
        concurrent.futures.wait(futures)
    began = time.monotonic()
    restarted = deployment.server(workers=1)
    check = restarted.client()
    lost = [i for i in acknowledged if check.get(f"/api/v1/executions/{i}").status_code != 200]
    ended = [wait_status(check, i, timeout=60)["status"] for i in acknowledged]
    stuck = sum(1 for status in ended if status != "completed")
    # The same key sent again finds the acknowledged execution: nothing doubled.
    again = [
        check.post("/api/v1/executions/execute",
                   json={"action_ref": "core.noop", "idempotency_key": k}).json()["data"]["id"]
        for k in list(keys)[:20]
    ]  # fmt: skip
    report(
        f"server SIGKILL during {TRIES} submissions: acknowledged {len(acknowledged)},"
        f" lost {len(lost)}, stuck {stuck}, other answers {sorted(set(refused))},"
        f" recovery {time.monotonic() - began:.1f} s"
    )
    assert not lost and stuck == 0 and not refused
    assert again == [keys[k] for k in list(keys)[:20]]
