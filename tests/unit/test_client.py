"""The SDK's parts that do no I/O: configuration, SSE parsing, error mapping, and how
a pack definition is compared with what the server holds."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path

import httpx
import pytest

from execd.client import (
    BadRequest,
    Client,
    ConfigurationError,
    Conflict,
    NotFound,
    ServerError,
    packs,
)
from execd.client import config as client_config
from execd.client.errors import UnexpectedAnswer, error_for
from execd.client.protocol import LineBuffer, SSEParser, params


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("EXECD_URL", "EXECD_TOKEN", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "conf" / "execd.json"
    monkeypatch.setenv("EXECD_CONFIG", str(path))
    return path


def test_arguments_then_environment_then_the_saved_file(
    monkeypatch: pytest.MonkeyPatch, isolated: Path
) -> None:
    assert client_config.resolve() == client_config.Target("http://127.0.0.1:8080", None)
    saved = client_config.save("http://saved:1", "execd_saved")
    assert saved == isolated
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert stat.S_IMODE(saved.parent.stat().st_mode) == 0o700
    assert json.loads(saved.read_text()) == {"url": "http://saved:1", "token": "execd_saved"}
    assert client_config.resolve() == client_config.Target("http://saved:1", "execd_saved")
    # The saved token never goes to another server; where it would go is said.
    assert client_config.resolve("http://other:2") == client_config.Target(
        "http://other:2", None, saved_url="http://saved:1"
    )
    assert client_config.resolve("http://other:2", "t").saved_url is None
    monkeypatch.setenv("EXECD_URL", "http://env:3/")
    monkeypatch.setenv("EXECD_TOKEN", "execd_env")
    assert client_config.resolve() == client_config.Target("http://env:3", "execd_env")
    assert client_config.resolve("http://arg:4", "execd_arg").token == "execd_arg"
    with pytest.raises(ConfigurationError, match="http:// or https://"):
        client_config.resolve("ftp://x")


def test_a_saved_file_with_a_wider_mode_is_narrowed(isolated: Path) -> None:
    isolated.parent.mkdir(parents=True)
    isolated.write_text("{}")
    isolated.chmod(0o644)
    client_config.save("http://a:1", "t")
    assert stat.S_IMODE(isolated.stat().st_mode) == 0o600


def test_an_unreadable_config_file_is_a_clear_error(isolated: Path) -> None:
    isolated.parent.mkdir(parents=True)
    isolated.write_text("not json")
    with pytest.raises(ConfigurationError, match="cannot read"):
        client_config.resolve()


def test_server_sent_events_are_parsed_line_by_line() -> None:
    parser = SSEParser()
    lines = [
        "retry: 1000", "", ": keep-alive", "",
        "id: 7-1", "event: status", 'data: {"a":', "data: 1}", "",
        "data: plain", "",
    ]  # fmt: skip
    events = [e for e in map(parser.feed, lines) if e is not None]
    assert [(e.event, e.data, e.id) for e in events] == [
        ("status", '{"a":\n1}', "7-1"),
        ("message", "plain", "7-1"),  # the last id stays until another comes
    ]


def test_errors_take_the_message_of_each_dialect() -> None:
    v1 = error_for(404, {"error": "Execution with ID 9 not found", "status": 404}, "x")
    assert isinstance(v1, NotFound) and v1.message == "Execution with ID 9 not found"
    flows = error_for(
        409, {"success": False, "error": "Conflict", "code": "EXECUTION_RUNNING",
              "message": "Execution is still running"}, "x",
    )  # fmt: skip
    assert isinstance(flows, Conflict) and flows.message == "Execution is still running"
    assert flows.body["code"] == "EXECUTION_RUNNING"
    assert isinstance(error_for(400, {"detail": "bad"}, "x"), BadRequest)
    crashed = error_for(502, "<html>bad gateway</html>", "HTTP 502")
    assert isinstance(crashed, ServerError) and str(crashed) == "502: HTTP 502"


@pytest.mark.parametrize(
    ("status", "content", "headers", "kind"),
    [
        (404, b"<html>File not found</html>", {"Content-Type": "text/html"}, UnexpectedAnswer),
        (404, b'{"nothing": "here"}', {}, UnexpectedAnswer),
        (502, b"Bad Gateway", {}, UnexpectedAnswer),
        (404, b'{"detail": "Not Found"}', {}, NotFound),
        (400, b'{"error": "bad", "status": 400}', {}, BadRequest),
    ],
)
def test_an_error_in_none_of_execds_shapes_is_another_server(
    status: int, content: bytes, headers: dict[str, str], kind: type[Exception]
) -> None:
    answer = httpx.Response(status, content=content, headers=headers)
    transport = httpx.MockTransport(lambda request: answer)
    with (
        Client("http://other.test", "t", transport=transport) as client,
        pytest.raises(kind) as raised,
    ):
        client.stats()
    if kind is UnexpectedAnswer:
        assert str(raised.value).startswith(
            f"http://other.test is not an execd server: it answered HTTP {status}, "
        )


def test_a_definition_is_compared_as_the_server_would_store_it() -> None:
    stored = {
        "id": 7, "ref": "a.b", "runner": "command", "entry_point": '["echo","hi"]',
        "parameters": {"type": "object", "properties": {}}, "timeout": 30.0,
        "retry": {"max_attempts": 5, "retry_on": ["failed", "timeout"], "delay": 1.0,
                  "backoff": 2.0, "max_delay": 300.0},
        "enabled": True, "description": "", "created": "2026-11-27T10:00:00.000Z",
        "network": True, "limits": {},
    }  # fmt: skip
    retry = {"max_attempts": 5, "retry_on": ["timeout", "failed", "timeout"]}
    given = {"ref": "a.b", "runner": "command", "entry_point": ["echo", "hi"], "timeout": 30,
             "retry": retry}  # fmt: skip
    assert packs.same(packs.wanted_action(given), stored)
    limited = {**stored, "network": False, "limits": {"cpu_seconds": 5.0}}
    assert packs.same(
        packs.wanted_action({**given, "network": False, "limits": {"cpu_seconds": 5}}), limited
    )
    assert not packs.same(packs.wanted_action(given), limited)
    # a field left out of the file is compared with its default: removing it is a change
    assert not packs.same(packs.wanted_action({**given, "timeout": None}), stored)
    assert not packs.same(
        packs.wanted_action({k: v for k, v in given.items() if k != "timeout"}), stored
    )
    assert not packs.same(packs.wanted_action({**given, "enabled": 1}), stored)  # not a boolean


def test_trigger_settings_are_filled_in_and_secrets_not_compared() -> None:
    hook = packs.wanted_trigger({"ref": "h", "type": "webhook", "config": {"auth": "hmac"},
                                 "secret": "s" * 40})  # fmt: skip
    assert "secret" not in hook and hook["config"] == {"auth": "hmac"}
    cron = packs.wanted_trigger({"ref": "t", "type": "timer", "config": {"cron": "0 3 * * *"}})
    assert cron["config"] == {"cron": "0 3 * * *", "catch_up": "latest", "timezone": "UTC"}
    done = packs.wanted_trigger(
        {"ref": "e", "type": "execution", "config": {"statuses": ["failed", "completed", "failed"]}}
    )
    assert done["config"] == {"statuses": ["completed", "failed"], "action_ref": None}
    assert packs.wanted_trigger({"ref": "e", "type": "execution"})["config"]["statuses"] == [
        "abandoned", "cancelled", "completed", "failed", "timeout",
    ]  # fmt: skip


def test_rule_parameters_compare_exactly() -> None:
    stored = {"ref": "r", "trigger": "t", "action_ref": "a.b", "parameters": {"x": 1, "y": 2},
              "criteria": None, "description": "", "enabled": True}  # fmt: skip
    assert packs.same(packs.wanted_rule({k: v for k, v in stored.items()}), stored)
    assert not packs.same(packs.wanted_rule({**stored, "parameters": {"x": 1}}), stored)
    assert not packs.same(packs.wanted_rule({**stored, "parameters": {"x": True, "y": 2}}), stored)


def test_flows_name_their_sub_flows() -> None:
    body = packs.resolve_flow({"name": "outer", "steps": [{"flow": "inner"}]}, {"inner": "f-1"})
    assert body == {"name": "outer", "steps": [{"flowId": "f-1"}]}
    assert packs.wanted_flow(body)["steps"] == [
        {"name": None, "action": None, "flowId": "f-1", "parameters": {}, "timeout": None,
         "continueOnFailure": False},
    ]  # fmt: skip
    with pytest.raises(packs.PackError, match="no flow named 'nope'"):
        packs.resolve_flow({"name": "x", "steps": [{"flow": "nope"}]}, {})


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "a pack is a mapping"),
        ({"action": []}, "unknown sections in the pack: action"),
        (
            {"ref": "examples.csv_report", "runner": "python", "entry_point": "m:f"},
            "one action's definition, not a pack: list it under `actions:`",
        ),
        ({"actions": {"ref": "a.b"}}, "actions in the pack must be a list of mappings"),
        ({"rules": [{"trigger": "t"}]}, "an entry of rules has no ref"),
        ({"flows": [{"name": "f"}, {"name": "f"}]}, "flows: 'f' is defined twice"),
    ],
)
def test_a_pack_is_checked_before_anything_is_sent(document: object, message: str) -> None:
    with pytest.raises(packs.PackError, match=message):
        packs.check(document)


def test_lines_are_cut_at_newlines_only() -> None:
    buffer = LineBuffer()
    assert buffer.feed('{"a": "x\u2028y"}\n{"b"') == ['{"a": "x\u2028y"}']
    assert buffer.feed(": 1}\n") == ['{"b": 1}']
    assert buffer.feed("tail") == []
    assert buffer.end() == ["tail"]


def test_query_parameters_drop_what_is_unset() -> None:
    assert params(a=None, b=True, c=["x", "y"], d=0) == {"b": "true", "c": "x,y", "d": 0}


def test_a_read_answered_503_is_sent_again_and_says_what_it_waits_for(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sent: list[str] = []
    unavailable = {"error": "The store is unavailable (disk full); try again shortly"}

    def server(request: httpx.Request) -> httpx.Response:
        sent.append(request.method)
        if len(sent) < 3:
            return httpx.Response(503, json={**unavailable, "status": 503},
                                  headers={"Retry-After": "0"})  # fmt: skip
        if request.method == "POST":
            return httpx.Response(503, json={**unavailable, "status": 503})
        return httpx.Response(200, json={"data": {
            "id": 7, "uuid": "00000000-0000-4000-8000-000000000007", "action_ref": "core.noop",
            "status": "completed", "created": "2026-12-04T10:00:00Z",
            "updated": "2026-12-04T10:00:01Z"}})  # fmt: skip

    with Client("http://execd.test", "t", transport=httpx.MockTransport(server)) as client:
        with caplog.at_level(logging.WARNING, logger="execd.client"):
            found = client.get_execution(7)
        assert found.id == 7 and sent == ["GET", "GET", "GET"]
        assert caplog.messages[0] == (
            "GET /api/v1/executions/7: The store is unavailable (disk full); try again "
            "shortly; trying again in 0 s"
        )
        # A submission is not sent again: whether it was stored is for its caller to know.
        with pytest.raises(ServerError, match="disk full"):
            client.execute("core.noop")
        assert sent[3:] == ["POST"]
