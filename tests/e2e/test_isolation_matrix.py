"""The cross-tenant matrix: every operation the server has, tried against tenant A's
objects by callers that must not reach them, on both backends.

The operations are read at run time: every path and method of the server's
/openapi.json, and every route of the app that the document leaves out (WebSockets,
hidden routes). Each path parameter gets real ids of tenant A's objects of the kind
its name says (`KINDS`), so a new route is covered without editing this file; a path
parameter with a new name fails the test until `KINDS` learns its kind. Bodies are
built from the request schema, with A's ids in the fields that name one, so that a
route would act if authorisation failed.

The callers: no token, a garbage token, a forged webhook signature, a viewer of A's
own project (whose writes must be refused) and a viewer, an operator and a tenant
admin of tenant B; each of the last four also with a dashboard session opened with its
token, sent (with the session's CSRF token in forms) to the dashboard's routes. Then:
no answer to the outsiders carried any of A's data (a string only A's objects hold,
that the request did not send itself), and A's state, as A's tenant admin sees it, is
what it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import io
import itertools
import re
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import orjson
import pytest
from fastapi.routing import iter_route_contexts
from starlette.routing import Mount, WebSocketRoute
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from execd.api.app import create_app
from execd.config import Settings
from execd.runtime import Runtime
from tests.support import Server, submit, wait_for, wait_status

# The garbage-token caller fails authentication hundreds of times a minute from the
# address every caller shares: the limit on that (tests/e2e/test_api_edges.py) is off.
SERVER_ENV = {"EXECD_AUTH_FAILURE_LIMIT": "off"}

# What each parameter or body field name holds: a kind of tenant A's ids (below).
KINDS = {
    "execution_id": "execution",
    "execution": "execution",
    "parent": "execution",
    "ids": "execution",
    "executionId": "execution_uuid",
    "actionId": "action_uuid",
    "resourceId": "action_uuid",
    "ref": "ref",
    "action_ref": "action_ref",
    "action": "action_ref",
    "trigger_ref": "trigger_ref",
    "trigger": "trigger_ref",
    "rule": "rule_ref",
    "flowId": "flow",
    "flow_id": "flow",
    "jobId": "job",
    "enforcement_id": "enforcement",
    "enforcement": "enforcement",
    "token_id": "token",
    "tenantId": "tenant",
    "tenant_id": "tenant",
    "projectId": "project",
    "project_id": "project",
    "project": "project",
    "path": "artifact",
    "stream": "stream",
    "status": "status",
    "last_event_id": "position",
    "offset": "offset",
}
# Plausible values for fields whose schema leaves them open.
VALUES = {"resourceType": "Action", "jobType": "Analysis", "runner": "shell", "role": "admin"}
SECRET = "an-hmac-secret-of-tenant-a-0123456789"
READS = {"GET", "HEAD", "WS"}
STREAM_SECONDS = 1.0  # how long an open stream is read


@dataclass
class Operation:
    method: str  # an HTTP method, or WS
    path: str  # with {name} placeholders
    spec: dict[str, Any] = field(default_factory=dict)  # its OpenAPI operation
    listed: bool = True  # in /openapi.json, or found among the app's routes only

    def parameters(self, where: str) -> list[dict[str, Any]]:
        return [p for p in self.spec.get("parameters", []) if p["in"] == where]

    @property
    def path_names(self) -> list[str]:
        return re.findall(r"\{(\w+)\}", self.path)


@dataclass
class Caller:
    name: str
    headers: dict[str, str]
    outsider: bool  # its answers must carry none of A's data
    forges: bool = False  # signs webhook bodies with a key of its own
    # The dashboard: the caller's session cookie (signed in with its token) and the
    # session's CSRF token, sent with every dashboard request and form.
    cookie: str = ""
    csrf: str = ""


DASHBOARD = "/ui/"
# Dashboard forms about the session itself, not tenant data: a viewer may send them.
SESSION_FORMS = {"/ui/sign-in", "/ui/sign-out", "/ui/project"}


def signed_in(server: Server, name: str, token: str, outsider: bool) -> Caller:
    """A caller with its token, and with a dashboard session opened with it."""
    browser = httpx.Client(base_url=server.url, timeout=30)
    try:
        form = browser.get("/ui/sign-in")
        nonce = re.search(r'name="nonce" value="([^"]+)"', form.text)
        assert nonce, form.text
        browser.post("/ui/sign-in", data={"nonce": nonce.group(1), "token": token})
        page = browser.get("/ui/executions")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf, page.text
        cookie = f"execd_session={browser.cookies['execd_session']}"
    finally:
        browser.close()
    headers = {"Authorization": f"Bearer {token}"}
    return Caller(name, headers, outsider, cookie=cookie, csrf=csrf.group(1))


@dataclass
class Victim:
    """Tenant A: its objects' ids by kind, the strings only its data holds, and a
    tenant admin to see its state with."""

    ids: dict[str, list[str]]
    owned: set[str]
    admin: httpx.Client
    base: str  # its tenant dialect paths

    def snapshot(self) -> dict[str, Any]:
        def data(path: str, **params: Any) -> Any:
            response = self.admin.get(path, params=params)
            assert response.status_code == 200, f"tenant A's admin reads {path}: {response.text}"
            body = response.json()
            body.pop("timestamp", None)  # when it answered (the flow dialect)
            return body

        tokens = [
            {k: v for k, v in t.items() if k != "last_used"}  # A's own calls move it
            for project in self.ids["project"]
            for t in data("/api/v1/tokens", project_id=project)["data"]
        ]
        [run] = self.ids["execution"][:1]
        return {
            "executions": data("/api/v1/executions", per_page=100),
            "actions": data("/api/v1/actions"),
            "triggers": data("/api/v1/triggers"),
            "rules": data("/api/v1/rules"),
            "enforcements": data("/api/v1/enforcements", per_page=100),
            "flows": data("/api/flows"),
            "flow runs": data("/api/history/executions"),
            "jobs": data(f"{self.base}/execution/jobs"),
            "tenants": data("/api/v1/tenants"),
            "projects": data("/api/v1/projects"),
            "tokens": tokens,
            "output": self.admin.get(f"/api/v1/executions/{run}/output/stdout").text,
        }


# -- tenant A --------------------------------------------------------------------------


def made(response: httpx.Response) -> Any:
    assert response.status_code in (200, 201, 202), response.text
    return response.json()


class Marked:
    """Names and values unique to this run, each kept as tenant A's own data."""

    def __init__(self) -> None:
        self.mark = uuid.uuid4().hex[:12]
        self.owned: set[str] = set()

    def __call__(self, label: str) -> str:
        value = f"{label}-{self.mark}"
        self.owned.add(value)
        return value


