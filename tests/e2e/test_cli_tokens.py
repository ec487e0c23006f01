"""`execd token create | list | revoke` as users run them: scopes and expiry, through a
server and straight into the database, on both backends."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import httpx

from tests.e2e.test_cli import execd
from tests.e2e.test_cli_client import Cli, plain_env
from tests.support import Deployment, Server, new_project


def when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_a_system_admin_token_straight_into_the_database(deployment: Deployment) -> None:
    env = deployment.env()
    for bad, message in [
        (["--role", "viewer", "--scope", "system"], "scope"),
        (["--role", "admin", "--expires", "next tuesday"], "ISO 8601"),
        (["--role", "admin", "--expires-in", "0"], "expires_in"),
    ]:
        refused = execd("token", "create", "--direct", "--name", "x", *bad, env=env)
        assert refused.returncode == 2, refused.stdout
        assert message in refused.stderr and "Traceback" not in refused.stderr
    # Options of the other way are refused, not ignored (a token for the wrong project).
    for mixed, message in [
        (["--tenant", "acme", "--project", "etl", "--create"], "--tenant, --project, --create"),
        (["--direct", "--project-id", "p"], "--project-id goes through the server"),
    ]:
        refused = execd("token", "create", "--name", "x", *mixed, env=env)
        assert refused.returncode == 2 and message in refused.stderr, refused.stderr
        assert "token" not in refused.stdout

    created = execd(
        "token", "create", "--direct", "--name", "ops", "--role", "admin",
        "--scope", "system", "--expires", "2999-01-01T00:00:00Z", env=env,
    )  # fmt: skip
    assert created.returncode == 2 and "ten years" in created.stderr  # too far away
    created = execd(
        "token", "create", "--direct", "--name", "ops", "--role", "admin",
        "--scope", "system", "--expires-in", "3600", "--create", env=env,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    token = dict(re.findall(r"^(\w+)\s+(\S+)$", created.stdout, re.M))["token"]

    server = deployment.server(workers=0)
    ops = server.client(token)
    assert ops.get("/api/v1/me").json()["data"]["scope"] == "system"
    assert ops.post("/api/v1/tenants", json={"name": "made-by-ops"}).status_code == 201
    [listed] = [t for t in ops.get("/api/v1/tokens").json()["data"] if t["name"] == "ops"]
    lives = (when(listed["expires"]) - when(listed["created"])).total_seconds()
    assert abs(lives - 3600) < 1


def test_token_create_list_and_revoke_through_the_server(
    shared_server: Server, admin: httpx.Client, tmp_path: Path
) -> None:
    system = Cli(
        plain_env(
            tmp_path,
            EXECD_URL=shared_server.url,
            EXECD_TOKEN=shared_server.env["EXECD_ADMIN_TOKEN"],
        ),
        tmp_path,
    )
    made = system.json(
        "token", "create", "--name", "night-ops", "--role", "admin", "--scope", "system",
        "--expires", "2030-01-01T00:00:00+01:00",
    )  # fmt: skip
    assert (made["scope"], made["startup"]) == ("system", False)
    assert when(made["expires"]) == datetime(2029, 12, 31, 23, tzinfo=UTC)
    human = system.ok(
        "token", "create", "--name", "short", "--role", "viewer", "--expires-in", "600"
    )
    assert re.search(r"^scope\s+project\s*$", human.stdout, re.M)
    assert re.search(r"^token\s+execd_\S+\s*$", human.stdout, re.M)

    listed = {t["name"]: t for t in system.json("token", "list")}
    assert listed["night-ops"]["scope"] == "system" and "token" not in listed["night-ops"]
    assert listed["short"]["expires"] is not None
    startup = next(t for t in listed.values() if t["startup"] and t["revoked"] is None)
    table = system.ok("token", "list").stdout
    assert re.search(r"^\s*\d+\s+night-ops\s+admin\s+system\s", table, re.M)
    assert "LAST USED" in table and "system (startup)" in table

    revoked = system.ok("token", "revoke", str(made["id"]))
    assert f"revoked token {made['id']}" in revoked.stdout
    kept = system("token", "revoke", str(startup["id"]))
    assert kept.returncode == 6 and "EXECD_ADMIN_TOKEN" in kept.stderr and "(409)" in kept.stderr

    # A tenant admin makes tokens for its tenant only.
    _, project_id, token = new_project(admin, role="admin")
    tenant_admin = Cli(
        plain_env(tmp_path / "t", EXECD_URL=shared_server.url, EXECD_TOKEN=token), tmp_path
    )
    refused = tenant_admin("token", "create", "--name", "x", "--role", "admin", "--scope", "system")
    assert refused.returncode == 6 and "403" in refused.stderr
    ours = tenant_admin.json("token", "create", "--name", "ci", "--project-id", project_id)
    assert ours["scope"] == "project" and ours["project_id"] == project_id
    elsewhere = tenant_admin("token", "list", "--project-id", startup["project_id"])
    assert elsewhere.returncode == 6 and "(404)" in elsewhere.stderr


def test_token_create_prints_the_same_through_the_server_and_direct(
    deployment: Deployment, tmp_path: Path
) -> None:
    env = deployment.env()
    args = ("token", "create", "--role", "admin", "--scope", "system", "--expires-in", "600")
    direct = execd(*args, "--name", "direct", "--direct", "--create", "--json", env=env)
    assert direct.returncode == 0, direct.stderr
    made = json.loads(direct.stdout)

    server = deployment.server(workers=0)
    through = Cli(plain_env(tmp_path, EXECD_URL=server.url, EXECD_TOKEN=made["token"]), tmp_path)
    answered = through.json(*args, "--name", "served")
    assert answered.keys() == made.keys()
    for field in ("role", "scope", "tenant_id", "project_id", "startup", "revoked"):
        assert answered[field] == made[field], field
    assert (made["name"], answered["name"]) == ("direct", "served")

    human_direct = execd(*args, "--name", "d2", "--direct", env=env).stdout
    human_served = through.ok(*args, "--name", "s2").stdout
    names = [re.findall(r"^(\w+)\s", text, re.M) for text in (human_direct, human_served)]
    assert names[0] == names[1] == [
        "id", "name", "role", "tenant", "project", "scope", "expires", "token"
    ]  # fmt: skip
