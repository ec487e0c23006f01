"""The `execd` client commands as users run them: the real executable, as a subprocess,
against a real server on SQLite and on PostgreSQL (issue 6)."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import stat
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, update

from execd.store.database import sync_url
from execd.store.schema import executions
from tests.support import Server, new_project, wait_for

EXECD = str(Path(sys.executable).with_name("execd"))

PACK = (Path(__file__).parents[2] / "examples" / "hello.yaml").read_text()


@dataclass
class Cli:
    """The `execd` executable with a server URL, a token and a config directory of its own."""

    env: dict[str, str]
    home: Path

    def __call__(
        self, *args: str, input: str | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [EXECD, *args],
            env={**self.env, **env},
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.home,
        )

    def ok(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        done = self(*args, **kw)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        return done

    def json(self, *args: str, input: str | None = None) -> Any:
        return json.loads(self.ok(*args, "--json", input=input).stdout)


def plain_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXECD_")}
    env.pop("FORCE_COLOR", None)
    env.update(EXECD_CONFIG=str(tmp_path / "config" / "execd.json"), **extra)
    return env


@pytest.fixture
def cli(shared_server: Server, admin: httpx.Client, tmp_path: Path) -> Cli:
    """An operator of a project of its own, by EXECD_URL / EXECD_TOKEN."""
    _, _, token = new_project(admin)
    env = plain_env(tmp_path, EXECD_URL=shared_server.url, EXECD_TOKEN=token)
    return Cli(env, tmp_path)


def test_readme_walkthrough_from_a_pack_file_to_history(
    shared_server: Server, admin: httpx.Client, tmp_path: Path
) -> None:
    _, _, token = new_project(admin)
    cli = Cli(plain_env(tmp_path), tmp_path)

    # login keeps the URL and token for later commands, readable by the user only
    logged = cli.ok("login", "--url", shared_server.url, "--token", token)
    assert "logged in" in logged.stdout
    saved = tmp_path / "config" / "execd.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert json.loads(saved.read_text()) == {"url": shared_server.url, "token": token}

    (tmp_path / "pack.yaml").write_text(PACK)
    first = cli.json("actions", "apply", "-f", "pack.yaml")
    assert [(a["kind"], a["ref"], a["outcome"]) for a in first] == [
        ("action", "hello.count", "created"),
        ("flow", "count-twice", "created"),
        ("flow", "outer", "created"),
        ("trigger", "hook", "created"),
        ("rule", "on-hook", "created"),
    ]
    again = cli.ok("actions", "apply", "-f", "pack.yaml")
    assert again.stdout.count("unchanged") == 5, again.stdout
    (tmp_path / "pack.yaml").write_text(PACK.replace("Counts to n", "Counts up to n"))
    changed = cli.json("actions", "apply", "-f", "pack.yaml")
    assert [a["outcome"] for a in changed] == ["updated"] + ["unchanged"] * 4
    assert (
        cli.json("actions", "get", "hello.count")["description"]
        == "Counts up to n, reporting progress"
    )

    ran = cli("run", "hello.count", "-p", "n=4", "--wait")
    assert ran.returncode == 0, ran.stderr
    # not a terminal: a line per progress change on stderr, no colours anywhere
    assert "running" in ran.stderr and "%" in ran.stderr and "counting" in ran.stderr
    assert "\x1b[" not in ran.stdout + ran.stderr
    assert "completed" in ran.stdout and '{"counted":4}' in ran.stdout
    execution_id = int(ran.stderr.split()[1])

    downloaded = cli.ok("executions", "download", str(execution_id), "-o", str(tmp_path))
    package = tmp_path / f"execution-{execution_id}.zip"
    assert str(package) in downloaded.stdout
    with zipfile.ZipFile(package) as archive:
        names = archive.namelist()
        assert json.loads(archive.read("result.json")) == {"counted": 4}
        assert "counted 4" in archive.read("stdout.log").decode()
    assert {"execution.json", "manifest.json"} <= set(names)

    listed = cli.ok("executions", "list").stdout.splitlines()
    assert listed[0].split() == ["ID", "ACTION", "STATUS", "CREATED", "UPDATED"]
    assert listed[1].split()[:3] == [str(execution_id), "hello.count", "completed"]
    history = cli.json("executions", "history", str(execution_id))
    assert [h["to_status"] for h in history][-2:] == ["running", "completed"]


def test_run_follow_prints_the_log_then_the_outcome(cli: Cli) -> None:
    script = "for i in 1 2 3; do echo line $i; sleep 0.2; done; echo oops >&2"
    ran = cli("run", "core.shell", "-p", f"cmd={script}", "--follow")
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[:3] == ["line 1", "line 2", "line 3"]
    assert lines[3].split() == ["id", ran.stderr.split()[1]]  # stderr is not what is followed
    assert any(line.startswith("status") and "completed" in line for line in lines)


def test_exit_codes_tell_how_an_execution_ended(cli: Cli, shared_server: Server) -> None:
    assert cli("run", "core.shell", "-p", "cmd=exit 3", "--wait").returncode == 1
    timed_out = cli("run", "core.sleep", "-p", "seconds=10", "--timeout", "0.5", "--wait")
    assert timed_out.returncode == 3, timed_out.stderr

    waiting = subprocess.Popen(
        [EXECD, "run", "core.sleep", "-p", "seconds=60", "--wait", "--json"],
        env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        running = wait_for(
            lambda: [e for e in cli.json("executions", "list", "-s", "running")], timeout=30
        )
        cli.ok("executions", "cancel", str(running[0]["id"]), "--yes")
        stdout, _ = waiting.communicate(timeout=60)
    finally:
        waiting.kill()
    assert waiting.returncode == 4
    assert json.loads(stdout)["status"] == "cancelled"

    # abandoned: what the reaper leaves when a run is lost and may not be retried
    done = cli.json("run", "core.noop", "--wait")
    engine = create_engine(sync_url(shared_server.env["EXECD_DATABASE_URL"]))
    with engine.begin() as conn:
        conn.execute(
            update(executions).where(executions.c.id == done["id"]).values(status="abandoned")
        )
    engine.dispose()
    assert cli("executions", "watch", str(done["id"])).returncode == 5
    expired = cli("run", "core.sleep", "-p", "seconds=30", "--wait", "--wait-timeout", "0.5")
    assert expired.returncode == 8 and "has not ended after" in expired.stderr


def test_helpful_errors_and_no_tracebacks(cli: Cli, tmp_path: Path) -> None:
    unknown = cli("executions", "get", "987654")
    assert unknown.returncode == 6
    assert unknown.stderr.strip() == "error: Execution with ID 987654 not found (404)"

    bad_token = cli("executions", "list", EXECD_TOKEN="execd_not_a_token")
    assert bad_token.returncode == 6
    assert "refused the token" in bad_token.stderr and "execd login" in bad_token.stderr

    down = cli("stats", "--url", "http://127.0.0.1:9")
    assert down.returncode == 2  # --url is an option of `execd`, not of `stats`
    down = cli("--url", "http://127.0.0.1:9", "stats")
    assert down.returncode == 7
    assert "cannot reach the execd server at http://127.0.0.1:9" in down.stderr

    invalid = cli("run", "core.sleep", "-p", "seconds=lots")
    assert invalid.returncode == 6 and "seconds" in invalid.stderr
    assert cli("run", "core.echo", "-p", "no-equals-sign").returncode == 2
    (tmp_path / "broken.yaml").write_text("actions: [\n")
    broken = cli("actions", "apply", "-f", "broken.yaml")
    assert broken.returncode == 2 and "not valid YAML" in broken.stderr
    for result in (unknown, bad_token, down, invalid, broken):
        assert "Traceback" not in result.stderr + result.stdout


def test_cancel_by_filter_asks_first(cli: Cli) -> None:
    ids = [cli.json("run", "core.sleep", "-p", "seconds=60")["id"] for _ in range(2)]
    refused = cli("executions", "cancel", "--action", "core.sleep", input="n\n")
    assert refused.returncode == 2 and "nothing was cancelled" in refused.stderr
    # The answer read from a pipe is not echoed: the prompt's line is ended for it.
    assert refused.stderr.splitlines() == [
        f"Cancel 2 execution(s): {ids[1]}, {ids[0]}? [y/N]:",
        "error: not confirmed: nothing was cancelled",
    ]
    assert all(
        cli.json("executions", "get", str(i))["status"] not in ("cancelled", "canceling")
        for i in ids
    )
    no_answer = cli("executions", "cancel", "--action", "core.sleep")  # end of input
    assert no_answer.returncode == 2

    answered = cli.json("executions", "cancel", "--action", "core.sleep", input="y\n")
    assert sorted(r["id"] for r in answered["data"]) == sorted(ids)
    for i in ids:
        wait_for(lambda i=i: cli.json("executions", "get", str(i))["status"] == "cancelled")
    nothing = cli.ok("executions", "cancel", "--action", "core.sleep", "--yes")
    assert "nothing to cancel" in nothing.stderr
    assert cli("executions", "cancel").returncode == 2  # neither ids nor a filter


def test_cancel_by_id_cancels_what_exists_and_names_what_does_not(cli: Cli) -> None:
    running = cli.json("run", "core.sleep", "-p", "seconds=60")["id"]
    unknown = cli("executions", "cancel", "99999", "--yes")
    assert unknown.returncode == 6
    assert unknown.stdout.split() == ["ID", "RESULT", "99999", "not_found"]
    assert unknown.stderr == "error: execution 99999 not found\n"
    both = cli("executions", "cancel", str(running), "99998", "99999", "--yes", "--json")
    assert both.returncode == 6 and both.stderr == "error: executions 99998, 99999 not found\n"
    results = {r["id"]: r["result"] for r in json.loads(both.stdout)["data"]}
    assert results[99998] == results[99999] == "not_found"
    assert results[running] in ("cancelled", "canceling")
    wait_for(lambda: cli.json("executions", "get", str(running))["status"] == "cancelled")


def test_logs_retry_export_and_watch(cli: Cli, tmp_path: Path) -> None:
    failed = cli("run", "core.shell", "-p", "cmd=echo hello; echo warn >&2; exit 1", "-w", "--json")
    first = json.loads(failed.stdout)
    assert failed.returncode == 1 and first["status"] == "failed"
    # Piped, a record is its lines as they are: aligned names, nothing after the values.
    shown = cli.ok("executions", "get", str(first["id"])).stdout.splitlines()
    assert shown[0].split() == ["id", str(first["id"])]
    assert ["status", "failed"] in [line.split() for line in shown]
    assert all(line == line.rstrip() for line in shown), shown
    # Times as the API writes them: milliseconds and Z.
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["created"])
    assert cli.ok("executions", "logs", str(first["id"])).stdout == "hello\n"
    assert cli.ok("executions", "logs", str(first["id"]), "--stderr").stdout == "warn\n"
    slow = cli.json("run", "core.shell", "-p", "cmd=sleep 0.5; echo late")
    assert cli.ok("executions", "logs", str(slow["id"]), "-f").stdout == "late\n"

    retried = cli(
        "executions", "retry", str(first["id"]), "-p", "cmd=echo fixed", "--wait", "--json"
    )
    assert retried.returncode == 0, retried.stderr
    again = json.loads(retried.stdout)
    assert again["retry_of"] == first["id"] and again["result"]["stdout"] == "fixed\n"

    cli.ok("executions", "export", "--format", "csv", "-o", "out.csv", "--status", "failed")
    rows = (tmp_path / "out.csv").read_text().splitlines()
    assert rows[0].startswith("id,uuid,action_ref,status")
    assert [r.split(",")[0] for r in rows[1:]] == [str(first["id"])]
    lines = cli.ok("executions", "export").stdout.splitlines()
    assert {json.loads(line)["id"] for line in lines} == {first["id"], slow["id"], again["id"]}

    watched = cli.ok("executions", "watch", str(again["id"]), "--json")
    assert json.loads(watched.stdout)["status"] == "completed"


def test_tables_and_json_of_the_system_commands(cli: Cli) -> None:
    cli.ok("run", "core.noop", "--wait")
    stats = cli.json("stats")
    assert stats["total"] == stats["completed"] == 1
    analytics = cli.json("stats", "--group-by", "action")
    assert [g["action_ref"] for g in analytics["groups"]] == ["core.noop"]
    table = cli.ok("stats", "--group-by", "action").stdout
    assert "FAILURE RATE" in table and "core.noop" in table

    assert cli.json("queue")["totalQueued"] == 0
    assert cli.ok("queue").stdout.startswith("0 queued; 1 worker, ")
    workers = cli.json("workers")
    assert workers and workers[0]["state"] == "active" and workers[0]["sandbox"] == "bubblewrap"
    assert cli.ok("workers").stdout.split()[:3] == ["ID", "NAME", "STATE"]
    assert "SANDBOX" in cli.ok("workers").stdout
    status = cli.json("system", "status")
    assert status["health"]["status"] == "ok" and status["systemStatus"] in (
        "Healthy",
        "Idle",
        "Busy",
    )
    assert status["sandbox"] == "bubblewrap" and status["warnings"] == []
    assert "sandbox" in cli.ok("system", "status").stdout
    assert "core.shell" in cli.ok("actions", "list").stdout
    for output in (table, cli.ok("workers").stdout):
        assert "\x1b[" not in output


def test_flows_and_rules_from_a_pack(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "pack.yaml").write_text(PACK)
    cli.ok("actions", "apply", "-f", "pack.yaml")
    flows = {f["name"]: f for f in cli.json("flows", "list")}
    assert flows["outer"]["steps"][0]["flowId"] == flows["count-twice"]["id"]

    ran = cli("flows", "run", "outer", "--wait", "--json")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["status"] == "PASSED"
    assert "PASSED" in ran.stderr
    assert [r["ref"] for r in cli.json("rules", "list")] == ["on-hook"]
    assert cli("flows", "run", "no-such-flow").returncode == 6


@contextmanager
def fake_server(
    status: int = 401,
    body: bytes = b'{"error": "who are you", "status": 401}',
    content_type: str = "application/json",
) -> Iterator[tuple[str, list[str | None]]]:
    """A server on loopback that gives every GET the same answer and remembers the
    Authorization headers it was sent."""
    seen: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_tokens_login_and_roles(shared_server: Server, tmp_path: Path) -> None:
    admin_cli = Cli(
        plain_env(
            tmp_path,
            EXECD_URL=shared_server.url,
            EXECD_TOKEN=shared_server.env["EXECD_ADMIN_TOKEN"],
        ),
        tmp_path,
    )
    made = admin_cli.json("token", "create", "--name", "reader", "--role", "viewer")
    assert made["role"] == "viewer" and made["token"].startswith("execd_")

    viewer = Cli(plain_env(tmp_path / "v"), tmp_path)
    # Not a terminal: the token is stdin's line, read without a prompt or a warning.
    prompted = viewer("login", "--url", shared_server.url, input=made["token"] + "\n")
    assert prompted.returncode == 0, prompted.stderr
    assert prompted.stderr == "" and "logged in" in prompted.stdout
    assert viewer.json("executions", "list") is not None  # the saved token is used
    refused = viewer("run", "core.noop")
    assert refused.returncode == 6 and "role does not allow" in refused.stderr
    # the saved token goes only to the server it was saved for
    with fake_server() as (url, seen):
        elsewhere = viewer("--url", url, "stats")
    assert elsewhere.returncode == 6 and seen == [None]
    assert elsewhere.stderr == (
        f"error: no token for {url}: the saved login is for {shared_server.url} "
        f"(use that URL, or `execd login --url {url}`)\n"
    )
    assert viewer.ok("logout").stdout.startswith("removed")
    assert not (tmp_path / "v" / "config" / "execd.json").exists()
    wrong = viewer("login", "--url", shared_server.url, "--token", "execd_wrong")
    assert wrong.returncode == 6 and not (tmp_path / "v" / "config" / "execd.json").exists()
    assert "refused the token" in wrong.stderr and "execd login" not in wrong.stderr
    for empty in ("", "\n"):
        nothing = viewer("login", "--url", shared_server.url, input=empty)
        assert nothing.returncode == 2 and nothing.stdout == ""
        assert nothing.stderr == (
            "error: no token on stdin (one line); or give it with --token or EXECD_TOKEN\n"
        )


def test_progress_bar_on_a_terminal(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "pack.yaml").write_text(PACK)
    cli.ok("actions", "apply", "-f", "pack.yaml")
    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        [EXECD, "run", "hello.count", "-p", "n=5", "--wait"],
        env={**cli.env, "COLUMNS": "100", "TERM": "xterm-256color"},
        stdin=secondary, stdout=secondary, stderr=secondary, close_fds=True,
    )  # fmt: skip
    os.close(secondary)
    screen = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([primary], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(primary, 65536)
            except OSError:
                break
            if not chunk:
                break
            screen += chunk
        elif process.poll() is not None:
            break
    os.close(primary)
    assert process.wait(timeout=30) == 0
    text = screen.decode(errors="replace")
    assert "\x1b[" in text  # a terminal gets colours and a redrawn bar
    assert "━" in text and "100%" in text and "counting" in text
    assert "eta" in text


def test_interrupting_a_wait_leaves_the_execution_running(cli: Cli) -> None:
    waiting = subprocess.Popen(
        [EXECD, "run", "core.sleep", "-p", "seconds=60", "--wait"],
        env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        running = wait_for(lambda: cli.json("executions", "list", "-s", "running"), timeout=30)
        waiting.send_signal(signal.SIGINT)
        _, stderr = waiting.communicate(timeout=30)
    finally:
        waiting.kill()
    assert waiting.returncode == 130
    assert f"execution {running[0]['id']} goes on" in stderr and "Traceback" not in stderr
    assert cli.json("executions", "get", str(running[0]["id"]))["status"] == "running"
    cli.ok("executions", "cancel", str(running[0]["id"]), "--yes")


def test_watch_prints_every_event_as_it_happens(cli: Cli) -> None:
    done = cli.json("run", "core.echo", "-p", "message=hi", "--wait")
    watcher = subprocess.Popen(  # from the oldest event of the project on
        [EXECD, "executions", "watch", "--json", "--last-event-id", "0-0"],
        env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        seen: list[dict[str, Any]] = []
        assert watcher.stdout is not None
        for line in watcher.stdout:
            seen.append(json.loads(line))
            if seen[-1]["status"] == "completed":
                break
        watcher.send_signal(signal.SIGINT)
        watcher.wait(timeout=30)
    finally:
        watcher.kill()
    assert (seen[0]["kind"], seen[0]["status"]) == ("created", "requested")
    assert {e["execution"] for e in seen} == {done["id"]}
    assert watcher.returncode == 130


EDGES = """\
actions:
  - {ref: edge.argv, runner: command, entry_point: [echo, hi],
     retry: {max_attempts: 2, retry_on: [timeout, failed]}, timeout: 30}
