"""POST /api/v1/executions/batch, in process: the app over a real SQLite or PostgreSQL
database, with no worker, so what a batch stores stays queued and can be counted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy import create_engine, func, select

from execd.store.database import sync_url
from execd.store.schema import execution_events, executions
from tests.in_process import InProcessServer
from tests.support import new_project

T = TypeVar("T")
BATCH = "/api/v1/executions/batch"
SECRET = "hunter2-is-not-a-password"
VAULT = {
    "ref": "vault.login",
    "runner": "shell",
    "entry_point": "true",
    "parameters": {
        "type": "object",
        "properties": {
            "user": {"type": "string"},
            "password": {"type": "string", "secret": True, "maxLength": 12},
        },
        "required": ["user"],
    },
}


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[httpx.Client]:
    """The app as `execd serve` builds it, without workers; requests as the admin."""
    server = InProcessServer(database_url, tmp_path)
    try:
        yield server.client()
    finally:
        server.close()


def rows(database_url: str) -> list[dict[str, Any]]:
    """Every stored execution, oldest first, with the transactions of its events."""
    engine = create_engine(sync_url(database_url))
    with engine.connect() as conn:
        listed = conn.execute(select(executions).order_by(executions.c.id)).mappings()
        found = [dict(r) for r in listed]
        for row in found:
            of_row = execution_events.c.execution_id == row["id"]
            row["txids"] = set(
                conn.execute(select(execution_events.c.txid).where(of_row)).scalars()
            )
        if not found:  # nor any event
            assert conn.execute(select(func.count()).select_from(execution_events)).scalar() == 0
    engine.dispose()
    return found


def post(api: httpx.Client, items: list[Any], token: str | None = None, **body: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return api.post(BATCH, json={"executions": items, **body}, headers=headers)


def test_an_atomic_batch_is_stored_whole_in_one_transaction(
    api: httpx.Client, database_url: str, backend: str
) -> None:
    items = [
        {"action_ref": "core.noop"},
        {"action_ref": "core.echo", "config": {"message": "hi"}, "priority": "high"},
        {"action_ref": "core.sleep", "parameters": {"seconds": 1}, "delay": 3600, "timeout": 60},
    ]
    answer = post(api, items)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["summary"] == {"total": 3, "created": 3, "replayed": 0, "refused": 0}
    assert [(i["index"], i["status"]) for i in body["data"]] == [(0, 201), (1, 201), (2, 201)]
    made = [i["execution"] for i in body["data"]]
    assert [e["action_ref"] for e in made] == ["core.noop", "core.echo", "core.sleep"]
    assert made[1]["config"] == {"message": "hi"} and made[1]["priority"] == "high"
    assert made[2]["status"] == "requested" and made[2]["timeout"] == 60
    assert made[0]["status"] == "scheduling"

    stored = rows(database_url)
    assert [r["id"] for r in stored] == [e["id"] for e in made]
    assert len({r["created"] for r in stored}) == 1  # one transaction, one clock reading
    if backend == "postgresql":
        assert len(set().union(*(r["txids"] for r in stored))) == 1
    assert api.get(f"/api/v1/executions/{made[1]['id']}").json()["data"] == made[1]


def test_an_atomic_batch_with_an_invalid_item_stores_nothing(
    api: httpx.Client, database_url: str
) -> None:
    items = [
        {"action_ref": "core.noop"},
        {"action_ref": "nosuch.action"},
        {"action_ref": "core.sleep", "parameters": {"seconds": "long"}},
        {"action_ref": "core.noop", "priority": "urgent"},
        {"action_ref": "core.noop", "not_before": "2030-01-01T00:00:00"},
        {"action_ref": "core.noop", "timeout": -1},
        {"action_ref": "core.noop", "colour": "red"},
        "core.noop",
        {"action_ref": "not a ref"},
        {"action_ref": "core.noop", "parent": 999999},
    ]
    answer = post(api, items)
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["status"] == 400
    assert body["error"] == (
        "Batch refused, nothing was stored: 9 of 10 executions could not be submitted"
    )
    errors = {e["index"]: (e["status"], e["error"]) for e in body["errors"]}
    assert sorted(errors) == list(range(1, 10))
    assert errors[1] == (404, "Action nosuch.action not found")
    assert errors[2][0] == 400 and "seconds" in errors[2][1]
    assert errors[3][0] == 400 and "urgent" in errors[3][1]
    assert errors[4] == (400, "not_before needs a time zone (e.g. 2024-01-13T10:00:00Z)")
    assert errors[5] == (
        400,
        "Invalid execution: field 'timeout': Input should be greater than 0",
    )
    assert errors[6] == (400, "Invalid execution: field 'colour': Extra inputs are not permitted")
    assert errors[7] == (400, "An execution is a JSON object, as the body of /execute")
    assert errors[8][0] == 400 and "Invalid action reference" in errors[8][1]
    assert errors[9] == (404, "Execution with ID 999999 not found")
    assert rows(database_url) == []

    # Refused items that agree on their status give it to the answer, as /execute would.
    missing = post(api, [{"action_ref": "core.noop"}, {"action_ref": "nosuch.action"}])
    assert missing.status_code == 404
    assert missing.json()["errors"] == [
        {"index": 1, "status": 404, "error": "Action nosuch.action not found"}
    ]
    assert rows(database_url) == []


def test_idempotency_keys_per_item_and_within_a_batch(api: httpx.Client, database_url: str) -> None:
    first = api.post(
        "/api/v1/executions/execute",
        json={"action_ref": "core.echo", "parameters": {"message": "a"}, "idempotency_key": "a"},
    ).json()["data"]
    items = [
        {"action_ref": "core.echo", "parameters": {"message": "a"}, "idempotency_key": "a"},
        {"action_ref": "core.echo", "parameters": {"message": "b"}, "idempotency_key": "b"},
        {"action_ref": "core.echo", "parameters": {"message": "b"}, "idempotency_key": "b"},
        {"action_ref": "core.noop"},
    ]
    answer = post(api, items)
    assert answer.status_code == 201, answer.text
    data = answer.json()["data"]
    assert [i["status"] for i in data] == [200, 201, 200, 201]
    assert data[0]["execution"]["id"] == first["id"]
    assert data[2]["execution"] == data[1]["execution"]  # the duplicate replays the first
    assert answer.json()["summary"] == {"total": 4, "created": 2, "replayed": 2, "refused": 0}

    again = post(api, items[:3])  # the same batch sent again: every item replayed
    assert again.status_code == 200
    assert [i["execution"]["id"] for i in again.json()["data"]] == [
        i["execution"]["id"] for i in data[:3]
    ]
    assert len(rows(database_url)) == 3


def test_a_key_reused_for_another_request_refuses_an_atomic_batch(
    api: httpx.Client, database_url: str
) -> None:
    kept = api.post(
        "/api/v1/executions/execute",
        json={"action_ref": "core.noop", "idempotency_key": "k"},
    ).json()["data"]
    answer = post(
        api, [{"action_ref": "core.noop"}, {"action_ref": "core.echo", "idempotency_key": "k"}]
    )
    assert answer.status_code == 409, answer.text
    assert answer.json()["errors"] == [
        {
            "index": 1,
            "status": 409,
            "error": "Idempotency key 'k' was already used for a different request "
            f"(execution {kept['id']})",
        }
    ]
    # Within one batch: the second use of a key for something else.
    twice = post(
        api,
        [
            {"action_ref": "core.noop", "idempotency_key": "n"},
            {"action_ref": "core.noop", "parameters": {}, "idempotency_key": "n"},
            {"action_ref": "core.echo", "parameters": {"message": "x"}, "idempotency_key": "n"},
        ],
    )
    assert twice.status_code == 409
    assert [e["index"] for e in twice.json()["errors"]] == [2]
    assert [r["id"] for r in rows(database_url)] == [kept["id"]]  # both rolled back


def test_a_non_atomic_batch_stores_the_valid_items_and_answers_each(
    api: httpx.Client, database_url: str
) -> None:
    api.post("/api/v1/executions/execute", json={"action_ref": "core.noop", "idempotency_key": "k"})
    items = [
        {"action_ref": "core.noop"},
        {"action_ref": "nosuch.action"},
        {"action_ref": "core.noop", "idempotency_key": "k"},
        {"action_ref": "core.echo", "idempotency_key": "k"},
        {"action_ref": "core.echo", "parameters": {"message": 5}},
        {"action_ref": "core.echo", "parameters": {"message": "ok"}},
    ]
    answer = post(api, items, atomic=False)
    assert answer.status_code == 207, answer.text
    body = answer.json()
    assert [i["status"] for i in body["data"]] == [201, 404, 200, 409, 400, 201]
    assert body["summary"] == {"total": 6, "created": 2, "replayed": 1, "refused": 3}
    assert body["data"][1] == {"index": 1, "status": 404, "error": "Action nosuch.action not found"}
    assert "execution" not in body["data"][3] and "Idempotency key" in body["data"][3]["error"]
    stored = rows(database_url)
    assert len(stored) == 3
    assert {r["id"] for r in stored} >= {body["data"][0]["execution"]["id"]}

    nothing = post(api, [{"action_ref": "nosuch.action"}], atomic=False)
    assert nothing.status_code == 207
    assert nothing.json()["summary"] == {"total": 1, "created": 0, "replayed": 0, "refused": 1}
    assert len(rows(database_url)) == 3


def test_a_batch_holds_one_to_a_thousand_executions(api: httpx.Client, database_url: str) -> None:
    over = post(api, [{"action_ref": "core.noop"}] * 1001)
    assert over.status_code == 400
    assert over.json() == {
        "error": "Invalid request: field 'executions': List should have at most 1000 items "
        "after validation, not 1001",
        "status": 400,
    }
    empty = post(api, [])
    assert empty.status_code == 400 and empty.json()["status"] == 400
    assert rows(database_url) == []

    full = post(api, [{"action_ref": "core.noop", "parameters": {}}] * 1000)
    assert full.status_code == 201
    assert full.json()["summary"]["created"] == 1000
    assert len(rows(database_url)) == 1000


def test_viewers_cannot_submit_and_other_tenants_are_out_of_reach(
    api: httpx.Client, database_url: str
) -> None:
    assert api.post("/api/v1/actions", json=VAULT).status_code == 201
    mine = api.post("/api/v1/executions/execute", json={"action_ref": "core.noop"})
    parent = mine.json()["data"]["id"]
    _, _, viewer = new_project(api, role="viewer")
    _, _, outsider = new_project(api)

    refused = post(api, [{"action_ref": "core.noop"}], token=viewer)
    assert refused.status_code == 403
    assert refused.json() == {
        "error": "This needs the operator role; the token has viewer",
        "status": 403,
    }
    foreign = post(
        api,
        [
            {"action_ref": "vault.login", "parameters": {"user": "u"}},
            {"action_ref": "core.noop", "parent": parent},
        ],
        token=outsider,
        atomic=False,
    )
    assert foreign.status_code == 207
    assert foreign.json()["data"] == [
        {"index": 0, "status": 404, "error": "Action vault.login not found"},
        {"index": 1, "status": 404, "error": f"Execution with ID {parent} not found"},
    ]
    assert len(rows(database_url)) == 1


def test_secret_values_are_never_echoed(api: httpx.Client, database_url: str) -> None:
    assert api.post("/api/v1/actions", json=VAULT).status_code == 201
    valid = {"action_ref": "vault.login", "parameters": {"user": "u", "password": "s3cr3t"}}
    too_long = {"action_ref": "vault.login", "parameters": {"user": "u", "password": SECRET}}
    bad_option = {**too_long, "timeout": 0}
    refused = post(api, [valid, too_long, bad_option])
    assert refused.status_code == 400
    assert SECRET not in refused.text and "s3cr3t" not in refused.text
    assert "parameter 'password' (secret)" in refused.json()["errors"][0]["error"]

    mixed = post(api, [valid, too_long, {**valid, "idempotency_key": "v"}], atomic=False)
    assert mixed.status_code == 207
    assert SECRET not in mixed.text and "s3cr3t" not in mixed.text
    assert mixed.json()["data"][0]["execution"]["config"] == {"user": "u", "password": "********"}
    reused = post(api, [{**too_long, "idempotency_key": "v"}], atomic=False)
    assert reused.json()["data"][0]["status"] == 400  # invalid before its key is looked at
    assert SECRET not in reused.text
    assert all(SECRET not in str(r["parameters"]) for r in rows(database_url))


# The tenant dialect's GET-and-POST route has one operation id for both (as served).
@pytest.mark.filterwarnings("ignore:Duplicate Operation ID")
def test_the_route_is_documented(api: httpx.Client) -> None:
    document = api.get("/openapi.json").json()
    operation = document["paths"][BATCH]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert schema["$ref"].endswith("/BatchBody")
    body = document["components"]["schemas"]["BatchBody"]
    assert body["properties"]["executions"]["maxItems"] == 1000
    assert "action_ref" in body["properties"]["executions"]["items"]["properties"]
