"""Hostile or unusual input, and actions that misbehave: clear 4xx answers, never a 500,
and nothing an action does can reach the service's own secrets or outlive its run."""

from __future__ import annotations

import contextlib
import http.server
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.support import Server, get, new_project, submit, wait_status

# The flooding HTTP server is local.
SERVER_ENV = {"EXECD_FETCH_ALLOW": "127.0.0.1"}


def _error(response: httpx.Response, status: int = 400) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "status"} and body["status"] == status
    message: str = body["error"]
    return message


@pytest.mark.parametrize(
    "body",
    [
        {"action_ref": "core.echo", "parameters": {"message": "a\u0000b"}},
        {"action_ref": "core.echo", "parameters": {"a\u0000": "x"}},
        {"action_ref": "core.echo\u0000", "parameters": {}},
        {"action_ref": "core.noop", "idempotency_key": "k\u0000"},
    ],
)
def test_nul_characters_in_a_body_are_refused(client: httpx.Client, body: dict) -> None:
    message = _error(client.post("/api/v1/executions/execute", json=body))
    assert "NUL" in message


@pytest.mark.parametrize("name", ["action_ref", "pack_name", "result_contains", "status"])
def test_nul_characters_in_a_query_are_refused(client: httpx.Client, name: str) -> None:
    assert "NUL" in _error(client.get("/api/v1/executions", params={name: "x\u0000y"}))


def test_nul_characters_in_a_path_are_refused(client: httpx.Client) -> None:
    assert "NUL" in _error(client.get("/api/v1/actions/core.echo%00"))


def test_an_escaped_backslash_u0000_is_ordinary_text(client: httpx.Client) -> None:
    created = submit(client, "core.echo", {"message": "\\u0000"})
    assert wait_status(client, created["id"])["result"] == {"message": "\\u0000"}


def test_integers_beyond_64_bits_are_refused(client: httpx.Client) -> None:
    body = {"action_ref": "core.echo", "parameters": {"message": 2**70}}
    assert "64-bit" in _error(client.post("/api/v1/executions/execute", json=body))


def test_a_schema_with_an_unresolvable_ref_is_refused_when_defined(
    client: httpx.Client,
) -> None:
    action = {
        "ref": "bad.ref",
        "runner": "shell",
        "entry_point": "true",
        "parameters": {"type": "object", "properties": {"x": {"$ref": "#/nowhere"}}},
    }
    assert "nowhere" in _error(client.post("/api/v1/actions", json=action))
    remote = {**action, "parameters": {"$ref": "https://example.invalid/schema.json"}}
    _error(client.post("/api/v1/actions", json=remote))


def test_output_with_nul_characters_is_stored_without_them(client: httpx.Client) -> None:
    failing = {
        "ref": "emit.nul",
        "runner": "shell",
        "entry_point": "printf 'a\\000b'; printf 'err\\000' >&2; exit 3",
    }
    assert client.post("/api/v1/actions", json=failing).status_code == 201
    done = wait_status(client, submit(client, "emit.nul")["id"])
    assert done["status"] == "failed"
    assert done["result"]["stdout"] == "a\ufffdb"
    assert done["error"] == "exit code 3: err\ufffd"
    output = client.get(f"/api/v1/executions/{done['id']}/output/stdout")
    assert output.status_code == 200 and output.content == b"a\x00b"

    result_file = {
        "ref": "emit.nulresult",
        "runner": "shell",
        "entry_point": 'printf \'{"v": "x\\\\u0000y", "k\\\\u0000": 1}\' > "$EXECD_RESULT_FILE"',
    }
    assert client.post("/api/v1/actions", json=result_file).status_code == 201
    done = wait_status(client, submit(client, "emit.nulresult")["id"])
    assert done["status"] == "completed", done
    assert done["result"] == {"v": "x\ufffdy", "k\ufffd": 1}


def test_actions_do_not_inherit_the_services_secrets(client: httpx.Client) -> None:
    action = {"ref": "show.env", "runner": "shell", "entry_point": "env"}
    assert client.post("/api/v1/actions", json=action).status_code == 201
    done = wait_status(client, submit(client, "show.env")["id"])
    assert done["status"] == "completed", done
    names = {line.split("=", 1)[0] for line in done["result"]["stdout"].splitlines()}
    assert "PATH" in names and "EXECD_EXECUTION_ID" in names
    assert not {"EXECD_ADMIN_TOKEN", "EXECD_DATABASE_URL", "EXECD_DATA_DIR"} & names


def test_a_reused_idempotency_key_under_concurrency_yields_one_execution(
    shared_server: Server, admin: httpx.Client
) -> None:
    _, _, token = new_project(admin)
    clients = [shared_server.client(token) for _ in range(8)]
    key = f"race-{time.time_ns()}"

    def post(c: httpx.Client) -> httpx.Response:
        return c.post(
            "/api/v1/executions/execute",
            json={"action_ref": "core.noop", "idempotency_key": key},
        )

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(post, clients))
    assert {r.status_code for r in responses} <= {200, 201}, [r.text for r in responses]
    assert len({r.json()["data"]["id"] for r in responses}) == 1
    assert get(clients[0], responses[0].json()["data"]["id"])["idempotency_key"] == key


def test_an_outcome_the_store_cannot_hold_ends_as_a_failure_that_says_so(
    client: httpx.Client,
) -> None:
    depth = 400  # deeper than the JSON encoder goes
    action = {
        "ref": "emit.deep",
        "runner": "shell",
        "entry_point": f"printf '{'[' * depth}{']' * depth}' > \"$EXECD_RESULT_FILE\"",
    }
    assert client.post("/api/v1/actions", json=action).status_code == 201
    done = wait_status(client, submit(client, "emit.deep")["id"])
    assert done["status"] == "failed", done
    assert done["error"].startswith("the outcome could not be stored"), done["error"]
    assert done["result"] is None


class _Flood(http.server.BaseHTTPRequestHandler):
    """Answers with far more than anyone should keep: 8 MiB of JSON-looking text."""

    def do_GET(self) -> None:
        chunk = b"[" + b"1," * 32767 + b"1]"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(chunk) * 128))
        self.end_headers()
        with contextlib.suppress(OSError):  # the reader may hang up once it has enough
            for _ in range(128):
                self.wfile.write(chunk)

    def log_message(self, *args: object) -> None:
        return None


def test_an_http_response_is_kept_only_up_to_the_limit(client: httpx.Client) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Flood)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/big"
        done = wait_status(client, submit(client, "core.http", {"url": url})["id"])
    finally:
        server.shutdown()
        server.server_close()
    assert done["status"] == "completed", done
    result = done["result"]
    assert result["status_code"] == 200 and result["truncated"] is True
    assert isinstance(result["body"], str) and len(result["body"]) == 256 * 1024
