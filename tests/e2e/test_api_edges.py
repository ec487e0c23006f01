"""The API's edges, tried as an attacker or a careless client would: values no id or
number can hold, in every operation's path and query (a real server, both backends)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.e2e.test_isolation_matrix import operations
from tests.support import Server

HUGE_NUMBER = "9" * 10_000  # past Python's int() limit of 4,300 digits
HUGE_TEXT = "a" * 10_000


def _answers(client: httpx.Client, method: str, url: str, params: dict[str, str]) -> int:
    """The status of a request, without waiting for a body (a stream may never end)."""
    with client.stream(method, url, params=params) as response:
        return response.status_code


def test_no_path_or_query_value_causes_a_server_error(
    shared_server: Server, admin: httpx.Client, tmp_path: Path
) -> None:
    me = admin.get("/api/v1/me").json()["data"]
    own = {"tenantId": me["tenant_id"], "projectId": me["project_id"]}
    tried, failures = 0, []
    for op in operations(shared_server, tmp_path):
        if op.method == "WS":
            continue
        # Each path parameter in turn gets the huge value, the others a plausible one.
        plain = {name: own.get(name, "1") for name in op.path_names}
        cases: list[tuple[dict[str, str], dict[str, str]]] = []
        for name in op.path_names:
            cases += [({**plain, name: HUGE_NUMBER}, {}), ({**plain, name: HUGE_TEXT}, {})]
        for query in op.parameters("query"):
            cases += [(plain, {query["name"]: HUGE_NUMBER}), (plain, {query["name"]: "-1e999"})]
        for values, params in cases:
            url = op.path.format(**values)
            status = _answers(admin, op.method, url, params)
            tried += 1
            if status >= 500:
                failures.append(f"{op.method} {op.path} {list(params)} -> {status}")
    assert tried > 300 and not failures, failures
    assert "unhandled_error" not in shared_server.log()


@pytest.mark.parametrize("suffix", ["executions/" + HUGE_NUMBER, "enforcements/" + HUGE_NUMBER])
def test_a_huge_id_is_a_404_in_the_v1_shape(admin: httpx.Client, suffix: str) -> None:
    response = admin.get("/api/v1/" + suffix)
    assert response.status_code == 404
    body = response.json()
    assert body["status"] == 404 and body["error"].startswith("No such endpoint")
    assert len(body["error"]) < 300  # the path is not echoed whole
