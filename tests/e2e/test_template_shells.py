"""Template values reach a shell as data (issue 12): through a flow step, through a rule
fired by an HMAC-signed webhook sent with no token, and through a `command` action whose
argv runs a shell. Each placeholder stands outside quotes, inside double quotes and
inside single quotes; the action prints every value back and lists its work directory,
where an injected `touch pwned` would show."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import httpx
import orjson

from tests.support import Server, get, wait_for, wait_status

VALUES = {
    "quote": "'",
    "dquote": '"',
    "subst": "$(id)",
    "backtick": "`touch pwned`",
    "semicolon": "; touch pwned",
    "and": "&& touch pwned",
    "newline": "\ntouch pwned",
    "star": "*",
    "all": "'\"$(id)`touch pwned`; touch pwned && touch pwned\n* '\\'' \\",
}
PLACES = {"outside": "{}", "double": '"{}"', "single": "'{}'"}
# `ok` exists before the values are printed, so an unquoted `*` would show as `<ok>`.
PRINTED = "".join(f"<{value}>\n" for value in VALUES.values()) + "ok\n"


def script(place: str, placeholder: str) -> str:
    words = " ".join(PLACES[place].format(placeholder.format(name)) for name in VALUES)
    return f"touch ok; printf '<%s>\\n' {words}; ls -A"


def make(client: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(path, json=body)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def stdout(client: httpx.Client, execution_id: int) -> str:
    response = client.get(f"/api/v1/executions/{execution_id}/output/stdout")
    assert response.status_code == 200, response.text
    return response.text


def assert_shown_as_run(config: dict[str, Any], prefix: str) -> None:
    """The execution shows the script as it ran, and the values beside it."""
    for name, value in VALUES.items():
        assert config["env"][f"{prefix}_{name.upper()}"] == value
    assert "pwned" not in config["cmd"] and "$(id)" not in config["cmd"]


def test_flow_step_values_reach_the_shell_as_data(client: httpx.Client) -> None:
    steps = [
        {"name": place, "action": "core.shell",
         "parameters": {"cmd": script(place, "{{{{ parameters.{} }}}}")}}
        for place in PLACES
    ]  # fmt: skip
    created = client.post("/api/flows", json={"name": "quoting", "steps": steps})
    assert created.status_code == 201, created.text
    flow_id = created.json()["flow"]["id"]
    started = client.post(f"/api/flows/{flow_id}/execute", json={"parameters": VALUES})
    assert started.status_code == 201, started.text
    execution_id = started.json()["execution"]["id"]

    def ended() -> dict[str, Any] | None:
        found: dict[str, Any] = client.get(f"/api/history/executions/{execution_id}").json()
        execution = found["execution"]
        return execution if execution["status"] in {"PASSED", "FAILED"} else None

    done = wait_for(ended, timeout=30, message="the flow's end")
    assert done["status"] == "PASSED", done
    for step in done["steps"]:
        assert step["executionData"]["stdout"] == PRINTED, step["name"]

    listed = client.get("/api/v1/executions", params={"per_page": 100}).json()["data"]
    ran = [get(client, e["id"]) for e in listed if e["action_ref"] == "core.shell"]
    assert len(ran) == len(PLACES)
    for execution in ran:
        assert_shown_as_run(execution["config"], "TEMPLATE_PARAMETERS")


def signed(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_webhook_values_reach_the_shell_as_data(
    shared_server: Server, client: httpx.Client
) -> None:
    trigger = make(
        client, "/api/v1/triggers",
        {"ref": "quoting-hook", "type": "webhook", "config": {"auth": "hmac"}},
    )  # fmt: skip
    for place in PLACES:
        make(
            client, "/api/v1/rules",
            {"ref": f"shell-{place}", "trigger": "quoting-hook", "action_ref": "core.shell",
             "parameters": {"cmd": script(place, "{{{{ payload.{} }}}}")}},
        )  # fmt: skip
    # A command action whose argv runs a shell, filled from the same payload.
    argv_script = "touch ok; printf '<%s>\\n' " + " ".join(
        f"{{{name}}} \"{{{name}}}\" '{{{name}}}'" for name in VALUES
    ) + "; ls -A"  # fmt: skip
    make(
        client, "/api/v1/actions",
        {"ref": "quoting.argv", "runner": "command",
         "entry_point": ["/usr/bin/env", "bash", "-c", argv_script],
         "parameters": {"type": "object",
                        "properties": {name: {"type": "string"} for name in VALUES}}},
    )  # fmt: skip
    make(
        client, "/api/v1/rules",
        {"ref": "argv", "trigger": "quoting-hook", "action_ref": "quoting.argv",
         "parameters": {name: f"{{{{ payload.{name} }}}}" for name in VALUES}},
    )  # fmt: skip

    body = orjson.dumps(VALUES)
    with httpx.Client(base_url=shared_server.url, timeout=10) as anonymous:
        fired = anonymous.post(
            "/api/v1/webhooks/quoting-hook",
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Execd-Signature": signed(trigger["secret"], body),
            },
        )
    assert fired.status_code == 202, fired.text
    found = {e["rule_ref"]: e for e in fired.json()["data"]["enforcements"]}
    assert set(found) == {"shell-outside", "shell-double", "shell-single", "argv"}
    for ref, enforcement in found.items():
        assert enforcement["status"] == "succeeded", enforcement
        [execution_id] = enforcement["executions"]
        done = wait_status(client, execution_id)
        assert done["status"] == "completed", done
        if ref == "argv":
            thrice = "".join(f"<{value}>\n" * 3 for value in VALUES.values())
            assert stdout(client, execution_id) == thrice + "ok\n"
            assert done["config"] == VALUES
        else:
            assert stdout(client, execution_id) == PRINTED, ref
            assert_shown_as_run(done["config"], "TEMPLATE_PAYLOAD")


def test_a_value_the_shell_would_evaluate_is_refused(client: httpx.Client) -> None:
    step = {"action": "core.shell",
            "parameters": {"cmd": "echo $(( {{ parameters.n }} + 1 ))"}}  # fmt: skip
    created = client.post("/api/flows", json={"name": "arithmetic", "steps": [step]})
    assert created.status_code == 201, created.text
    flow_id = created.json()["flow"]["id"]
    refused = client.post(f"/api/flows/{flow_id}/execute", json={"parameters": {"n": "1"}})
    assert refused.status_code == 400, refused.text
    assert refused.json()["code"] == "INVALID_PARAMETERS"
    assert "$(( ))" in refused.json()["message"]
