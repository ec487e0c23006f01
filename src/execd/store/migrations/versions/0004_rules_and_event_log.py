"""rules, triggers, enforcements and the event log

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "enforcements",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("rule_id", sa.BigInteger(), nullable=False),
        sa.Column("rule_ref", sa.String(length=200), nullable=False),
        sa.Column("trigger_id", sa.BigInteger(), nullable=False),
        sa.Column("trigger_ref", sa.String(length=200), nullable=False),
        sa.Column("trigger_type", sa.String(length=16), nullable=False),
        sa.Column("payload", JSON, nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("execution_ids", JSON, nullable=False),
        sa.Column("created", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enforcements")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("enforcements", schema=None) as batch_op:
        batch_op.create_index("ix_enforcements_project_id_id", ["project_id", "id"], unique=False)
        batch_op.create_index("ix_enforcements_rule_id_id", ["rule_id", "id"], unique=False)

    op.create_table(
        "execution_rollups",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("hour", sa.Double(), nullable=False),
        sa.Column("action_ref", sa.String(length=300), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("ended", sa.Integer(), nullable=False),
        sa.Column("durations", JSON, nullable=False),
        sa.PrimaryKeyConstraint(
            "project_id", "hour", "action_ref", "status", name=op.f("pk_execution_rollups")
        ),
    )
    op.create_table(
        "event_cursors",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("txid", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("updated", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_event_cursors")),
    )
    op.create_table(
        "triggers",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("ref", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("config", JSON, nullable=False),
        sa.Column("secret", sa.Text(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("next_fire", sa.Double(), nullable=True),
        sa.Column("created", sa.Double(), nullable=False),
        sa.Column("updated", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_triggers_project_id_projects")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_triggers_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_triggers")),
        sa.UniqueConstraint("project_id", "ref", name=op.f("uq_triggers_project_id_ref")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("triggers", schema=None) as batch_op:
        batch_op.create_index(
            "ix_triggers_next_fire",
            ["next_fire"],
            unique=False,
            sqlite_where=sa.text("next_fire IS NOT NULL"),
            postgresql_where=sa.text("next_fire IS NOT NULL"),
        )
        batch_op.create_index("ix_triggers_type_project_id", ["type", "project_id"], unique=False)

    op.create_table(
        "rules",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("ref", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("trigger_id", sa.BigInteger(), nullable=False),
        sa.Column("criteria", JSON, nullable=True),
        sa.Column("action_ref", sa.String(length=300), nullable=False),
        sa.Column("parameters", JSON, nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created", sa.Double(), nullable=False),
        sa.Column("updated", sa.Double(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_rules_project_id_projects")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_rules_tenant_id_tenants")
        ),
        sa.ForeignKeyConstraint(
            ["trigger_id"], ["triggers.id"], name=op.f("fk_rules_trigger_id_triggers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rules")),
        sa.UniqueConstraint("project_id", "ref", name=op.f("uq_rules_project_id_ref")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("rules", schema=None) as batch_op:
        batch_op.create_index("ix_rules_trigger_id", ["trigger_id"], unique=False)

    with op.batch_alter_table("execution_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("txid", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("kind", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("data", JSON, nullable=True))
        batch_op.create_index("ix_execution_events_txid_id", ["txid", "id"], unique=False)
        batch_op.create_index(
            "ix_execution_events_project_id_txid_id", ["project_id", "txid", "id"], unique=False
        )
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_executions_analytics", ["ended", "project_id", "action_ref", "status", "started"]
        )
    if op.get_bind().dialect.name == "postgresql":
        # Processes still running the previous version during a rolling upgrade write
        # events without a txid: the database fills it in, so followers still see them.
        op.execute(
            "ALTER TABLE execution_events ALTER COLUMN txid "
            "SET DEFAULT CAST(CAST(pg_current_xact_id() AS TEXT) AS BIGINT)"
        )
    # Events written before: older than any transaction from now on.
    op.execute("UPDATE execution_events SET txid = 0")


def downgrade() -> None:
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_index("ix_executions_analytics")
    with op.batch_alter_table("execution_events", schema=None) as batch_op:
        batch_op.drop_index("ix_execution_events_project_id_txid_id")
        batch_op.drop_index("ix_execution_events_txid_id")
        batch_op.drop_column("data")
        batch_op.drop_column("kind")
        batch_op.drop_column("txid")

    with op.batch_alter_table("rules", schema=None) as batch_op:
        batch_op.drop_index("ix_rules_trigger_id")

    op.drop_table("rules")
    with op.batch_alter_table("triggers", schema=None) as batch_op:
        batch_op.drop_index("ix_triggers_type_project_id")
        batch_op.drop_index(
            "ix_triggers_next_fire",
            sqlite_where=sa.text("next_fire IS NOT NULL"),
            postgresql_where=sa.text("next_fire IS NOT NULL"),
        )

    op.drop_table("triggers")
    op.drop_table("event_cursors")
    op.drop_table("execution_rollups")
    with op.batch_alter_table("enforcements", schema=None) as batch_op:
        batch_op.drop_index("ix_enforcements_rule_id_id")
        batch_op.drop_index("ix_enforcements_project_id_id")

    op.drop_table("enforcements")
