"""Fill a fresh database with a realistic history of executions, fast.

    python bench/seed.py --backend sqlite -n 1000000            # prints the URL it filled
    python bench/seed.py --backend postgresql -n 1000000
    python bench/seed.py --url sqlite:////tmp/big.db -n 200000

The schema comes from the real migrations; then N executions over the last 30 days,
in id order of creation, written with the driver's fastest path (executemany on
SQLite, COPY on PostgreSQL):

* two projects of one tenant, "bench" (90 %) and "other" (10 %), each with 20 actions
  `bench.action0` ... `bench.action19`; `bench.action0` is the busy one (8 % of the
  bench project's executions, over 60,000 at N=1,000,000);
* final statuses 88 % completed, 7 % failed, 2 % cancelled, 2 % timeout, 1 %
  abandoned, run times 0.1 s to a few minutes; the newest ones still running or
  waiting for a worker;
* every status change as an `execution_events` row (requested, scheduling,
  scheduled, running, then the final status), as the queue writes them;
* 5 % of the bench project's submissions are executions of one of five flows (a
  PARENT execution and its two steps).

Artifacts live in files, not in the database, so there are no artifact rows to make.
At the end the statistics are refreshed (ANALYZE; VACUUM ANALYZE on PostgreSQL) and
the analytics rollups sealed, as a server that ran all along would have them.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import create_engine, make_url

from execd.store import analytics
from execd.store.database import sync_url
from execd.store.migrate import upgrade

PG_ADMIN = os.environ.get("EXECD_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
DAY = 86400.0
ACTIONS = 20
BUSY_SHARE = 0.08
FLOW_SHARE = 0.05
OTHER_SHARE = 0.10
FINAL = (("completed", 0.88), ("failed", 0.07), ("cancelled", 0.02), ("timeout", 0.02))
# (abandoned takes the rest)
ERRORS = {
    "failed": "exit status 1",
    "timeout": "timed out after 60 s",
    "abandoned": "the worker was lost",
    "cancelled": "cancelled",
}

EXECUTION_COLUMNS = (
    "id", "uuid", "tenant_id", "project_id", "action_id", "action_ref", "pack", "runner",
    "entry_point", "parameters", "status", "priority", "attempt", "max_attempts", "fence",
    "parent_id", "root_id", "worker_id", "submitted_by", "result", "error", "exit_code",
    "created", "updated", "started", "ended", "flow_id", "sequence", "plan",
)  # fmt: skip
EVENT_COLUMNS = (
    "id", "execution_id", "tenant_id", "project_id", "from_status", "to_status", "at",
    "attempt", "worker_id", "message", "txid",
)  # fmt: skip


def fresh_database(backend: str) -> tuple[str, str | None]:
    """A new empty database: its URL, and its name on PostgreSQL (to drop it later)."""
    if backend == "sqlite":
        return f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}", None
    name = "execd_bench_" + uuid.uuid4().hex[:8]
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name, name


def drop_database(name: str | None) -> None:
    if name is not None:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Project:
    id: str
    name: str
    actions: list[tuple[int, str, str]]  # (id, uuid, ref)
    flows: list[str] = field(default_factory=list)


@dataclass
class Seeded:
    """What was written: ids the benchmarks need."""

    tenant_id: str
    projects: dict[str, Project]
    executions: int
    events: int

    @property
    def bench(self) -> Project:
        return self.projects["bench"]

    def to_json(self) -> dict[str, Any]:
        bench = self.bench
        return {
            "tenant_id": self.tenant_id,
            "project_id": bench.id,
            "busy_action": {"uuid": bench.actions[0][1], "ref": bench.actions[0][2]},
            "executions": self.executions,
            "events": self.events,
        }


class Writer:
    """Rows into the two big tables, a batch at a time, by each backend's fast path."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self.postgres = parsed.get_backend_name() != "sqlite"
        if self.postgres:
            conninfo = sync_url(url).set(drivername="postgresql")
            self.pg = psycopg.connect(conninfo.render_as_string(hide_password=False))
        else:
            self.lite = sqlite3.connect(str(parsed.database), isolation_level=None)
            for pragma in ("synchronous=OFF", "cache_size=-1000000", "temp_store=MEMORY"):
                self.lite.execute(f"PRAGMA {pragma}")

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        if self.postgres:
            self.pg.execute(sql.replace("?", "%s"), params)  # type: ignore[arg-type]
        else:
            self.lite.execute(sql, params)

    def rows(self, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        if self.postgres:
            with self.pg.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join("?" * len(columns))
            self.lite.execute("BEGIN")
            self.lite.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows
            )
            self.lite.execute("COMMIT")

    def commit(self) -> None:
        if self.postgres:
            self.pg.commit()

    def finish(self) -> None:
        if self.postgres:
            for table in ("executions", "execution_events", "actions"):
                self.pg.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT max(id) FROM {table}))"
                )
            self.pg.commit()
            self.pg.autocommit = True
            self.pg.execute("VACUUM ANALYZE")
            self.pg.close()
        else:
            self.lite.execute("ANALYZE")
            self.lite.close()


