"""The one schema, for SQLite and PostgreSQL. Alembic migrations must produce exactly this.

Timestamps are seconds since the Unix epoch (double precision) taken from the
database clock: one representation, comparable and sortable on both backends.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# A 64-bit key that is SQLite's rowid alias there (INTEGER PRIMARY KEY).
Id = BigInteger().with_variant(Integer(), "sqlite")
Json = JSON().with_variant(JSONB(), "postgresql")
Uuid = String(36)
Ts: Double[float] = Double()

tenants = Table(
    "tenants",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("created", Ts, nullable=False),
)

projects = Table(
    "projects",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("tenant_id", Uuid, ForeignKey("tenants.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("created", Ts, nullable=False),
    UniqueConstraint("tenant_id", "name"),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", Uuid, ForeignKey("tenants.id"), nullable=False),
    Column("project_id", Uuid, ForeignKey("projects.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created", Ts, nullable=False),
    Column("revoked", Ts),
    # How far an admin token reaches: "tenant" or "system" ("project" for the others).
    Column("scope", String(16), nullable=False, server_default="project"),
    # The token `execd serve` keeps (EXECD_ADMIN_TOKEN): replaced at start, never revoked.
    Column("startup", Boolean, nullable=False, server_default=false()),
    Column("expires", Ts),
    # Written at most once a minute per token (engine/accounts.py).
    Column("last_used", Ts),
    sqlite_autoincrement=True,
)

# Sign-ins to the dashboard (api/dashboard): the browser's cookie holds the session id,
# this table its SHA-256 hash, the token it was opened with (by the token's hash: when
# the startup token is replaced, its sessions end) and the project it shows.
dashboard_sessions = Table(
    "dashboard_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("token_hash", String(64), nullable=False),
    Column("project_id", Uuid, ForeignKey("projects.id"), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created", Ts, nullable=False),
    Column("expires", Ts, nullable=False, index=True),
)

actions = Table(
    "actions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("uuid", Uuid, nullable=False, unique=True),
    Column("tenant_id", Uuid, ForeignKey("tenants.id"), nullable=False),
    Column("project_id", Uuid, ForeignKey("projects.id"), nullable=False),
    Column("ref", String(300), nullable=False),
    Column("pack", String(100), nullable=False),
    Column("runner", String(32), nullable=False),
    Column("entry_point", Text, nullable=False),
    Column("parameters", Json, nullable=False),
    Column("timeout", Double),
    Column("retry", Json),
    Column("enabled", Boolean, nullable=False),
    Column("description", Text, nullable=False),
    Column("created", Ts, nullable=False),
    Column("updated", Ts, nullable=False),
    Column("created_by", String(200)),
    # Network and limits of its processes (domain/sandbox.py); NULL: the defaults.
    Column("sandbox", Json),
    UniqueConstraint("project_id", "ref"),
    sqlite_autoincrement=True,
)

executions = Table(
    "executions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("uuid", Uuid, nullable=False, unique=True),
    Column("tenant_id", Uuid, ForeignKey("tenants.id"), nullable=False),
    Column("project_id", Uuid, ForeignKey("projects.id"), nullable=False),
    Column("action_id", BigInteger),
    Column("action_ref", String(300), nullable=False),
    Column("pack", String(100), nullable=False),
    # The runner and entry point are copied at submission: editing an action
    # later does not change what an accepted execution runs.
    Column("runner", String(32), nullable=False),
    Column("entry_point", Text, nullable=False),
    Column("parameters", Json, nullable=False),
    # Names of the parameters marked secret: masked in every answer.
    Column("secrets", Json),
    # The action's sandbox options, copied like the runner and entry point.
    Column("sandbox", Json),
    Column("status", String(16), nullable=False),
    Column("priority", SmallInteger, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("retry_policy", Json),
    # Fencing token: bumped at every claim; a worker's writes carry the value it
    # claimed with, so a worker that lost its lease cannot overwrite a newer claim.
    Column("fence", Integer, nullable=False),
    Column("parent_id", BigInteger),
    Column("root_id", BigInteger),
    Column("enforcement_id", BigInteger),
    Column("rule_id", BigInteger),
    Column("retry_of", BigInteger),
    Column("worker_id", BigInteger),
    Column("not_before", Ts),
    Column("timeout", Double),
    Column("idempotency_key", String(255)),
    Column("submitted_by", String(200)),
    Column("progress", Json),
    Column("usage", Json),
    Column("result", Json),
    Column("error", Text),
    Column("exit_code", Integer),
    Column("pid", Integer),
    Column("lease_expires", Ts),
    Column("created", Ts, nullable=False),
    Column("updated", Ts, nullable=False),
    Column("started", Ts),
    Column("ended", Ts),
    # Flows (the flow history API): the device a run is bound to, the flow a PARENT or SUBFLOW
    # execution runs, a step's number within its parent, and the compiled plan of a
    # flow execution (what its steps run, fixed at submission).
    Column("device_id", String(255)),
    Column("flow_id", Uuid),
    Column("sequence", Integer),
    Column("plan", Json),
    # Jobs (the tenant API): an execution submitted as a job has a type and job details
    # (name, description, resource, scheduling, notifications, retry reason).
    Column("job_type", String(32)),
    Column("job", Json),
    # How a cancel asked a running execution to stop: {"force": ..., "discard": ...}.
    Column("cancel_request", Json),
    UniqueConstraint("project_id", "idempotency_key"),
    sqlite_autoincrement=True,
)

# Lists are per project, newest first.
Index("ix_executions_project_id_id", executions.c.project_id, executions.c.id)
Index(
    "ix_executions_project_id_status_id",
    executions.c.project_id,
    executions.c.status,
    executions.c.id,
)
Index(
    "ix_executions_project_id_action_ref_id",
    executions.c.project_id,
    executions.c.action_ref,
    executions.c.id,
)
Index(
    "ix_executions_project_id_pack_id", executions.c.project_id, executions.c.pack, executions.c.id
)
# A `created` range (the v1 lists' filter): counted from the index alone, its newest
# page taken from the index before any row is read.
Index(
    "ix_executions_project_id_created_id",
    executions.c.project_id,
    executions.c.created,
    executions.c.id,
)
# Links to other executions: indexed only where set (migration 0005 says why).
for _column in ("parent_id", "enforcement_id", "retry_of"):
    _set = text(f"{_column} IS NOT NULL")
    Index(
        f"ix_executions_{_column}",
        executions.c[_column],
        sqlite_where=_set,
        postgresql_where=_set,
    )

# The claimable set: only rows waiting for a worker are in this index, so claiming
# stays as fast with a million finished executions as with none.
# Work bound to a device has an index of its own: a backlog waiting for a device that is
# busy or offline must not slow down every other claim.
READY_SQL = text("status = 'scheduling' AND device_id IS NULL")
Index(
    "ix_executions_ready",
    executions.c.priority.desc(),
    executions.c.id,
    sqlite_where=READY_SQL,
    postgresql_where=READY_SQL,
)
DEVICE_READY_SQL = text("status = 'scheduling' AND device_id IS NOT NULL")
Index(
    "ix_executions_device_ready",
    executions.c.device_id,
    executions.c.priority.desc(),
    executions.c.id,
    sqlite_where=DEVICE_READY_SQL,
    postgresql_where=DEVICE_READY_SQL,
)
Index(
    "ix_executions_delayed",
    executions.c.not_before,
    sqlite_where=text("status = 'requested'"),
    postgresql_where=text("status = 'requested'"),
)
# Queries over leased rows use this very text, so SQLite sees the partial indexes apply.
LEASED_SQL = text("status IN ('scheduled', 'running', 'canceling')")
Index(
    "ix_executions_leased",
    executions.c.lease_expires,
    sqlite_where=LEASED_SQL,
    postgresql_where=LEASED_SQL,
)
Index(
    "ix_executions_worker_leased",
    executions.c.worker_id,
    sqlite_where=LEASED_SQL,
    postgresql_where=LEASED_SQL,
)

# Flow executions (PARENT and SUBFLOW rows), newest first, per project and per flow.
FLOW_ROWS = text("flow_id IS NOT NULL")
Index(
    "ix_executions_flow_rows",
    executions.c.project_id,
    executions.c.id,
    sqlite_where=FLOW_ROWS,
    postgresql_where=FLOW_ROWS,
)
Index(
    "ix_executions_flow_id_id",
    executions.c.flow_id,
    executions.c.id,
    sqlite_where=FLOW_ROWS,
    postgresql_where=FLOW_ROWS,
)
Index(
    "ix_executions_flow_rows_status",
    executions.c.project_id,
    executions.c.status,
    executions.c.id,
    sqlite_where=FLOW_ROWS,
    postgresql_where=FLOW_ROWS,
)
# The flow history API's statistics (per status, over a window of `created`), read from the
# index alone.
Index(
    "ix_executions_flow_rows_created",
    executions.c.project_id,
    executions.c.status,
    executions.c.created,
    executions.c.started,
    executions.c.ended,
    executions.c.parent_id,
    executions.c.flow_id,  # SQLite reads only what an index holds once it holds each column
    sqlite_where=FLOW_ROWS,
    postgresql_where=FLOW_ROWS,
)
# Analytics: what ended in an hour (rollups) or a window, read from the index alone.
Index(
    "ix_executions_analytics",
    executions.c.ended,
    executions.c.project_id,
    executions.c.action_ref,
    executions.c.status,
    executions.c.started,
)
# Today's figures per tenant (the tenant API's system status).
Index("ix_executions_tenant_id_ended", executions.c.tenant_id, executions.c.ended)
JOBS = text("job_type IS NOT NULL")
Index(
    "ix_executions_jobs",
    executions.c.project_id,
    executions.c.id,
    sqlite_where=JOBS,
    postgresql_where=JOBS,
)
# The jobs list's summary counts, read from the index alone.
Index(
    "ix_executions_jobs_status",
    executions.c.project_id,
    executions.c.status,
    sqlite_where=JOBS,
    postgresql_where=JOBS,
)
# A device runs one top-level execution (a flow with all its steps) at a time: the
# database refuses a second holder even if two claims race.
DEVICE_HELD = text(
    "device_id IS NOT NULL AND parent_id IS NULL "
    "AND status IN ('scheduled', 'running', 'canceling')"
)
Index(
    "ux_executions_device_holder",
    executions.c.device_id,
    unique=True,
    sqlite_where=DEVICE_HELD,
    postgresql_where=DEVICE_HELD,
)

flows = Table(
    "flows",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("tenant_id", Uuid, ForeignKey("tenants.id"), nullable=False),
    Column("project_id", Uuid, ForeignKey("projects.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=False),
    # Default values of the flow's parameters.
    Column("parameters", Json, nullable=False),
    Column("steps", Json, nullable=False),
    # Ids of the flows its steps call: what cycle checks and "in use" checks read.
    Column("calls", Json, nullable=False),
    Column("created", Ts, nullable=False),
    Column("updated", Ts, nullable=False),
    Column("created_by", String(200)),
)
Index("ix_flows_project_id_created", flows.c.project_id, flows.c.created)

# Job notifications (e-mail, webhook): queued in the transaction that ends the job,
# sent and retried by the notifier; a delivery never changes the job.
notifications = Table(
    "notifications",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("execution_id", BigInteger, nullable=False),
    Column("tenant_id", Uuid, nullable=False),
    Column("project_id", Uuid, nullable=False),
    Column("channel", String(16), nullable=False),  # email | webhook
    Column("target", Text, nullable=False),  # an address, or a URL
    Column("event", String(16), nullable=False),  # completed | failed
    Column("state", String(16), nullable=False),  # pending | sent | failed
    Column("attempts", Integer, nullable=False),
    Column("next_attempt", Ts),
    Column("last_error", Text),
    Column("created", Ts, nullable=False),
    Column("sent", Ts),
    sqlite_autoincrement=True,
)
Index("ix_notifications_execution_id", notifications.c.execution_id)
Index(
    "ix_notifications_due",
    notifications.c.next_attempt,
    sqlite_where=text("state = 'pending'"),
    postgresql_where=text("state = 'pending'"),
)

execution_events = Table(
    "execution_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("execution_id", BigInteger, nullable=False),
    Column("tenant_id", Uuid, nullable=False),
    Column("project_id", Uuid, nullable=False),
    Column("from_status", String(16)),
    Column("to_status", String(16), nullable=False),
    Column("at", Ts, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("worker_id", BigInteger),
    Column("message", Text),
    # The writing transaction's id (PostgreSQL; 0 on SQLite): readers of the event log
    # follow (txid, id) order and stop at the oldest transaction still running, so an
    # event committed late below one already read is never skipped (store/events.py).
    Column("txid", BigInteger),
    # NULL for a status change; "progress" for a progress report (data holds it).
    Column("kind", String(16)),
    Column("data", Json),
    sqlite_autoincrement=True,
)
Index("ix_execution_events_execution_id_id", execution_events.c.execution_id, execution_events.c.id)
Index("ix_execution_events_txid_id", execution_events.c.txid, execution_events.c.id)
Index(
    "ix_execution_events_project_id_txid_id",
    execution_events.c.project_id,
    execution_events.c.txid,
    execution_events.c.id,
)

triggers = Table(
    "triggers",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", Uuid, ForeignKey("tenants.id"), nullable=False),
    Column("project_id", Uuid, ForeignKey("projects.id"), nullable=False),
    Column("ref", String(200), nullable=False),
    Column("type", String(16), nullable=False),  # webhook | timer | execution
    Column("description", Text, nullable=False),
    Column("config", Json, nullable=False),
    # A webhook's HMAC secret (it must be kept to check signatures; never shown again).
    Column("secret", Text),
    Column("enabled", Boolean, nullable=False),
    # A timer's next due time: claimed by compare-and-set, so it fires once.
    Column("next_fire", Ts),
    Column("created", Ts, nullable=False),
    Column("updated", Ts, nullable=False),
    UniqueConstraint("project_id", "ref"),
    sqlite_autoincrement=True,
)
DUE_SQL = text("next_fire IS NOT NULL")
Index(
    "ix_triggers_next_fire",
    triggers.c.next_fire,
    sqlite_where=DUE_SQL,
    postgresql_where=DUE_SQL,
)
Index("ix_triggers_type_project_id", triggers.c.type, triggers.c.project_id)

rules = Table(
    "rules",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", Uuid, ForeignKey("tenants.id"), nullable=False),
    Column("project_id", Uuid, ForeignKey("projects.id"), nullable=False),
    Column("ref", String(200), nullable=False),
    Column("description", Text, nullable=False),
    Column("trigger_id", BigInteger, ForeignKey("triggers.id"), nullable=False),
    Column("criteria", Json),
    Column("action_ref", String(300), nullable=False),
    Column("parameters", Json, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("created", Ts, nullable=False),
    Column("updated", Ts, nullable=False),
    Column("created_by", String(200)),
    UniqueConstraint("project_id", "ref"),
    sqlite_autoincrement=True,
)
Index("ix_rules_trigger_id", rules.c.trigger_id)

# One row per rule firing; the rule and trigger are copied by ref, so the record
# outlives them.
enforcements = Table(
    "enforcements",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", Uuid, nullable=False),
    Column("project_id", Uuid, nullable=False),
    Column("rule_id", BigInteger, nullable=False),
    Column("rule_ref", String(200), nullable=False),
    Column("trigger_id", BigInteger, nullable=False),
    Column("trigger_ref", String(200), nullable=False),
    Column("trigger_type", String(16), nullable=False),
    Column("payload", Json),
    Column("status", String(16), nullable=False),  # succeeded | failed
    Column("error", Text),
    # Rules chained through execution triggers: 1 for a firing by anything else.
    Column("depth", Integer, nullable=False),
    Column("execution_ids", Json, nullable=False),
    Column("created", Ts, nullable=False),
    sqlite_autoincrement=True,
)
Index("ix_enforcements_project_id_id", enforcements.c.project_id, enforcements.c.id)
Index("ix_enforcements_rule_id_id", enforcements.c.rule_id, enforcements.c.id)

# Analytics rollups (store/analytics.py): per project, action and hour (or day), how
# many executions ended in each final status, and one histogram of the run times of
# those that ran, whatever their status (domain/analytics.py). An hour's row is written
# once the hour is over; a day's once its last hour is: the day's hourly rows added up.
# A count column for each final status (domain/states.py TERMINAL).
ROLLED_UP = ("abandoned", "cancelled", "completed", "failed", "timeout")


def _rollups(name: str, start: str) -> Table:
    table = Table(
        name,
        metadata,
        Column("project_id", Uuid, primary_key=True),
        Column(start, Ts, primary_key=True),
        Column("action_ref", String(300), primary_key=True),
        *(Column(status, Integer, nullable=False) for status in ROLLED_UP),
        Column("durations", Json, nullable=False),  # [lowest bin, count, count, ...]
    )
    # Sealing reads and replaces an hour (or a day) of every project at once.
    Index(f"ix_{name}_{start}", table.c[start])
    return table


execution_rollups_hourly = _rollups("execution_rollups_hourly", "hour")
execution_rollups_daily = _rollups("execution_rollups_daily", "day")

# How many executions that still exist ended in the hours the rollups cover, per project
# and final status: added to when an hour is rolled up, taken from when executions are
# deleted (store/analytics.py). The v1 stats counts read these few rows, and count
# only what lies outside those hours (see ExecutionQueries.stats).
execution_counts = Table(
    "execution_counts",
    metadata,
    Column("project_id", Uuid, primary_key=True),
    Column("status", String(16), primary_key=True),
    Column("executions", BigInteger, nullable=False),
)

# How far a follower of the event log has read (see store/events.py), and which hours
# the analytics rollups cover (store/analytics.py).
event_cursors = Table(
    "event_cursors",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("txid", BigInteger, nullable=False),
    Column("event_id", BigInteger, nullable=False),
    Column("updated", Ts, nullable=False),
)

workers = Table(
    "workers",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("labels", Json, nullable=False),
    Column("capacity", Integer, nullable=False),
    Column("active", Integer, nullable=False),
    Column("cpu_percent", Double),
    Column("memory_percent", Double),
    Column("memory_bytes", BigInteger),
    Column("state", String(16), nullable=False),
    Column("version", String(32), nullable=False),
    Column("started", Ts, nullable=False),
    Column("last_heartbeat", Ts, nullable=False),
    # Devices this worker serves: executions bound to one run only on such a worker.
    Column("devices", Json, nullable=False, server_default="[]"),
    # The machine's size, for capacity figures (the tenant API's system status).
    Column("cpu_count", Integer),
    Column("memory_total", BigInteger),
    # How the worker runs actions: "bubblewrap" or "none" (unsandboxed).
    Column("sandbox", String(16)),
    # What this worker process has run since it started, for metrics (its heartbeat
    # writes it): engine/run_figures.py.
    Column("figures", Json),
    sqlite_autoincrement=True,
)

# The audit log (domain/audit.py): one row per state-changing request. No foreign keys:
# an entry outlives what it names (a deleted project, a revoked token).
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", Ts, nullable=False),
    Column("tenant_id", Uuid),
    Column("project_id", Uuid),
    Column("token_id", BigInteger),
    Column("token_name", String(200)),
    Column("role", String(16)),
    Column("method", String(8), nullable=False),
    Column("route", String(300), nullable=False),
    Column("path", String(2000), nullable=False),
    Column("objects", Json, nullable=False),
    Column("address", String(64)),
    Column("status", SmallInteger, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("error", String(500)),
    # A tenant admin's list: its tenant's entries, newest first.
    Index(None, "tenant_id", "id"),
    # Retention: the oldest first.
    Index(None, "at"),
    sqlite_autoincrement=True,
)
