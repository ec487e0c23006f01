"""initial schema

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# 64-bit keys that are SQLite's rowid alias there; JSONB on PostgreSQL.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "execution_events",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("execution_id", sa.BigInteger(), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.BigInteger(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_execution_events")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("execution_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_execution_events_execution_id_id", ["execution_id", "id"], unique=False
        )

    op.create_table(
        "tenants",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenants")),
        sa.UniqueConstraint("name", name=op.f("uq_tenants_name")),
    )
    op.create_table(
        "workers",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("labels", JSON, nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("active", sa.Integer(), nullable=False),
        sa.Column("cpu_percent", sa.Double(), nullable=True),
        sa.Column("memory_percent", sa.Double(), nullable=True),
        sa.Column("memory_bytes", sa.BigInteger(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("started", sa.Double(), nullable=False),
        sa.Column("last_heartbeat", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workers")),
        sa.UniqueConstraint("name", name=op.f("uq_workers_name")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "projects",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_projects_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_projects_tenant_id_name")),
    )
    op.create_table(
        "actions",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("ref", sa.String(length=300), nullable=False),
        sa.Column("pack", sa.String(length=100), nullable=False),
        sa.Column("runner", sa.String(length=32), nullable=False),
        sa.Column("entry_point", sa.Text(), nullable=False),
        sa.Column("parameters", JSON, nullable=False),
        sa.Column("timeout", sa.Double(), nullable=True),
        sa.Column("retry", JSON, nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created", sa.Double(), nullable=False),
        sa.Column("updated", sa.Double(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_actions_project_id_projects")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_actions_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_actions")),
        sa.UniqueConstraint("project_id", "ref", name=op.f("uq_actions_project_id_ref")),
        sa.UniqueConstraint("uuid", name=op.f("uq_actions_uuid")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "executions",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("action_id", sa.BigInteger(), nullable=True),
        sa.Column("action_ref", sa.String(length=300), nullable=False),
        sa.Column("pack", sa.String(length=100), nullable=False),
        sa.Column("runner", sa.String(length=32), nullable=False),
        sa.Column("entry_point", sa.Text(), nullable=False),
        sa.Column("parameters", JSON, nullable=False),
        sa.Column("secrets", JSON, nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.SmallInteger(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("retry_policy", JSON, nullable=True),
        sa.Column("fence", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.BigInteger(), nullable=True),
        sa.Column("root_id", sa.BigInteger(), nullable=True),
        sa.Column("enforcement_id", sa.BigInteger(), nullable=True),
        sa.Column("rule_id", sa.BigInteger(), nullable=True),
        sa.Column("retry_of", sa.BigInteger(), nullable=True),
        sa.Column("worker_id", sa.BigInteger(), nullable=True),
        sa.Column("not_before", sa.Double(), nullable=True),
        sa.Column("timeout", sa.Double(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("submitted_by", sa.String(length=200), nullable=True),
        sa.Column("progress", JSON, nullable=True),
        sa.Column("usage", JSON, nullable=True),
        sa.Column("result", JSON, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("lease_expires", sa.Double(), nullable=True),
        sa.Column("created", sa.Double(), nullable=False),
        sa.Column("updated", sa.Double(), nullable=False),
        sa.Column("started", sa.Double(), nullable=True),
        sa.Column("ended", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_executions_project_id_projects")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_executions_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_executions")),
        sa.UniqueConstraint(
            "project_id", "idempotency_key", name=op.f("uq_executions_project_id_idempotency_key")
        ),
        sa.UniqueConstraint("uuid", name=op.f("uq_executions_uuid")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_executions_delayed",
            ["not_before"],
            unique=False,
            sqlite_where=sa.text("status = 'requested'"),
            postgresql_where=sa.text("status = 'requested'"),
        )
        batch_op.create_index("ix_executions_enforcement_id", ["enforcement_id"], unique=False)
        batch_op.create_index(
            "ix_executions_leased",
            ["lease_expires"],
            unique=False,
            sqlite_where=sa.text("status IN ('scheduled', 'running', 'canceling')"),
            postgresql_where=sa.text("status IN ('scheduled', 'running', 'canceling')"),
        )
        batch_op.create_index("ix_executions_parent_id", ["parent_id"], unique=False)
        batch_op.create_index(
            "ix_executions_project_id_action_ref_id",
            ["project_id", "action_ref", "id"],
            unique=False,
        )
        batch_op.create_index("ix_executions_project_id_id", ["project_id", "id"], unique=False)
        batch_op.create_index(
            "ix_executions_project_id_pack_id", ["project_id", "pack", "id"], unique=False
        )
        batch_op.create_index(
            "ix_executions_project_id_status_id", ["project_id", "status", "id"], unique=False
        )
        batch_op.create_index(
            "ix_executions_ready",
            [sa.literal_column("priority DESC"), "id"],
            unique=False,
            sqlite_where=sa.text("status = 'scheduling'"),
            postgresql_where=sa.text("status = 'scheduling'"),
        )
        batch_op.create_index("ix_executions_retry_of", ["retry_of"], unique=False)
        batch_op.create_index(
            "ix_executions_worker_leased",
            ["worker_id"],
            unique=False,
            sqlite_where=sa.text("status IN ('scheduled', 'running', 'canceling')"),
            postgresql_where=sa.text("status IN ('scheduled', 'running', 'canceling')"),
        )

    op.create_table(
        "tokens",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created", sa.Double(), nullable=False),
        sa.Column("revoked", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_tokens_project_id_projects")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_tokens_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_tokens_token_hash")),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("tokens")
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_executions_worker_leased",
            sqlite_where=sa.text("status IN ('scheduled', 'running', 'canceling')"),
            postgresql_where=sa.text("status IN ('scheduled', 'running', 'canceling')"),
        )
        batch_op.drop_index("ix_executions_retry_of")
        batch_op.drop_index(
            "ix_executions_ready",
            sqlite_where=sa.text("status = 'scheduling'"),
            postgresql_where=sa.text("status = 'scheduling'"),
        )
        batch_op.drop_index("ix_executions_project_id_status_id")
        batch_op.drop_index("ix_executions_project_id_pack_id")
        batch_op.drop_index("ix_executions_project_id_id")
        batch_op.drop_index("ix_executions_project_id_action_ref_id")
        batch_op.drop_index("ix_executions_parent_id")
        batch_op.drop_index(
            "ix_executions_leased",
            sqlite_where=sa.text("status IN ('scheduled', 'running', 'canceling')"),
            postgresql_where=sa.text("status IN ('scheduled', 'running', 'canceling')"),
        )
        batch_op.drop_index("ix_executions_enforcement_id")
        batch_op.drop_index(
            "ix_executions_delayed",
            sqlite_where=sa.text("status = 'requested'"),
            postgresql_where=sa.text("status = 'requested'"),
        )

    op.drop_table("executions")
    op.drop_table("actions")
    op.drop_table("projects")
    op.drop_table("workers")
    op.drop_table("tenants")
    with op.batch_alter_table("execution_events", schema=None) as batch_op:
        batch_op.drop_index("ix_execution_events_execution_id_id")

    op.drop_table("execution_events")