def build_victim(server: Server) -> Victim:
    m = Marked()
    system = server.client()
    tenant = made(system.post("/api/v1/tenants", json={"name": m("tenant")}))["data"]
    project = made(
        system.post("/api/v1/projects", json={"tenant_id": tenant["id"], "name": m("project")})
    )["data"]

    def token(client: httpx.Client, role: str, project_id: str = project["id"]) -> dict[str, Any]:
        body = {"name": m(role), "role": role, "project_id": project_id}
        data: dict[str, Any] = made(client.post("/api/v1/tokens", json=body))["data"]
        m.owned.add(data["token"])
        return data

    tokens = [token(system, "admin")]
    admin = server.client(tokens[0]["token"])
    second = made(
        admin.post("/api/v1/projects", json={"tenant_id": tenant["id"], "name": m("second")})
    )["data"]
    tokens += [
        token(admin, "operator"),
        token(admin, "viewer"),
        token(admin, "viewer", second["id"]),
    ]
    base = f"/api/{tenant['id']}/{project['id']}"
    ids = objects(server, server.client(tokens[1]["token"]), base, m)
    startup = [t for t in system.get("/api/v1/tokens").json()["data"] if t["startup"]]
    ids |= {
        "token": [str(t["id"]) for t in [*tokens, *startup]],
        "tenant": [tenant["id"]],
        "project": [project["id"], second["id"]],
        "stream": ["stdout", "stderr"],
        "status": ["completed"],
        "position": ["0-0"],
        "offset": ["0"],
    }
    uuids = ["tenant", "project", "execution_uuid", "action_uuid", "flow", "job"]
    owned = m.owned | {SECRET} | {i for kind in uuids for i in ids[kind]}
    return Victim(ids=ids, owned=owned, admin=admin, base=base)


