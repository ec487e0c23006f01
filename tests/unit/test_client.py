"""The SDK's parts that do no I/O: configuration, SSE parsing, error mapping, and how
a pack definition is compared with what the server holds."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from execd.client import BadRequest, ConfigurationError, Conflict, NotFound, ServerError
from execd.client import config as client_config
from execd.client.errors import error_for
from execd.client.operations import _same
from execd.client.protocol import SSEParser, params


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
    # The saved token never goes to another server.
    assert client_config.resolve("http://other:2").token is None
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


def test_a_definition_matches_what_the_server_keeps_beside_it() -> None:
    current = {"ref": "a.b", "retry": {"max_attempts": 3, "delay": 0}, "steps": [{"x": 1, "y": 2}]}
    assert _same({"ref": "a.b", "retry": {"max_attempts": 3}}, current)
    assert _same({"steps": [{"x": 1}]}, current)
    assert not _same({"retry": {"max_attempts": 4}}, current)
    assert not _same({"steps": [{"x": 1}, {"x": 2}]}, current)
    assert not _same({"description": "new"}, current)


def test_query_parameters_drop_what_is_unset() -> None:
    assert params(a=None, b=True, c=["x", "y"], d=0) == {"b": "true", "c": "x,y", "d": 0}