def _final(rng: random.Random) -> str:
    draw = rng.random()
    for status, share in FINAL:
        if draw < share:
            return status
        draw -= share
    return "abandoned"


class History:
    """Generates executions and their events, oldest first."""

    def __init__(self, tenant_id: str, now: float, seed: int = 7) -> None:
        self.tenant_id = tenant_id
        self.now = now
        self.rng = random.Random(seed)
        self.next_id = 1
        self.next_event = 1
        self.executions: list[tuple[Any, ...]] = []
        self.events: list[tuple[Any, ...]] = []

    def execution(
        self,
        project: Project,
        created: float,
        action: tuple[int | None, str, str],
        *,
        status: str | None = None,
        parent: int | None = None,
        sequence: int | None = None,
        flow: str | None = None,
        execution_id: int | None = None,
        span: tuple[float | None, float | None] | None = None,
    ) -> tuple[str, float | None]:
        """One execution with its events: its final status and end. `span` gives its
        start and end (a flow's are its steps')."""
        rng, now = self.rng, self.now
        action_id, _, ref = action
        started: float | None = created + rng.uniform(0.002, 0.5)
        ended: float | None = started + rng.lognormvariate(1.5, 1.2) + 0.1  # type: ignore[operator]
        if span is not None:
            started, ended = span
        if status is None:
            status = _final(rng)
        if ended is None or ended >= now:
            running = started is not None and started < now
            status, ended = ("running", None) if running else ("scheduling", None)
            started = started if running else None
        if status == "cancelled":
            started = None
        if execution_id is None:
            execution_id = self.next_id
            self.next_id += 1
        error = ERRORS.get(status)
        plan = None
        if flow is not None:
            plan = json.dumps({"flowId": flow, "name": "flow", "parameters": {}, "steps": []})
        self.executions.append((
            execution_id, str(uuid.UUID(int=rng.getrandbits(128), version=4)), self.tenant_id,
            project.id, action_id, ref, ref.split(".")[0], "flow" if flow else "local", "noop",
            "{}", status, 1, 1, 1, 1, parent, parent, None if status == "scheduling" else 1,
            "bench", json.dumps({"ok": True}) if status == "completed" else None, error,
            {"failed": 1, "completed": 0}.get(status), created,
            ended or started or created, started, ended, flow, sequence, plan,
        ))  # fmt: skip
        path: list[tuple[str | None, str, float]] = [
            (None, "requested", created),
            ("requested", "scheduling", created),
        ]
        if status == "cancelled" and ended is not None:
            path.append(("scheduling", "cancelled", ended))
        elif status != "scheduling" and started is not None:
            path.append(("scheduling", "scheduled", created + 0.001))
            path.append(("scheduled", "running", started))
            if ended is not None:
                path.append(("running", status, ended))
        for from_status, to_status, at in path:
            worker = None if to_status in ("requested", "scheduling") else 1
            self.events.append((
                self.next_event, execution_id, self.tenant_id, project.id, from_status,
                to_status, at, 1, worker, None, 0,
            ))  # fmt: skip
            self.next_event += 1
        return status, ended

    def flow(self, project: Project, created: float) -> int:
        """A PARENT execution and its two steps, one after the other; returns how many
        executions were written."""
        flow = project.flows[self.rng.randrange(len(project.flows))]
        parent = self.next_id
        self.next_id += 1
        place = len(self.executions)
        self.executions.append(())  # the parent's row, once its steps have run
        outcome = "failed" if self.rng.random() < 0.05 else "completed"
        at, status, ended = created + 0.01, outcome, None
        first_start = None
        written = 1
        for sequence in (1, 2):
            step = project.actions[self.rng.randrange(1, ACTIONS)]
            status, ended = self.execution(
                project, at, step, status=outcome, parent=parent, sequence=sequence
            )
            first_start = first_start or self.executions[-1][24]
            written += 1
            if ended is None:
                break
            at = ended
        span = (first_start, ended)
        core = (None, "", "core.flow")
        self.execution(project, created, core, status=status, flow=flow, execution_id=parent,
                       span=span)  # fmt: skip
        self.executions[place] = self.executions.pop()
        return written

    def take(self) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        executions, events = self.executions, self.events
        self.executions, self.events = [], []
        return executions, sorted(events)