def objects(server: Server, operator: httpx.Client, base: str, m: Marked) -> dict[str, list[str]]:
    """Tenant A's action, executions, flow, job, triggers, rule and enforcement, all
    finished (one execution waits an hour): their ids by kind."""
    parameters = {"note": {"type": "string"}, "key": {"type": "string", "secret": True}}
    action = made(
        operator.post(
            "/api/v1/actions",
            json={
                "ref": f"{m('pack')}.work",
                "runner": "shell",
                "entry_point": f'echo "{m("out")} $PARAM_NOTE"; echo "{m("err")}" >&2; '
                f'echo "{m("art")}" > "$EXECD_ARTIFACTS_DIR/{m("report")}.txt"',
                "parameters": {"type": "object", "properties": parameters},
                "description": m("description"),
            },
        )
    )["data"]
    run = submit(operator, action["ref"], {"note": m("note"), "key": m("key")})
    echo = submit(operator, "core.echo", {"message": m("echo")})
    later = submit(operator, "core.noop", delay=3600)

    step = {"action": "core.echo", "parameters": {"message": m("step")}}
    flow_body = {"name": m("flow"), "description": m("flow-description"), "steps": [step]}
    flow = made(operator.post("/api/flows", json=flow_body))["flow"]
    flow_run = made(operator.post(f"/api/flows/{flow['id']}/execute", json={}))["execution"]
    job = made(
        operator.post(
            f"{base}/execution/job",
            json={
                "jobName": m("job"),
                "jobType": "Analysis",
                "resource": {"resourceType": "Action", "resourceId": action["uuid"]},
                "parameters": {"note": m("job-note"), "key": m("job-key")},
            },
        )
    )["jobId"]

    hook = {"ref": m("hook"), "type": "webhook", "description": m("hook-description")}
    signed = {"ref": m("signed"), "type": "webhook", "config": {"auth": "hmac"}, "secret": SECRET}
    for trigger in (hook, signed):
        made(operator.post("/api/v1/triggers", json=trigger))
    rule = {
        "ref": m("rule"),
        "trigger": signed["ref"],
        "action_ref": "core.echo",
        "description": m("rule-description"),
        "parameters": {"message": "{{ payload.note }}"},
    }
    made(operator.post("/api/v1/rules", json=rule))
    payload = orjson.dumps({"note": m("payload")})
    fired = made(
        httpx.post(
            f"{server.url}/api/v1/webhooks/{signed['ref']}",
            content=payload,
            headers={
                "X-Execd-Signature": sign(SECRET, payload),
                "Content-Type": "application/json",
            },
        )
    )["data"]
    [enforcement] = fired["enforcements"]
    [by_rule] = enforcement["executions"]

    for execution_id in (run["id"], echo["id"], by_rule):
        assert wait_status(operator, execution_id)["status"] == "completed"
    flow_status = f"/api/history/executions/{flow_run['id']}"
    wait_for(lambda: operator.get(flow_status).json()["execution"]["status"] == "PASSED")
    job_status = f"{base}/execution/job/{job}"
    wait_for(lambda: operator.get(job_status).json()["status"] == "Completed")
    return {
        "execution": [str(i) for i in (run["id"], later["id"], echo["id"], by_rule)],
        "execution_uuid": [run["uuid"], flow_run["id"], job, later["uuid"], echo["uuid"]],
        "action_ref": [action["ref"]],
        "action_uuid": [action["uuid"]],
        "ref": [action["ref"], hook["ref"], signed["ref"], rule["ref"]],
        "trigger_ref": [signed["ref"], hook["ref"]],
        "rule_ref": [rule["ref"]],
        "flow": [flow["id"]],
        "job": [job],
        "enforcement": [str(enforcement["id"])],
        "artifact": [f"{m('report')}.txt"],
    }


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# -- the operations --------------------------------------------------------------------


def operations(server: Server, tmp_path: Path) -> list[Operation]:
    """Every operation of /openapi.json, then the app's routes it does not list."""
    document = httpx.get(server.url + "/openapi.json").json()
    schemas = document.get("components", {}).get("schemas", {})
    found = {
        (method.upper(), path): Operation(method.upper(), path, inline(spec, schemas))
        for path, item in document["paths"].items()
        for method, spec in item.items()
    }
    for method, path in app_routes(server, tmp_path):
        if (method, path) not in found:
            found[method, path] = Operation(method, path, listed=False)
            # A WebSocket takes the query of the HTTP route at its path, if there is one.
            if method == "WS" and ("GET", path) in found:
                found[method, path].spec = {"parameters": found["GET", path].parameters("query")}
    return list(found.values())


