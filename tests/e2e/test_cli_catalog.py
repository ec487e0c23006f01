"""The CLI covers the service: actions, flows, triggers, rules, enforcements,
tenants and projects, created, shown, changed and deleted with the real `execd`
against a real server."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from tests.e2e import test_cli_client
from tests.e2e.test_cli_client import Cli, plain_env
from tests.support import Server, new_project, wait_for

cli = test_cli_client.cli  # the fixture: an operator of a project of its own


def definition(tmp_path: Path, name: str, body: object) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(body) if name.endswith(".json") else str(body))
    return str(path)


def signed_in(server: Server, token: str, home: Path) -> Cli:
    return Cli(plain_env(home, EXECD_URL=server.url, EXECD_TOKEN=token), home.parent)


def test_an_action_from_create_to_delete(cli: Cli, tmp_path: Path) -> None:
    action = definition(
        tmp_path,
        "action.yaml",
        "ref: cat.greet\nrunner: shell\nentry_point: echo hi\ndescription: first\n",
    )
    made = cli.json("actions", "create", "-f", action)
    assert (made["ref"], made["enabled"], made["description"]) == ("cat.greet", True, "first")
    again = cli("actions", "create", "-f", action)
    assert again.returncode == 6 and "(409)" in again.stderr

    shown = cli.ok("actions", "show", "cat.greet").stdout
    assert re.search(r"^description\s+first$", shown, re.M)
    assert cli.json("actions", "get", "cat.greet") == cli.json("actions", "show", "cat.greet")

    changed = definition(tmp_path, "changed.json", {"runner": "shell", "entry_point": "echo 2"})
    updated = cli.json("actions", "update", "cat.greet", "-f", changed)
    assert (updated["entry_point"], updated["description"]) == ("echo 2", "")

    assert cli.ok("actions", "disable", "cat.greet").stdout == "action cat.greet disabled\n"
    assert cli.json("actions", "show", "cat.greet")["enabled"] is False
    refused = cli("run", "cat.greet")
    assert refused.returncode == 6 and "disabled" in refused.stderr
    assert cli.json("actions", "enable", "cat.greet")["enabled"] is True
    assert cli.json("actions", "show", "cat.greet")["entry_point"] == "echo 2"  # kept

    gone = cli.json("actions", "delete", "cat.greet")
    assert gone == {"kind": "action", "name": "cat.greet", "deleted": True}
    missing = cli("actions", "show", "cat.greet")
    assert missing.returncode == 6 and "(404)" in missing.stderr


def test_a_flow_from_create_to_delete(cli: Cli, tmp_path: Path) -> None:
    steps = [{"name": "say", "action": "core.echo", "parameters": {"message": "hi"}}]
    flow = definition(tmp_path, "flow.json", {"name": "cat-flow", "steps": steps})
    made = cli.json("flows", "create", "-f", flow)
    assert made["name"] == "cat-flow" and len(made["steps"]) == 1

    shown = cli.ok("flows", "show", "cat-flow").stdout  # by name
    assert re.search(r"^1\s+say\s+core\.echo\s", shown, re.M), shown
    assert cli.json("flows", "show", made["id"])["id"] == made["id"]  # or by id

    twice = definition(
        tmp_path,
        "flow2.json",
        {"name": "cat-flow", "description": "two", "steps": [*steps, {**steps[0], "name": "b"}]},
    )
    updated = cli.json("flows", "update", "cat-flow", "-f", twice)
    assert (updated["id"], updated["description"], len(updated["steps"])) == (made["id"], "two", 2)

    assert cli.ok("flows", "delete", "cat-flow").stdout == "flow cat-flow deleted\n"
    missing = cli("flows", "show", "cat-flow")
    assert missing.returncode == 6 and "no flow" in missing.stderr
    assert "enable" not in cli.ok("flows", "--help").stdout  # flows have no enabled state


@pytest.mark.slow
def test_triggers_rules_and_their_enforcements(cli: Cli, tmp_path: Path) -> None:
    trigger = definition(tmp_path, "trigger.yaml", "ref: cat-hook\ntype: webhook\n")
    made = cli.ok("triggers", "create", "-f", trigger).stdout
    assert made == "trigger cat-hook created\n"
    rule = definition(
        tmp_path,
        "rule.yaml",
        "ref: cat-rule\ntrigger: cat-hook\naction_ref: core.echo\n"
        "parameters: {message: '{{ payload.word }}'}\n",
    )
    assert cli.json("rules", "create", "-f", rule)["trigger"] == "cat-hook"

    listed = cli.ok("triggers", "list").stdout.splitlines()
    assert listed[0].split() == ["REF", "TYPE", "ENABLED", "NEXT", "FIRE", "DESCRIPTION"]
    assert [t["ref"] for t in cli.json("triggers", "list")] == ["cat-hook"]
    shown = cli.json("triggers", "show", "cat-hook")
    assert shown["webhook_url"] == "/api/v1/webhooks/cat-hook" and shown["secret"] is None
    assert re.search(r"^trigger\s+cat-hook$", cli.ok("rules", "show", "cat-rule").stdout, re.M)

    hmac = definition(tmp_path, "hmac.json", {"type": "webhook", "config": {"auth": "hmac"}})
    updated = cli.ok("triggers", "update", "cat-hook", "-f", hmac).stdout
    assert re.fullmatch(r"trigger cat-hook updated\nwebhook secret \(shown once\): \S+\n", updated)
    # No type in the file: the trigger keeps its own (read first).
    plain = definition(tmp_path, "plain.yaml", "description: token again\n")
    replaced = cli.json("triggers", "update", "cat-hook", "-f", plain)
    assert (replaced["type"], replaced["config"]["auth"]) == ("webhook", "token")

    changed = definition(
        tmp_path,
        "rule2.json",
        {"trigger": "cat-hook", "action_ref": "core.echo", "description": "v2",
         "parameters": {"message": "{{ payload.word }}"}},
    )  # fmt: skip
    assert cli.json("rules", "update", "cat-rule", "-f", changed)["description"] == "v2"

    # Firing: a disabled rule makes no enforcement, a disabled trigger refuses.
    assert cli.ok("rules", "disable", "cat-rule").stdout == "rule cat-rule disabled\n"
    quiet = cli.ok("triggers", "fire", "cat-hook", "-d", '{"word": "x"}').stdout
    assert quiet == "trigger cat-hook fired: no rule matched\n"
    assert cli.json("rules", "enable", "cat-rule")["enabled"] is True
    assert cli.json("triggers", "disable", "cat-hook")["enabled"] is False
    refused = cli("triggers", "fire", "cat-hook")
    assert refused.returncode == 6 and "(409)" in refused.stderr
    assert cli.ok("triggers", "enable", "cat-hook").stdout == "trigger cat-hook enabled\n"

    (tmp_path / "payload.yaml").write_text("word: hello\n")
    fired = cli.json("triggers", "fire", "cat-hook", "-f", "payload.yaml")
    [enforcement] = fired["enforcements"]
    assert (enforcement["rule_ref"], enforcement["status"]) == ("cat-rule", "succeeded")
    [execution_id] = enforcement["executions"]

    table = cli.ok("enforcements", "list", "--rule", "cat-rule").stdout.splitlines()
    assert table[0].split() == ["ID", "RULE", "TRIGGER", "STATUS", "EXECUTIONS", "CREATED"]
    assert table[1].split()[:5] == [
        str(enforcement["id"]), "cat-rule", "cat-hook", "succeeded", str(execution_id)
    ]  # fmt: skip
    assert [e["id"] for e in cli.json("enforcements", "list", "--status", "succeeded")] == [
        enforcement["id"]
    ]
    assert cli.json("enforcements", "list", "--status", "failed") == []
    one = cli.json("enforcements", "show", str(enforcement["id"]))
    assert one["payload"] == {"word": "hello"} and one["executions"] == [execution_id]
    shown_one = cli.ok("enforcements", "show", str(enforcement["id"])).stdout
    assert re.search(r"^trigger ref\s+cat-hook$", shown_one, re.M)
    ran = wait_for(
        lambda: (
            (e := cli.json("executions", "get", str(execution_id)))["status"] == "completed" and e
        ),
        message="the rule's execution",
    )
    assert "hello" in json.dumps(ran["result"])

    both = cli("triggers", "fire", "cat-hook", "-d", "{}", "-f", "payload.yaml")
    assert both.returncode == 2 and "not both" in both.stderr
    in_use = cli("triggers", "delete", "cat-hook")
    assert in_use.returncode == 6 and "(409)" in in_use.stderr
    assert cli.json("rules", "delete", "cat-rule")["deleted"] is True
    assert cli.ok("triggers", "delete", "cat-hook").stdout == "trigger cat-hook deleted\n"
    assert cli.json("rules", "list") == [] and cli.json("triggers", "list") == []


def test_definitions_that_are_not_one_are_refused_before_sending(cli: Cli, tmp_path: Path) -> None:
    listed = definition(tmp_path, "list.json", [{"ref": "a"}])
    refused = cli("rules", "create", "-f", listed)
    assert refused.returncode == 2 and "does not hold a definition" in refused.stderr
    broken = definition(tmp_path, "broken.yaml", "ref: [unclosed\n")
    bad_yaml = cli("actions", "create", "-f", broken)
    assert (bad_yaml.returncode, bad_yaml.stdout) == (2, "")
    assert bad_yaml.stderr == (
        f"error: {broken}: not valid YAML (line 1, column 6: while parsing a flow sequence, "
        "expected ',' or ']', but got '<stream end>' on line 2)\n"
    )
    bad_json = cli("triggers", "fire", "x", "-d", "{nope")
    assert bad_json.returncode == 2
    assert bad_json.stderr == (
        "error: --data: not valid JSON (line 1, column 2: unexpected character, "
        "expected a string key)\n"
    )
    absent = cli("triggers", "create", "-f", "absent.yaml")
    assert absent.returncode == 2 and "cannot read" in absent.stderr


def test_tenants_and_projects_as_admin_and_refused_to_others(
    shared_server: Server, admin: httpx.Client, tmp_path: Path
) -> None:
    system = signed_in(shared_server, shared_server.env["EXECD_ADMIN_TOKEN"], tmp_path / "s")
    tenant = system.json("tenants", "create", "cat-tenant")
    assert tenant["name"] == "cat-tenant" and tenant["id"]
    assert tenant["id"] in [t["id"] for t in system.json("tenants", "list")]
    assert re.search(rf"^{tenant['id']}\s+cat-tenant\s", system.ok("tenants", "list").stdout, re.M)
    made = system.ok("projects", "create", "etl", "--tenant-id", tenant["id"]).stdout
    assert re.fullmatch(rf"project etl created in tenant {tenant['id']}: \S+\n", made)
    projects = system.json("projects", "list", "--tenant-id", tenant["id"])
    assert [(p["name"], p["tenant_id"]) for p in projects] == [("etl", tenant["id"])]

    # A tenant admin: its own tenant only, and new projects go there by default.
    tenant_id, _, token = new_project(admin, role="admin")
    tenant_admin = signed_in(shared_server, token, tmp_path / "t")
    assert [t["id"] for t in tenant_admin.json("tenants", "list")] == [tenant_id]
    assert tenant_admin.json("projects", "create", "more")["tenant_id"] == tenant_id
    refused = tenant_admin("tenants", "create", "not-mine")
    assert refused.returncode == 6 and "403" in refused.stderr, refused.stderr

    _, _, operator_token = new_project(admin)
    operator = signed_in(shared_server, operator_token, tmp_path / "o")
    for args in (("tenants", "list"), ("projects", "list"), ("projects", "create", "x")):
        refused = operator(*args)
        assert refused.returncode == 6, (args, refused.stderr)
        assert refused.stderr.startswith("error: the token's role does not allow this (403")
        assert "Traceback" not in refused.stderr and refused.stdout == ""


def test_help_groups_the_commands_and_cuts_nothing(tmp_path: Path) -> None:
    local = Cli(plain_env(tmp_path, COLUMNS="80"), tmp_path)
    top = local.ok("--help").stdout
    client_panel = top.index("Client commands (talk to a server")
    server_panel = top.index("Server commands (run the service")
    assert client_panel < server_panel
    client_part, server_part = top[client_panel:server_panel], top[server_panel:]
    for name in ("run", "triggers", "enforcements", "tenants", "projects", "token"):
        assert re.search(rf"^  {name}\s", client_part, re.M), name
    for name in ("serve", "worker", "migrate", "gc", "rollup", "secrets"):
        assert re.search(rf"^  {name}\s", server_part, re.M), name
    for args in ((), ("executions",), ("triggers",), ("run",), ("worker",), ("flows", "run")):
        shown = local.ok(*args, "--help").stdout
        assert "..." not in shown.replace("[ARGS]...", "").replace("[ID]...", ""), args
        assert "list[str]" not in shown, args
        assert max(len(line) for line in shown.splitlines()) <= 80, args
    assert local.ok("executions", "download", "--help").stdout.count("[default:") == 1