def fill(
    url: str, n: int, now: float, *, days: float = 30, seed: int = 7, seal: bool = True
) -> Seeded:
    """N executions created over the `days` before `now` (the database must be
    migrated and hold nothing yet); with `seal`, the hours that are over rolled up."""
    writer = Writer(url)
    tenant = str(uuid.uuid4())
    writer.execute(
        "INSERT INTO tenants (id, name, created) VALUES (?, ?, ?)", (tenant, "bench", now)
    )
    projects: dict[str, Project] = {}
    action_id = 0
    for name in ("bench", "other"):
        project = Project(str(uuid.uuid4()), name, [])
        writer.execute(
            "INSERT INTO projects (id, tenant_id, name, created) VALUES (?, ?, ?, ?)",
            (project.id, tenant, name, now - days * DAY),
        )
        for i in range(ACTIONS):
            action_id += 1
            action = (action_id, str(uuid.uuid4()), f"bench.action{i}")
            project.actions.append(action)
            writer.execute(
                "INSERT INTO actions (id, uuid, tenant_id, project_id, ref, pack, runner, "
                "entry_point, parameters, enabled, description, created, updated) "
                "VALUES (?, ?, ?, ?, ?, 'bench', 'local', 'noop', '{}', ?, '', ?, ?)",
                (
                    action[0],
                    action[1],
                    tenant,
                    project.id,
                    action[2],
                    True,
                    now - days * DAY,
                    now - days * DAY,
                ),
            )
        projects[name] = project
    bench = projects["bench"]
    for i in range(5):
        flow = str(uuid.uuid4())
        steps = json.dumps([{"name": f"step {s}", "action": f"bench.action{s}"} for s in (1, 2)])
        writer.execute(
            "INSERT INTO flows (id, tenant_id, project_id, name, description, parameters, "
            "steps, calls, created, updated) VALUES (?, ?, ?, ?, '', '{}', ?, '[]', ?, ?)",
            (flow, tenant, bench.id, f"flow {i}", steps, now - days * DAY, now - days * DAY),
        )
        bench.flows.append(flow)
    writer.commit()

    history = History(tenant, now, seed)
    rng = random.Random(seed + 1)
    # Mean executions per submission: a flow writes three.
    per_submission = 1 + (1 - OTHER_SHARE) * FLOW_SHARE * 2
    step = days * DAY / n * per_submission
    created, written, events = now - days * DAY, 0, 0
    while written < n:
        created += rng.expovariate(1 / step)
        created = min(created, now - rng.random())
        if created > now - 10:  # the last seconds: waiting for a worker
            history.execution(bench, created, bench.actions[1], span=(None, None))
            written += 1
        elif rng.random() < OTHER_SHARE:
            project = projects["other"]
            history.execution(project, created, project.actions[rng.randrange(ACTIONS)])
            written += 1
        elif rng.random() < FLOW_SHARE and n - written >= 3:
            written += history.flow(bench, created)
        else:
            busy = rng.random() < BUSY_SHARE
            action = bench.actions[0 if busy else rng.randrange(1, ACTIONS)]
            history.execution(bench, created, action)
            written += 1
        if len(history.executions) >= 20_000 or written >= n:
            rows, event_rows = history.take()
            writer.rows("executions", EXECUTION_COLUMNS, rows)
            writer.rows("execution_events", EVENT_COLUMNS, event_rows)
            writer.commit()
            events += len(event_rows)
    writer.finish()
    if seal:
        roll_up(url)
    return Seeded(tenant, projects, written, events)


def roll_up(url: str) -> int:
    """Roll up every hour that is over, as `execd rollup` does."""
    engine = create_engine(sync_url(url))
    hours = 0
    try:
        while True:
            with engine.begin() as conn:
                done = analytics.seal(conn, max_hours=24 * 7)
            if not done:
                return hours
            hours += done
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--url", help="an empty database to fill (default: a fresh one)")
    parser.add_argument("-n", type=int, default=1_000_000)
    args = parser.parse_args()
    url = args.url or fresh_database(args.backend)[0]
    upgrade(url)
    began = time.perf_counter()
    result = fill(url, args.n, time.time())
    print(
        json.dumps(
            {"url": url, **result.to_json(), "seconds": round(time.perf_counter() - began, 1)}
        )
    )


if __name__ == "__main__":
    main()