def inline(value: Any, schemas: dict[str, Any], inside: frozenset[str] = frozenset()) -> Any:
    """`value` with every `$ref` to a component schema replaced by the schema; one that
    holds itself (a JSON value, a tree of criteria) is left open the second time."""
    if isinstance(value, list):
        return [inline(v, schemas, inside) for v in value]
    if not isinstance(value, dict):
        return value
    if "$ref" in value:
        name = value["$ref"].rsplit("/", 1)[1]
        return {} if name in inside else inline(schemas[name], schemas, inside | {name})
    return {k: inline(v, schemas, inside) for k, v in value.items()}


def app_routes(server: Server, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The routes of the app the server runs, built here the same way (never started)."""
    settings = Settings(database_url=server.env["EXECD_DATABASE_URL"], data_dir=tmp_path)
    runtime = Runtime(settings)
    try:
        yield from _walk(create_app(runtime, workers=0).routes, "")
    finally:
        asyncio.run(runtime.db.dispose())


def _walk(routes: Any, prefix: str) -> Iterator[tuple[str, str]]:
    for context in iter_route_contexts(routes):
        route = context.original_route
        path = prefix + re.sub(r"\{(\w+):\w+\}", r"{\1}", context.path or "")
        if isinstance(route, Mount) and route.routes:
            yield from _walk(route.routes, path)
        elif isinstance(route, Mount):  # an app of its own (static files): any path
            yield "GET", path + "/{path}"
        elif isinstance(route, WebSocketRoute):
            yield "WS", path
        else:
            yield from ((method, path) for method in sorted(context.methods or ()))


# -- requests --------------------------------------------------------------------------


@dataclass
class Attempt:
    caller: Caller
    operation: Operation
    url: str
    params: dict[str, str]
    body: Any
    status: int = 0
    answer: str = ""

    @property
    def sent(self) -> str:
        return (
            self.url + " " + orjson.dumps(self.params).decode() + orjson.dumps(self.body).decode()
        )

    @property
    def failed_on_the_server(self) -> bool:
        if self.operation.method == "WS":  # a close code: 1011 or the dialect's 4000 + 5xx
            return self.status == 1011 or 4500 <= self.status < 4600 or 500 <= self.status < 600
        return self.status >= 500

    def __str__(self) -> str:
        where = f"{self.operation.method} {self.url} {self.params or ''}"
        return f"{self.caller.name}: {where} -> {self.status}"


def attempts(op: Operation, victim: Victim, callers: list[Caller]) -> Iterator[Attempt]:
    """The requests for one operation: one per combination of A's ids (each parameter
    walks its kind's ids), without and with the optional query parameters."""
    unknown = [name for name in op.path_names if name not in KINDS]
    assert not unknown, (
        f"{op.method} {op.path}: teach KINDS in {__file__} what kind of tenant A's ids "
        f"the path parameter(s) {unknown} hold"
    )
    queries = [q for q in op.parameters("query") if q["name"] in KINDS or q.get("required")]
    kinds = [KINDS[n] for n in op.path_names] + [
        KINDS[q["name"]] for q in queries if q["name"] in KINDS
    ]
    body_schema = _json_schema(op)
    kinds += _kinds_in(body_schema or {})
    if op.path.startswith(DASHBOARD) and op.method == "POST":
        kinds.append("project")
    rounds = max([len(victim.ids[k]) for k in kinds] + [1])
    for index, with_query in itertools.product(range(rounds), (False, True)):
        if with_query and not queries:
            continue
        pick = picker(victim.ids, index)
        path = op.path
        for name in op.path_names:
            path = path.replace("{" + name + "}", quote(pick(KINDS[name]), safe=""))
        params = {
            q["name"]: str(example(q.get("schema", {}), q["name"], pick))
            for q in queries
            if with_query or q.get("required")
        }
        body = example(body_schema, "", pick) if body_schema is not None else None
        if op.path.startswith(DASHBOARD) and op.method == "POST":
            # A form as the dashboard's pages send it, naming A's objects where it can.
            body = {"project": pick("project"), "enabled": "false", "parameters": "{}"}
        for caller in callers:
            if caller.forges and not _signed(op):
                continue
            yield Attempt(caller, op, path, params, body)


def picker(ids: dict[str, list[str]], index: int) -> Callable[[str], str]:
    """The index-th id of a kind, walking round its ids."""

    def pick(kind: str) -> str:
        return ids[kind][index % len(ids[kind])]

    return pick


def _kinds_in(schema: dict[str, Any]) -> list[str]:
    """The kinds of A's ids a body built from this schema holds."""
    found = []
    for sub in [*schema.get("anyOf", []), *schema.get("oneOf", []), schema.get("items", {})]:
        found += _kinds_in(sub) if sub else []
    for key, sub in schema.get("properties", {}).items():
        found += [KINDS[key]] if key in KINDS else _kinds_in(sub)
    return found


def _signed(op: Operation) -> bool:
    return any("signature" in h["name"].lower() for h in op.parameters("header"))


def _json_schema(op: Operation) -> dict[str, Any] | None:
    content = op.spec.get("requestBody", {}).get("content", {})
    schema: dict[str, Any] | None = content.get("application/json", {}).get("schema")
    return schema


def example(schema: dict[str, Any], name: str, pick: Callable[[str], str]) -> Any:
    """A value for a field: one of A's ids if its name says which kind, else what its
    schema allows (only required fields of objects are filled)."""
    options = schema.get("anyOf", schema.get("oneOf", []))
    options = [s for s in options if s.get("type") != "null"]
    if options:
        schema = options[0]
    kind = schema.get("type")
    if name in KINDS:
        value = pick(KINDS[name])
        if kind == "array":
            return [_typed(schema.get("items", {}), value)]
        return _typed(schema, value)
    if name in VALUES:
        return VALUES[name]
    if "enum" in schema:
        return schema["enum"][0]
    if kind == "object":
        required = set(schema.get("required", []))
        return {
            key: example(sub, key, pick)
            for key, sub in schema.get("properties", {}).items()
            if key in required or key in KINDS
        }
    if kind == "array":
        return [example(schema.get("items", {}), "", pick)] if schema.get("minItems") else []
    if kind in ("integer", "number"):
        return max(1, int(schema.get("minimum", 1)))
    if kind == "boolean":
        return True
    if schema.get("format") == "date-time":
        return "2030-01-01T00:00:00Z"
    return "probe" + "x" * max(0, int(schema.get("minLength", 0)) - 5)


def _typed(schema: dict[str, Any], value: str) -> Any:
    return int(value) if schema.get("type") == "integer" else value


async def perform_all(server: Server, planned: list[Attempt]) -> list[Attempt]:
    """Every attempt, a few at a time, through one client."""
    limit = asyncio.Semaphore(8)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:

        async def one(attempt: Attempt) -> Attempt:
            async with limit:
                if attempt.operation.method == "WS":
                    return await _socket(server, attempt)
                return await _request(client, attempt)

        return await asyncio.gather(*(one(a) for a in planned))


async def _request(client: httpx.AsyncClient, attempt: Attempt) -> Attempt:
    headers = dict(attempt.caller.headers)
    content = orjson.dumps(attempt.body) if attempt.body is not None else None
    if attempt.caller.forges:
        content = orjson.dumps({"forged": True})
        headers["X-Execd-Signature"] = sign("not-the-secret-of-anyone", content)
    if content is not None:
        headers["Content-Type"] = "application/json"
    # Not to sign-out, which would end the session for the caller's other attempts.
    if (
        attempt.url.startswith(DASHBOARD)
        and attempt.caller.cookie
        and "sign-out" not in attempt.url
    ):
        headers["Cookie"] = attempt.caller.cookie
    if attempt.url.startswith(DASHBOARD) and isinstance(attempt.body, dict):
        content = urlencode({**attempt.body, "csrf": attempt.caller.csrf}).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    method, url, params = attempt.operation.method, attempt.url, attempt.params
    async with client.stream(
        method, url, params=params, content=content, headers=headers
    ) as answer:
        attempt.status = answer.status_code
        if attempt.caller.outsider:  # what the others read is theirs to read
            attempt.answer = str(answer.headers) + await _read(answer)
    return attempt


async def _read(answer: httpx.Response) -> str:
    """The body, or what an endless stream sent in its first moments."""
    body = b""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(STREAM_SECONDS):
            async for chunk in answer.aiter_bytes():
                body += chunk
    if body.startswith(b"PK\x03\x04"):  # an archive: the names and contents of its files
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            files = archive.namelist()
            return " ".join(f"{n} {archive.read(n).decode(errors='replace')}" for n in files)
    return body.decode(errors="replace")


async def _socket(server: Server, attempt: Attempt) -> Attempt:
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in attempt.params.items())
    url = server.url.replace("http://", "ws://") + attempt.url + (f"?{query}" if query else "")
    texts: list[str] = []
    try:
        async with connect(url, additional_headers=attempt.caller.headers, proxy=None) as socket:
            attempt.status = 101
            with contextlib.suppress(TimeoutError, ConnectionClosed):
                async with asyncio.timeout(STREAM_SECONDS):
                    async for message in socket:
                        texts.append(str(message))
            attempt.status = socket.close_code or attempt.status
    except InvalidStatus as refused:
        attempt.status = refused.response.status_code
        texts.append((refused.response.body or b"").decode(errors="replace"))
    attempt.answer = "\n".join(texts)
    return attempt


