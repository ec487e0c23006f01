"""Template values reach a shell as data (issue 12): through a flow step, through a rule
fired by an HMAC-signed webhook sent with no token, and through a `command` action whose
argv runs a shell. Where a placeholder stands outside quotes, inside double quotes or as
a nested shell's positional parameter, the action prints every value back and lists its
work directory, where an injected `touch pwned` would show. Where a value could be read
as code (single quotes, a nested shell's script, eval, xargs, bash arithmetic), nothing
runs and the answer says where the placeholder stands."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import httpx
import orjson
import pytest

from tests.support import Server, get, submit, wait_for, wait_status

VALUES = {
    "quote": "'",
    "dquote": '"',
    "subst": "$(id)",
    "backtick": "`touch pwned`",
    "semicolon": "; touch pwned",
    "and": "&& touch pwned",
    "newline": "\ntouch pwned",
    "star": "*",
    "subscript": "a[$(touch pwned)]",
    "all": "'\"$(id)`touch pwned`; touch pwned && touch pwned\n* '\\'' \\",
}
PLACES = {"outside": "{}", "double": '"{}"'}
# `ok` exists before the values are printed, so an unquoted `*` would show as `<ok>`.
PRINTED = "".join(f"<{value}>\n" for value in VALUES.values()) + "ok\n"
# A nested shell gets the values as its positional parameters: data as well.
NESTED = 'touch ok; sh -c \'printf "<%s>\\n" "$@"\' sh {}; ls -A'


def script(place: str, placeholder: str) -> str:
    words = " ".join(PLACES[place].format(placeholder.format(name)) for name in VALUES)
    return f"touch ok; printf '<%s>\\n' {words}; ls -A"


def nested(placeholder: str) -> str:
    return NESTED.format(" ".join(placeholder.format(name) for name in VALUES))


def make(client: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(path, json=body)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def output(client: httpx.Client, execution_id: int, stream: str = "stdout") -> str:
    response = client.get(f"/api/v1/executions/{execution_id}/output/{stream}")
    assert response.status_code == 200, response.text
    return response.text


def assert_shown_as_run(config: dict[str, Any], prefix: str) -> None:
    """The execution shows the script as it ran, and the values beside it."""
    for name, value in VALUES.items():
        assert config["env"][f"{prefix}_{name.upper()}"] == value
    assert "pwned" not in config["cmd"] and "$(id)" not in config["cmd"]


def run_flow(client: httpx.Client, cmds: dict[str, str]) -> httpx.Response:
    steps = [
        {"name": name, "action": "core.shell", "parameters": {"cmd": cmd}}
        for name, cmd in cmds.items()
    ]
    created = client.post("/api/flows", json={"name": "quoting", "steps": steps})
    assert created.status_code == 201, created.text
    flow_id = created.json()["flow"]["id"]
    return client.post(f"/api/flows/{flow_id}/execute", json={"parameters": VALUES})


def test_flow_step_values_reach_the_shell_as_data(client: httpx.Client) -> None:
    cmds = {place: script(place, "{{{{ parameters.{} }}}}") for place in PLACES}
    cmds["nested"] = nested("{{{{ parameters.{} }}}}")
    started = run_flow(client, cmds)
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
    assert len(ran) == len(cmds)
    for execution in ran:
        assert_shown_as_run(execution["config"], "TEMPLATE_PARAMETERS")


@pytest.mark.parametrize(
    ("cmd", "says"),
    [
        ("bash -c 'echo A:{{ parameters.all }}'", "{{ parameters.all }} inside single quotes"),
        ('sh -c "echo B:{{ parameters.all }}"', "{{ parameters.all }} in the script sh runs"),
        (
            'echo D: | xargs -I{} sh -c "echo {}{{ parameters.all }}"',
            "{{ parameters.all }} in the arguments of xargs",
        ),
        ("eval echo E:{{ parameters.all }}", "{{ parameters.all }} in the arguments of eval"),
        ("echo {{ parameters.all }} | sh", "{{ parameters.all }} in a command whose output"),
        ("echo $(( {{ parameters.subscript }} + 1 ))", "{{ parameters.subscript }} in arithmetic"),
        ("{{ parameters.semicolon }}", "{{ parameters.semicolon }} as the program to run"),
    ],
)
def test_a_flow_step_where_a_value_could_be_code_is_refused(
    client: httpx.Client, cmd: str, says: str
) -> None:
    refused = run_flow(client, {"step": cmd})
    assert refused.status_code == 400, refused.text
    assert refused.json()["code"] == "INVALID_PARAMETERS"
    assert f"cmd: {says}" in refused.json()["message"]
    assert client.get("/api/v1/executions").json()["data"] == []  # nothing ran


def signed(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def fire(server: Server, trigger: dict[str, Any], payload: dict[str, str]) -> dict[str, Any]:
    """Sends the webhook signed, with no token; returns the enforcements by rule."""
    body = orjson.dumps(payload)
    with httpx.Client(base_url=server.url, timeout=10) as anonymous:
        fired = anonymous.post(
            f"/api/v1/webhooks/{trigger['ref']}",
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Execd-Signature": signed(trigger["secret"], body),
            },
        )
    assert fired.status_code == 202, fired.text
    return {e["rule_ref"]: e for e in fired.json()["data"]["enforcements"]}


def hmac_trigger(client: httpx.Client, ref: str) -> dict[str, Any]:
    return make(
        client, "/api/v1/triggers", {"ref": ref, "type": "webhook", "config": {"auth": "hmac"}}
    )


def test_webhook_values_reach_the_shell_as_data(
    shared_server: Server, client: httpx.Client
) -> None:
    trigger = hmac_trigger(client, "quoting-hook")
    cmds = {f"shell-{place}": script(place, "{{{{ payload.{} }}}}") for place in PLACES}
    cmds["shell-nested"] = nested("{{{{ payload.{} }}}}")
    for ref, cmd in cmds.items():
        make(
            client, "/api/v1/rules",
            {"ref": ref, "trigger": "quoting-hook", "action_ref": "core.shell",
             "parameters": {"cmd": cmd}},
        )  # fmt: skip
    # A command action whose argv runs a shell, filled from the same payload: each value
    # outside quotes, inside double quotes and as a positional parameter of the script.
    argv_script = "touch ok; printf '<%s>\\n' " + " ".join(
        f"{{{name}}} \"{{{name}}}\" \"${{{i}}}\"" for i, name in enumerate(VALUES, 1)
    ) + "; ls -A"  # fmt: skip
    make(
        client, "/api/v1/actions",
        {"ref": "quoting.argv", "runner": "command",
         "entry_point": ["/usr/bin/env", "bash", "-c", argv_script, "bash",
                         *(f"{{{name}}}" for name in VALUES)],
         "parameters": {"type": "object",
                        "properties": {name: {"type": "string"} for name in VALUES}}},
    )  # fmt: skip
    make(
        client, "/api/v1/rules",
        {"ref": "argv", "trigger": "quoting-hook", "action_ref": "quoting.argv",
         "parameters": {name: f"{{{{ payload.{name} }}}}" for name in VALUES}},
    )  # fmt: skip

    found = fire(shared_server, trigger, VALUES)
    assert set(found) == {*cmds, "argv"}
    for ref, enforcement in found.items():
        assert enforcement["status"] == "succeeded", enforcement
        [execution_id] = enforcement["executions"]
        done = wait_status(client, execution_id)
        assert done["status"] == "completed", done
        if ref == "argv":
            thrice = "".join(f"<{value}>\n" * 3 for value in VALUES.values())
            assert output(client, execution_id) == thrice + "ok\n"
            assert done["config"] == VALUES
        else:
            assert output(client, execution_id) == PRINTED, ref
            assert_shown_as_run(done["config"], "TEMPLATE_PAYLOAD")


def test_a_webhook_into_a_nested_shell_fails_its_enforcement(
    shared_server: Server, client: httpx.Client
) -> None:
    trigger = hmac_trigger(client, "deploy-hook")
    make(
        client, "/api/v1/rules",
        {"ref": "deploy", "trigger": "deploy-hook", "action_ref": "core.shell",
         "parameters": {"cmd": "bash -c 'echo deploying {{ payload.branch }}'"}},
    )  # fmt: skip
    branch = "main; echo INJECTED-BY-WEBHOOK $(id -u)"
    found = fire(shared_server, trigger, {"branch": branch})
    assert found["deploy"]["status"] == "failed"
    assert found["deploy"]["executions"] == []
    assert "cmd: {{ payload.branch }} inside single quotes is refused" in found["deploy"]["error"]
    assert client.get("/api/v1/executions").json()["data"] == []


# Bash evaluates a value as arithmetic in each of these, and the command substitution in
# an array subscript runs.
ARITHMETIC = {
    "(( {n} > 3 ))": "{n} in arithmetic ($(( )) or (( )))",
    "s=abc; echo ${s:{n}}": "{n} inside ${...}",
    "[[ {n} -gt 3 ]]": "{n} inside [[ ]]",
    "a=(x); echo ${a[{n}]}": "{n} inside ${...}",
    "let x={n}": "{n} in the arguments of let",
    "declare -i i={n}": "{n} in the arguments of declare",
}
INJECTING = "a[$(echo INJECTED >&2)]"


def test_bash_arithmetic_in_a_command_action_fails_the_run(client: httpx.Client) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "string"}}}
    ran = {}
    for index, body in enumerate(ARITHMETIC):
        make(
            client, "/api/v1/actions",
            {"ref": f"arith.a{index}", "runner": "command", "entry_point": ["bash", "-c", body],
             "parameters": schema},
        )  # fmt: skip
        ran[body] = submit(client, f"arith.a{index}", {"n": INJECTING})["id"]
    # The control: the same place written by hand with the variable does run the command.
    make(
        client, "/api/v1/actions",
        {"ref": "arith.by-hand", "runner": "command",
         "entry_point": ["bash", "-c", '(( "$PARAM_N" > 3 ))'], "parameters": schema},
    )  # fmt: skip
    by_hand = submit(client, "arith.by-hand", {"n": INJECTING})["id"]
    wait_status(client, by_hand)
    assert "INJECTED" in output(client, by_hand, "stderr")

    for body, says in ARITHMETIC.items():
        done = wait_status(client, ran[body])
        assert done["status"] == "failed", (body, done)
        assert done["error"].startswith(f"entry_point: {says} is refused"), (body, done)
        assert output(client, ran[body], "stderr") == ""
