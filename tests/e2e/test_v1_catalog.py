"""Actions and packs through /api/v1, and every runner kind end to end."""

from __future__ import annotations

import textwrap
from pathlib import Path

import httpx

from tests.support import Server, submit, wait_status

# test_http_runner fetches the server's own /healthz.
SERVER_ENV = {"EXECD_FETCH_ALLOW": "127.0.0.1"}


def test_core_pack_is_in_every_project(client: httpx.Client) -> None:
    refs = {a["ref"] for a in client.get("/api/v1/actions").json()["data"]}
    assert {
        "core.noop",
        "core.echo",
        "core.sleep",
        "core.shell",
        "core.python",
        "core.http",
    } <= refs
    packs = client.get("/api/v1/packs").json()["data"]
    assert {"ref": "core", "name": "core", "builtin": True, "action_count": 6}.items() <= packs[
        0
    ].items()
    core_sleep = client.get("/api/v1/actions/core.sleep").json()["data"]
    assert core_sleep["parameters"]["required"] == ["seconds"]


def test_define_update_and_delete_an_action(client: httpx.Client) -> None:
    body = {
        "ref": "ops.greet",
        "runner": "shell",
        "entry_point": 'echo "hello $PARAM_NAME"',
        "parameters": {
            "type": "object",
            "properties": {"name": {"type": "string", "default": "world"}},
        },
        "timeout": 30,
        "retry": {"max_attempts": 2, "retry_on": ["failed"], "delay": 0},
        "description": "Greets",
    }
    created = client.post("/api/v1/actions", json=body)
    assert created.status_code == 201, created.text
    action = created.json()["data"]
    assert action["ref"] == "ops.greet" and action["pack"] == "ops" and action["id"] > 0
    assert client.post("/api/v1/actions", json=body).status_code == 409

    execution = submit(client, "ops.greet")
    assert execution["config"] == {"name": "world"}
    assert execution["action"] == action["id"]
    done = wait_status(client, execution["id"])
    assert done["status"] == "completed"
    assert done["result"]["stdout"] == "hello world\n"

    updated = client.put("/api/v1/actions/ops.greet", json={**body, "enabled": False})
    assert updated.status_code == 200 and updated.json()["data"]["enabled"] is False
    disabled = client.post("/api/v1/executions/execute", json={"action_ref": "ops.greet"})
    assert disabled.status_code == 409
    enabled = client.patch("/api/v1/actions/ops.greet", json={"enabled": True})
    assert enabled.status_code == 200 and enabled.json()["data"]["enabled"] is True
    assert enabled.json()["data"]["description"] == "Greets"  # the rest stays
    assert submit(client, "ops.greet")["id"] > execution["id"]  # runs again
    assert client.patch("/api/v1/actions/ops.greet", json={"runner": "shell"}).status_code == 400
    assert client.patch("/api/v1/actions/core.noop", json={"enabled": False}).status_code == 409
    renamed = client.put("/api/v1/actions/ops.greet", json={**body, "ref": "ops.other"})
    assert renamed.status_code == 409 and "keeps its ref" in renamed.json()["error"]
    assert client.get("/api/v1/packs").json()["data"][1]["ref"] == "ops"
    assert client.delete("/api/v1/actions/ops.greet").status_code == 204
    assert client.get("/api/v1/actions/ops.greet").status_code == 404
    assert client.delete("/api/v1/actions/core.noop").status_code == 409


def test_invalid_definitions_are_400(client: httpx.Client) -> None:
    cases = [
        {"ref": "core.mine", "runner": "shell", "entry_point": "true"},
        {"ref": "x.y", "runner": "telepathy", "entry_point": "true"},
        {"ref": "nodot", "runner": "shell", "entry_point": "true"},
        {"ref": "x.y", "runner": "shell", "entry_point": ""},
        {"ref": "x.y", "runner": "python", "entry_point": "no_colon"},
        {"ref": "x.y", "runner": "command", "entry_point": "ls -l"},
        {"ref": "x.y", "runner": "shell", "entry_point": "true", "parameters": {"type": "array"}},
        {
            "ref": "x.y",
            "runner": "shell",
            "entry_point": "true",
            "parameters": {"type": "object", "properties": {"a": {"type": "nonsense"}}},
        },
        {"ref": "x.y", "runner": "shell", "entry_point": "true", "retry": {"max_attempts": 0}},
        {"ref": "x.y", "runner": "shell", "entry_point": "true", "retry": {"bogus": 1}},
    ]
    for body in cases:
        response = client.post("/api/v1/actions", json=body)
        assert response.status_code == 400, (body, response.text)
        assert set(response.json()) == {"error", "status"}


