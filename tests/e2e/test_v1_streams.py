"""Live streams (issue 5) against a real server on both backends: execution events as
Server-Sent Events and over WebSocket, filtered and resumed with Last-Event-ID without
missing an event, and stdout streamed live, resumed from a byte offset, ending `done`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import psycopg
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.support import PG_ADMIN, Deployment, Server, history, submit, wait_status

Event = tuple[str | None, str, Any]


def sse(response: httpx.Response) -> Iterator[Event]:
    """(id, event, data) of each event in a text/event-stream."""
    event_id, event, data = None, "message", []
    for line in response.iter_lines():
        if line == "":
            if data:
                yield event_id, event, orjson.loads("\n".join(data))
            event_id, event, data = None, "message", []
        elif line.startswith(":") or line.startswith("retry:"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "id":
                event_id = value
            elif field == "event":
                event = value
            elif field == "data":
                data.append(value)


def read_until(
    client: httpx.Client, path: str, done: Any, *, headers: dict[str, str] | None = None,
    **params: Any,
) -> list[Event]:  # fmt: skip
    """Events of one stream connection until `done(events)`, then disconnect."""
    seen: list[Event] = []
    with client.stream("GET", path, params=params, headers=headers, timeout=30) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for item in sse(response):
            seen.append(item)
            if done(seen):
                break
    return seen


def background(function: Any) -> threading.Thread:
    thread = threading.Thread(target=function, daemon=True)
    thread.start()
    return thread


def statuses_of(events: list[Event], execution_id: int) -> list[str]:
    return [data["status"] for _, kind, data in events
            if data["execution"] == execution_id and kind != "progress"]  # fmt: skip


def test_execution_events_stream_live_and_filtered(client: httpx.Client) -> None:
    ids: list[int] = []

    def submit_three() -> None:
        ids.extend(submit(client, "core.echo", {"message": str(i)})["id"] for i in range(3))

    def all_completed(events: list[Event]) -> bool:
        done = {d["execution"] for _, k, d in events if d["status"] == "completed"}
        return len(ids) == 3 and done >= set(ids)

    # The stream starts at "now": what is submitted after it opens is seen.
    seen: list[Event] = []
    with client.stream("GET", "/api/v1/executions/stream",
                       params={"action_ref": "core.echo"}, timeout=30) as response:  # fmt: skip
        assert response.status_code == 200
        thread = background(submit_three)
        for item in sse(response):
            seen.append(item)
            if all_completed(seen):
                break
    thread.join()
    for execution_id in ids:
        assert statuses_of(seen, execution_id) == [
            "requested", "scheduling", "scheduled", "running", "completed",
        ]  # fmt: skip
    kinds = [k for _, k, d in seen if d["execution"] == ids[0]]
    assert kinds[0] == "created" and set(kinds[1:]) == {"status"}
    assert all(event_id for event_id, _, _ in seen)

    # Filtered by status and by execution.
    only = read_until(
        client, "/api/v1/executions/stream", lambda ev: True,
        status="completed", execution=ids[0], last_event_id=seen[0][0],
    )  # fmt: skip
    assert [(d["execution"], d["status"]) for _, _, d in only] == [(ids[0], "completed")]


def test_a_resumed_stream_misses_no_event(client: httpx.Client, shared_server: Server) -> None:
    first = submit(client, "core.echo", {"message": "before"})
    wait_status(client, first["id"])
    # A first connection, from the very start (last id 0-0), reads a few events and goes.
    part = read_until(
        client, "/api/v1/executions/stream", lambda ev: len(ev) >= 3, last_event_id="0-0"
    )
    # While nobody listens, more work is submitted from several threads at once.
    more: list[int] = []
    lock = threading.Lock()

    def burst() -> None:
        for _ in range(5):
            execution_id = submit(client, "core.echo", {"message": "gap"})["id"]
            with lock:
                more.append(execution_id)

    threads = [background(burst) for _ in range(4)]
    for thread in threads:
        thread.join()
    wanted = {first["id"], *more}
    for execution_id in more:
        wait_status(client, execution_id)

    def everything(events: list[Event]) -> bool:
        done = {d["execution"] for _, _, d in part + events if d["status"] == "completed"}
        return done >= wanted

    rest = read_until(
        client, "/api/v1/executions/stream", everything, headers={"Last-Event-ID": part[-1][0]}
    )
    events = part + rest
    assert len({event_id for event_id, _, _ in events}) == len(events), "an event came twice"
    for execution_id in wanted:
        expected = [e["to_status"] for e in history(client, execution_id)]
        assert statuses_of(events, execution_id) == expected, execution_id

    bad = client.get("/api/v1/executions/stream", headers={"Last-Event-ID": "yesterday"})
    assert bad.status_code == 400 and bad.json()["status"] == 400


def test_progress_reports_are_streamed(client: httpx.Client) -> None:
    body = {
        "ref": "demo.progress",
        "runner": "shell",
        "entry_point": 'for p in 25 50 75; do echo "{\\"percent\\": $p}" >> "$EXECD_CONTROL_FILE";'
        " sleep 0.7; done",
    }
    assert client.post("/api/v1/actions", json=body).status_code == 201
    execution_id = 0

    def go() -> None:
        nonlocal execution_id
        execution_id = submit(client, "demo.progress")["id"]

    def ended(events: list[Event]) -> bool:
        return any(d["status"] == "completed" for _, _, d in events)

    with client.stream("GET", "/api/v1/executions/stream",
                       params={"action_ref": "demo.progress"}, timeout=30) as response:  # fmt: skip
        thread = background(go)
        seen = []
        for item in sse(response):
            seen.append(item)
            if ended(seen):
                break
    thread.join()
    percents = [d["progress"]["percent"] for _, k, d in seen if k == "progress"]
    assert percents and percents == sorted(percents) and percents[0] >= 25
    # A progress event only when the progress changed (not at each resource sample).
    assert len(percents) == len(set(percents))
    assert all(d["status"] == "running" for _, k, d in seen if k == "progress")


OUTPUT = 'for i in 1 2 3 4; do echo "line $i é"; sleep 0.3; done; printf "last ✓"'
EXPECTED = "".join(f"line {i} é\n" for i in range(1, 5)) + "last ✓"


def test_output_streams_live_and_resumes_from_an_offset(client: httpx.Client) -> None:
    body = {"ref": "demo.lines", "runner": "shell", "entry_point": OUTPUT}
    assert client.post("/api/v1/actions", json=body).status_code == 201
    execution = submit(client, "demo.lines")
    path = f"/api/v1/executions/{execution['id']}/output/stdout/stream"
    events = read_until(client, path, lambda ev: ev[-1][1] == "done")
    chunks = [d for _, k, d in events if k == "output"]
    assert len(chunks) >= 2, "the output came in one piece: it was not live"
    assert "".join(c["data"] for c in chunks) == EXPECTED
    done_id, _, done = events[-1]
    assert done == {"status": "completed", "offset": len(EXPECTED.encode())}
    assert done_id == str(len(EXPECTED.encode()))
    # Offsets are bytes, and each event's id is where the next one starts.
    position = 0
    for event_id, _, data in events[:-1]:
        assert data["offset"] == position
        position += len(data["data"].encode())
        assert event_id == str(position)

    # Resume after the first chunk (Last-Event-ID) or from any byte offset (?offset=).
    first_id = events[0][0]
    resumed = read_until(client, path, lambda ev: ev[-1][1] == "done",
                         headers={"Last-Event-ID": first_id})  # fmt: skip
    text = "".join(d["data"] for _, k, d in resumed if k == "output")
    assert chunks[0]["data"] + text == EXPECTED
    at = len(b"line 1 \xc3\xa9\n")
    tail = read_until(client, path, lambda ev: ev[-1][1] == "done", offset=at)
    assert "".join(d["data"] for _, k, d in tail if k == "output") == EXPECTED[len("line 1 é\n") :]
    end = read_until(client, path, lambda ev: True, offset=10_000)
    assert [(k, d["offset"]) for _, k, d in end] == [("done", len(EXPECTED.encode()))]

    assert (
        client.get(f"/api/v1/executions/{execution['id']}/output/trace/stream").status_code == 400
    )
    assert client.get("/api/v1/executions/999999999/output/stdout/stream").status_code == 404
    assert client.get(path, params={"offset": "-1"}).status_code == 400
    assert client.get(path, params={"offset": "²"}).status_code == 400  # a digit, not ASCII
    odd = client.get("/api/v1/executions/stream", params={"last_event_id": "1-²"})
    assert odd.status_code == 400


def ws_url(server: Server, path: str, **params: Any) -> str:
    query = str(httpx.QueryParams(params))
    return server.url.replace("http://", "ws://") + path + ("?" + query if query else "")


def test_websocket_streams(client: httpx.Client, shared_server: Server) -> None:
    token = client.headers["Authorization"].split(" ", 1)[1]
    body = {"ref": "demo.ws", "runner": "shell", "entry_point": OUTPUT}
    assert client.post("/api/v1/actions", json=body).status_code == 201
    url = ws_url(shared_server, "/api/v1/executions/stream", token=token, action_ref="demo.ws")
    with connect(url, open_timeout=10) as socket:
        execution = submit(client, "demo.ws")
        seen = []
        while not any(m["data"]["status"] == "completed" for m in seen):
            seen.append(orjson.loads(socket.recv(timeout=30)))
    assert [m["data"]["status"] for m in seen] == [
        "requested", "scheduling", "scheduled", "running", "completed",
    ]  # fmt: skip
    # Resume from the first message: the rest again, nothing else.
    url = ws_url(shared_server, "/api/v1/executions/stream", token=token,
                 action_ref="demo.ws", last_event_id=seen[0]["id"])  # fmt: skip
    with connect(url, open_timeout=10) as socket:
        again = [orjson.loads(socket.recv(timeout=30)) for _ in range(4)]
    assert again == seen[1:]

    path = f"/api/v1/executions/{execution['id']}/output/stdout/stream"
    with connect(ws_url(shared_server, path, token=token), open_timeout=10) as socket:
        messages = []
        with pytest.raises(ConnectionClosed):
            while True:
                messages.append(orjson.loads(socket.recv(timeout=30)))
    assert messages[-1]["event"] == "done"
    assert "".join(m["data"]["data"] for m in messages if m["event"] == "output") == EXPECTED

    def refused(url: str) -> tuple[dict[str, Any], int | None]:
        with connect(url, open_timeout=10) as socket:
            error = orjson.loads(socket.recv(timeout=10))
            with pytest.raises(ConnectionClosed) as closed:
                socket.recv(timeout=10)
        return error, closed.value.rcvd.code if closed.value.rcvd else None

    error, code = refused(ws_url(shared_server, path, token="wrong"))
    assert error["status"] == 401 and error["error"] and code == 4401
    # Bad parameters are the dialect's 400, as over SSE, not a bare handshake refusal.
    huge = "9" * 20
    for bad_path, params in [
        ("/api/v1/executions/stream", {"execution": "abc"}),
        ("/api/v1/executions/stream", {"execution": huge}),
        ("/api/v1/executions/stream", {"status": "exploded"}),
        ("/api/v1/executions/stream", {"last_event_id": "nonsense"}),
        ("/api/v1/executions/stream", {"action_ref": "x" * 301}),
        (f"/api/v1/executions/{huge}/output/stdout/stream", {}),
        ("/api/v1/executions/abc/output/stdout/stream", {}),
        (f"/api/v1/executions/{execution['id']}/output/stdin/stream", {}),
        (path, {"offset": "-1"}),
    ]:
        error, code = refused(ws_url(shared_server, bad_path, token=token, **params))
        assert (error["status"], code) == (400, 4400), (bad_path, params, error)
        assert error["error"]
    error, code = refused(ws_url(shared_server, "/api/v1/executions/999999/output/stdout/stream",
                                 token=token))  # fmt: skip
    assert (error["status"], code) == (404, 4404)


def test_events_written_here_reach_streams_without_waiting_for_the_poll(
    deployment: Deployment,
) -> None:
    # A poll of a minute: only the wake-up of events this server writes can deliver
    # them before the stream's 10 s read timeout.
    server = deployment.server(workers=1, EXECD_STREAM_POLL_SECONDS="60")
    client = server.client()

    def completed(execution_id: int) -> Any:
        return lambda events: any(
            d["execution"] == execution_id and d["status"] == "completed" for _, _, d in events
        )

    first = submit(client, "core.noop")
    wait_status(client, first["id"])
    with client.stream("GET", "/api/v1/executions/stream", params={"last_event_id": "0-0"},
                       timeout=10) as response:  # fmt: skip
        seen: list[Event] = []
        events = sse(response)
        while not completed(first["id"])(seen):  # caught up, following the hub
            seen.append(next(events))
        second = submit(client, "core.noop")
        while not completed(second["id"])(seen):
            seen.append(next(events))
    assert statuses_of(seen, second["id"]) == [
        "requested", "scheduling", "scheduled", "running", "completed",
    ]  # fmt: skip


def test_events_held_behind_an_open_transaction_reach_a_stream_once_it_ends(
    deployment: Deployment, backend: str
) -> None:
    """On PostgreSQL an event is read once no older transaction of the server is open
    (any database's). A stream that joins while its events wait there gets them as soon
    as that transaction ends, not at the next poll (a minute here)."""
    if backend != "postgresql":
        pytest.skip("SQLite has one writer: a committed event is readable at once")
    server = deployment.server(workers=1, EXECD_STREAM_POLL_SECONDS="60")
    client = server.client()
    held = psycopg.connect(PG_ADMIN, autocommit=False)  # another database of the server
    held.execute("SELECT txid_current()")  # an open transaction with an id: the horizon
    try:
        done = wait_status(client, submit(client, "core.noop")["id"])
        release = threading.Timer(1.0, held.rollback)
        release.start()
        with client.stream("GET", "/api/v1/executions/stream", params={"last_event_id": "0-0"},
                           timeout=10) as response:  # fmt: skip
            seen: list[Event] = []
            events = sse(response)
            while "completed" not in statuses_of(seen, done["id"]):
                seen.append(next(events))
        release.join()
    finally:
        held.close()
    assert statuses_of(seen, done["id"])[-1] == "completed"