triggers:
  - {ref: hook, type: webhook}
  - {ref: done, type: execution, config: {statuses: [failed, completed, failed]}}
  - {ref: nightly, type: timer, config: {cron: "0 3 * * *", timezone: Europe/Berlin}}
rules:
  - {ref: on-hook, trigger: hook, action_ref: core.echo,
     parameters: {message: 2024-01-01, count: 1}}
"""


def test_applying_a_pack_is_idempotent_where_the_server_normalises(
    cli: Cli, tmp_path: Path
) -> None:
    pack = tmp_path / "edges.yaml"
    pack.write_text(EDGES)
    assert {a["outcome"] for a in cli.json("actions", "apply", "-f", str(pack))} == {"created"}
    assert {a["outcome"] for a in cli.json("actions", "apply", "-f", str(pack))} == {"unchanged"}
    rule = cli.json("rules", "list")[0]
    assert rule["parameters"] == {"message": "2024-01-01", "count": 1}  # a date stays text

    # Removing a field resets it; true is not 1; a webhook turned HMAC shows its secret.
    edited = (
        EDGES.replace(", timeout: 30}", "}")
        .replace("count: 1", "count: true")
        .replace("{ref: hook, type: webhook}", "{ref: hook, type: webhook, config: {auth: hmac}}")
    )
    pack.write_text(edited)
    outcomes = {(a["kind"], a["ref"]): a for a in cli.json("actions", "apply", "-f", str(pack))}
    assert outcomes["action", "edge.argv"]["outcome"] == "updated"
    assert outcomes["rule", "on-hook"]["outcome"] == "updated"
    assert outcomes["trigger", "hook"]["outcome"] == "updated"
    assert len(outcomes["trigger", "hook"]["secret"]) >= 32
    assert cli.json("actions", "get", "edge.argv")["timeout"] is None
    assert {a["outcome"] for a in cli.json("actions", "apply", "-f", str(pack))} == {"unchanged"}


def test_a_refused_definition_stops_the_pack_but_shows_what_was_applied(
    cli: Cli, tmp_path: Path
) -> None:
    (tmp_path / "bad.yaml").write_text(
        "triggers:\n  - {ref: signed, type: webhook, config: {auth: hmac}}\n"
        "rules:\n  - {ref: broken, trigger: signed, action_ref: core.noop,\n"
        "     criteria: {field: x, op: nope, value: 1}}\n"
    )
    stopped = cli("actions", "apply", "-f", "bad.yaml")
    assert stopped.returncode == 6
    assert "signed" in stopped.stdout and "created" in stopped.stdout
    assert "webhook secret of signed (shown once)" in stopped.stdout
    assert "Unknown op 'nope'" in stopped.stderr and "what is above was applied" in stopped.stderr
    (tmp_path / "shape.yaml").write_text("actions:\n  - {runner: shell}\n")
    shape = cli("actions", "apply", "-f", "shape.yaml")
    assert shape.returncode == 2 and "an entry of actions has no ref" in shape.stderr


def test_text_from_the_server_is_printed_as_it_is(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "odd.yaml").write_text(
        "actions:\n"
        "  - ref: odd.brackets\n"
        "    runner: shell\n"
        '    description: "uses [/x] and [bold]no markup[/]"\n'
        "    entry_point: |\n"
        '      echo \'{"percent": 50, "stage": "copy [/tmp]"}\' >> "$EXECD_CONTROL_FILE"\n'
        "      printf 'line\\342\\200\\250separator\\n'\n"
        "      sleep 0.5\n"
    )
    cli.ok("actions", "apply", "-f", "odd.yaml")
    assert "uses [/x] and [bold]no markup[/]" in cli.ok("actions", "list").stdout
    ran = cli("run", "odd.brackets", "--follow")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("line\u2028separator\n")  # one line, U+2028 inside it
    assert "copy [/tmp]" in ran.stderr
    lines = cli.ok("executions", "export").stdout.split("\n")  # not splitlines(): U+2028
    exported = [json.loads(line) for line in lines if line]
    assert [e["action_ref"] for e in exported] == ["odd.brackets"]


def test_streams_fail_fast_without_a_server_and_other_servers_are_named(cli: Cli) -> None:
    for args in (("executions", "logs", "-f", "1"), ("executions", "watch")):
        down = cli("--url", "http://127.0.0.1:9", *args)
        assert down.returncode == 7 and "cannot reach" in down.stderr
    with fake_server() as (url, _):
        other = cli("--url", url, "executions", "get", "1", EXECD_TOKEN="t")
    assert other.returncode == 6  # it answered 401 in an error shape execd knows
    with fake_server(200, b"<html>hello</html>", "text/html") as (url, _):
        html = cli("--url", url, "stats")
    assert html.returncode == 7 and "is it an execd server?" in html.stderr
    assert "Traceback" not in html.stderr
    # An error in none of execd's shapes: something else answers at the URL.
    for body, content_type, what in (
        (b"<html>File not found</html>", "text/html", "not JSON"),
        (b'{"nothing": "here"}', "application/json", "JSON without an error message"),
    ):
        with fake_server(404, body, content_type) as (url, _):
            for args in (("stats",), ("login", "--token", "t")):
                other = cli("--url", url, *args)
                assert other.returncode == 7, (args, other.stderr)
                assert other.stderr == (
                    f"error: {url} is not an execd server: it answered HTTP 404, {what}\n"
                    "Set the URL with --url, EXECD_URL or `execd login`.\n"
                )


def test_applying_without_a_server_says_so_like_any_command(tmp_path: Path) -> None:
    (tmp_path / "pack.yaml").write_text(PACK)
    local = Cli(plain_env(tmp_path), tmp_path)
    for args in (("actions", "apply", "-f", "pack.yaml"), ("stats",)):
        down = local("--url", "http://127.0.0.1:9", *args)
        assert (down.returncode, down.stdout) == (7, ""), args
        assert down.stderr.splitlines() == [
            "error: cannot reach the execd server at http://127.0.0.1:9: "
            "[Errno 111] Connection refused",
            "Is it running (`make run`)? Set the URL with --url, EXECD_URL or `execd login`.",
        ]


def test_run_batch_submits_a_file_of_executions(cli: Cli, tmp_path: Path) -> None:
    jobs = [
        {"action_ref": "core.echo", "parameters": {"message": "one"}, "idempotency_key": "f-1"},
        {"action_ref": "core.noop", "priority": "high"},
        {"action_ref": "core.noop"},
    ]
    (tmp_path / "jobs.jsonl").write_text("".join(json.dumps(j) + "\n\n" for j in jobs))
    done = cli.json("run-batch", "jobs.jsonl", "--batch-size", "2")  # two requests
    assert done["summary"] == {
        "total": 3, "created": 3, "replayed": 0, "refused": 0, "not_stored": 0
    }  # fmt: skip
    assert [(i["index"], i["status"]) for i in done["data"]] == [(0, 201), (1, 201), (2, 201)]
    ids = [i["execution"]["id"] for i in done["data"]]
    assert cli.json("executions", "get", str(ids[1]))["priority"] == "high"
    again = cli.ok("run-batch", "-", input=json.dumps(jobs[:1]))  # a JSON array, on stdin
    assert again.stdout.split() == ["ITEM", "ID", "RESULT", "0", str(ids[0]), "replayed"]

    # Atomic: a refused batch stops the command; the batches before it are stored.
    (tmp_path / "bad.jsonl").write_text(
        "\n".join(json.dumps(j) for j in [*jobs[1:], {"action_ref": "no.such"}, jobs[2]])
    )
    refused = cli("run-batch", "bad.jsonl", "--batch-size", "2")
    assert refused.returncode == 6
    rows = [line.split(maxsplit=2) for line in refused.stdout.splitlines()[1:]]
    assert [(r[0], r[2].strip()) for r in rows] == [
        ("0", "created"), ("1", "created"), ("2", "404: Action no.such not found")
    ]  # fmt: skip
    assert refused.stderr == (
        "error: Batch refused, nothing was stored: 1 of 2 executions could not be submitted "
        "(404); the 2 executions of the batches before it were stored\n"
    )
    alone = cli("run-batch", "-", input='{"action_ref": "no.such"}')
    assert alone.returncode == 6 and alone.stderr == (  # said once
        "error: Batch refused, nothing was stored: 1 of 1 executions could not be submitted (404)\n"
    )
    partly = cli("run-batch", "bad.jsonl", "--no-atomic", "--json")
    assert partly.returncode == 6
    assert json.loads(partly.stdout)["summary"] == {
        "total": 4, "created": 3, "replayed": 0, "refused": 1, "not_stored": 1
    }  # fmt: skip
    assert partly.stderr.strip() == "error: 1 of the 4 executions were refused"
    assert cli.json("stats")["total"] == 3 + 2 + 3

    (tmp_path / "broken.jsonl").write_text('{"action_ref": "core.noop"}\n{"action_ref": \n')
    broken = cli("run-batch", "broken.jsonl")
    assert broken.returncode == 2
    assert broken.stderr == (
        "error: broken.jsonl: not valid JSON (line 2, column 16: unexpected end of data)\n"
    )
    listed = cli("run-batch", "-", input='["core.noop"]')
    assert listed.returncode == 2 and "execution 0 is not a JSON object" in listed.stderr
    for result in (refused, partly, broken, listed):
        assert "Traceback" not in result.stderr