# -- the test --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def victim(shared_server: Server) -> Victim:
    return build_victim(shared_server)


def outsiders(server: Server) -> list[Caller]:
    """Tenant B's viewer, operator and tenant admin."""
    system = server.client()
    tenant = made(system.post("/api/v1/tenants", json={"name": f"b-{uuid.uuid4().hex[:8]}"}))
    project = made(
        system.post("/api/v1/projects", json={"tenant_id": tenant["data"]["id"], "name": "b"})
    )["data"]
    callers = []
    for role in ("viewer", "operator", "admin"):
        body = {"name": f"b-{role}", "role": role, "project_id": project["id"]}
        token = made(system.post("/api/v1/tokens", json=body))["data"]["token"]
        callers.append(signed_in(server, f"tenant B {role}", token, True))
    return callers


# Operations whose answers repeat what the outsiders' own requests sent (the audit log
# of tenant B's tokens, which the matrix has sent A's ids): A's strings there must have
# been sent by some outsider, not just by this request.
ECHOES = {"/api/v1/audit"}


def problems(attempt: Attempt, victim: Victim, echoed: str = "") -> Iterator[str]:
    if attempt.failed_on_the_server:
        yield "a server error"
    if attempt.caller.outsider:
        sent = attempt.sent + (echoed if attempt.operation.path in ECHOES else "")
        leaked = sorted(s for s in victim.owned if s in attempt.answer and s not in sent)
        if leaked:
            yield f"carries tenant A's {leaked}"
    elif (
        attempt.operation.method not in READS
        and attempt.url not in SESSION_FORMS
        and not 400 <= attempt.status < 500
    ):
        yield "a viewer's write was not refused"
    if attempt.caller.forges and attempt.status != 401:
        yield "a forged signature was not refused"


