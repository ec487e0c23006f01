"""Cancel against completion, many times, both backends: each cancel sent as a job is
about to end. A cancel answers 200 with `canceling` or `cancelled`, or 409 because the
job had ended; never 200 with the job completed as if it had been cancelled."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable

import pytest

from tests.support import Deployment, submit, wait_status

pytestmark = pytest.mark.fault
RACES = 40


def test_cancels_racing_completions_answer_what_happened(
    deployment: Deployment, report: Callable[[str], None]
) -> None:
    server = deployment.server(workers=1)
    client = server.client()
    rng = random.Random(7)
    answers: Counter[str] = Counter()
    wrong: list[tuple[int, int, str, str]] = []
    for _ in range(RACES):
        execution = submit(client, "core.shell", {"cmd": "sleep 0.3"})
        wait_status(client, execution["id"], "running", timeout=30)
        time.sleep(rng.uniform(0.15, 0.45))  # around the moment it ends
        response = client.post(f"/api/v1/executions/{execution['id']}/cancel")
        said = response.json()["data"]["status"] if response.status_code == 200 else "-"
        final = wait_status(client, execution["id"], timeout=30)["status"]
        answers[f"{response.status_code} {said} -> {final}"] += 1
        fine = (response.status_code == 409 and final == "completed") or (
            response.status_code == 200 and said in ("canceling", "cancelled")
        )
        if not fine:
            wrong.append((execution["id"], response.status_code, said, final))
    report(f"cancel against completion, {RACES} races: {dict(answers)}; wrong {len(wrong)}")
    assert not wrong