def test_shell_parameters_are_never_pasted_into_the_script(client: httpx.Client) -> None:
    hostile = "x; touch /tmp/execd-pwned-$$; $(echo no) `echo no`"
    action = {
        "ref": "safe.echo",
        "runner": "shell",
        "entry_point": 'printf "%s" "$PARAM_TEXT"',
        "parameters": {"type": "object", "properties": {"text": {"type": "string"}}},
    }
    assert client.post("/api/v1/actions", json=action).status_code == 201
    done = wait_status(client, submit(client, "safe.echo", {"text": hostile})["id"])
    assert done["result"]["stdout"] == hostile
    via_args = submit(
        client, "core.shell", {"cmd": 'printf "%s|%s" "$1" "$2"', "args": [hostile, "b"]}
    )
    assert wait_status(client, via_args["id"])["result"]["stdout"] == f"{hostile}|b"


def test_command_runner_substitutes_whole_arguments(client: httpx.Client) -> None:
    action = {
        "ref": "safe.list",
        "runner": "command",
        "entry_point": ["printf", "[%s]", "{path}", "pre-{n}"],
        "parameters": {
            "type": "object",
            "properties": {"path": {"type": "string"}, "n": {"type": "integer"}},
            "required": ["path", "n"],
        },
    }
    assert client.post("/api/v1/actions", json=action).status_code == 201
    done = wait_status(client, submit(client, "safe.list", {"path": "a b; rm -rf /", "n": 3})["id"])
    assert done["status"] == "completed"
    assert done["result"]["stdout"] == "[a b; rm -rf /][pre-3]"


def test_python_runner_with_progress_counters_result_and_artifacts(
    shared_server: Server, client: httpx.Client
) -> None:
    module = Path(shared_server.env["EXECD_ACTIONS_PATH"]) / "crunch_mod.py"
    module.write_text(
        textwrap.dedent(
            """
            from execd.action import Context

            def crunch(ctx: Context, rows: int) -> dict:
                ctx.progress(10, stage="Loading")
                ctx.counters(processed=rows // 2, total=rows, warnings=1)
                ctx.warning("Some timestamps had to be inferred")
                ctx.artifact("report.txt").write_text("report for %d rows" % rows)
                ctx.progress(90, stage="Writing")
                return {"rows": rows}

            def explode():
                raise ValueError("boom")
            """
        )
    )
    ok = submit(
        client,
        "core.python",
        {"callable": "crunch_mod:crunch", "kwargs": {"rows": 40}},
    )
    done = wait_status(client, ok["id"])
    assert done["status"] == "completed", done
    assert done["result"] == {"rows": 40}
    progress = done["progress"]
    assert progress["percent"] == 100.0 and progress["stage"] == "Writing"
    assert (progress["processed"], progress["total"], progress["warnings"]) == (20, 40, 1)
    assert progress["warning_messages"] == ["Some timestamps had to be inferred"]
    data_dir = Path(shared_server.env["EXECD_DATA_DIR"])
    me = client.get("/api/v1/me").json()["data"]
    report = data_dir / "artifacts" / me["project_id"] / done["uuid"] / "artifacts" / "report.txt"
    assert report.read_text() == "report for 40 rows"

    failed = submit(client, "core.python", {"callable": "crunch_mod:explode"})
    bad = wait_status(client, failed["id"])
    assert bad["status"] == "failed"
    assert bad["result"]["error"] == "ValueError: boom"
    assert "ValueError: boom" in bad["error"]
    stderr = client.get(f"/api/v1/executions/{failed['id']}/output/stderr").text
    assert "Traceback" in stderr


def test_shell_control_file_protocol(client: httpx.Client) -> None:
    script = """
        c="$EXECD_CONTROL_FILE"
        echo '{"percent": 50, "stage": "half", "processed": 5, "total": 10}' >> "$c"
        echo 'not json' >> "$c"
        echo data > out.csv
        echo '{"artifact": "out.csv", "errors": 2}' >> "$EXECD_CONTROL_FILE"
        echo '{"answer": 42}' > "$EXECD_RESULT_FILE"
    """
    done = wait_status(client, submit(client, "core.shell", {"cmd": script})["id"])
    assert done["status"] == "completed"
    assert done["result"] == {"answer": 42}
    assert done["progress"]["stage"] == "half"
    assert (done["progress"]["processed"], done["progress"]["errors"]) == (5, 2)


def test_http_runner(shared_server: Server, client: httpx.Client) -> None:
    ok = wait_status(
        client, submit(client, "core.http", {"url": shared_server.url + "/healthz"})["id"]
    )
    assert ok["status"] == "completed"
    assert ok["result"]["status_code"] == 200
    assert ok["result"]["body"]["status"] == "ok"
    missing = submit(client, "core.http", {"url": shared_server.url + "/nowhere"})
    failed = wait_status(client, missing["id"])
    assert failed["status"] == "failed" and failed["error"] == "HTTP 404"


def test_output_is_capped_with_a_marker(client: httpx.Client) -> None:
    done = wait_status(
        client,
        submit(client, "core.shell", {"cmd": "head -c 3000000 /dev/zero | tr '\\0' a"})["id"],
    )
    assert done["status"] == "completed"
    out = client.get(f"/api/v1/executions/{done['id']}/output/stdout").text
    assert out.startswith("a" * 1000)
    assert "[execd: output truncated:" in out
    assert len(out) < 1024 * 1024 + 200