def test_no_other_caller_reads_or_changes_tenant_a(
    shared_server: Server, victim: Victim, tmp_path: Path
) -> None:
    viewer = made(
        victim.admin.post("/api/v1/tokens", json={"name": "same-project viewer", "role": "viewer"})
    )["data"]["token"]
    callers = [
        Caller("no token", {}, True),
        Caller("garbage token", {"Authorization": "Bearer execd_not-a-token-at-all"}, True),
        Caller("forged signature", {}, True, forges=True),
        signed_in(shared_server, "tenant A viewer", viewer, False),
        *outsiders(shared_server),
    ]
    ops = operations(shared_server, tmp_path)
    unlisted = {op.method for op in ops if not op.listed}
    assert {"WS", "GET"} <= unlisted, "the app's routes were not read (only the document's)"
    before = victim.snapshot()

    planned = [a for op in ops for a in attempts(op, victim, callers)]
    done = asyncio.run(perform_all(shared_server, planned))
    echoed = " ".join(a.sent for a in planned if a.caller.outsider)
    failures = [f"{a}: {problem}" for a in done for problem in problems(a, victim, echoed)]
    assert not failures, "\n".join(failures[:50])
    # The outsiders' sessions were used: A's executions are "not found" to them (or
    # refused first for their role), never a way to the sign-in page.
    seen = [
        a
        for a in done
        if a.caller.cookie and a.caller.outsider and a.url.startswith("/ui/executions/")
    ]
    statuses = {a.status for a in seen}
    assert 404 in statuses and statuses <= {403, 404}, sorted({str(a) for a in seen})[:10]

    after = victim.snapshot()
    for part in before:
        assert after[part] == before[part], f"tenant A's {part} changed"
    assert "unhandled_error" not in shared_server.log()
