"""flows and devices

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
FLOW_ROWS = "flow_id IS NOT NULL"
READY = "status = 'scheduling' AND device_id IS NULL"
DEVICE_READY = "status = 'scheduling' AND device_id IS NOT NULL"
DEVICE_HELD = (
    "device_id IS NOT NULL AND parent_id IS NULL "
    "AND status IN ('scheduled', 'running', 'canceling')"
)


def upgrade() -> None:
    op.create_table(
        "flows",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("parameters", JSON, nullable=False),
        sa.Column("steps", JSON, nullable=False),
        sa.Column("calls", JSON, nullable=False),
        sa.Column("created", sa.Double(), nullable=False),
        sa.Column("updated", sa.Double(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_flows_project_id_projects")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_flows_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flows")),
    )
    with op.batch_alter_table("flows", schema=None) as batch_op:
        batch_op.create_index("ix_flows_project_id_created", ["project_id", "created"])

    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("device_id", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("flow_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("sequence", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("plan", JSON, nullable=True))
        batch_op.create_index(
            "ix_executions_flow_rows",
            ["project_id", "id"],
            sqlite_where=sa.text(FLOW_ROWS),
            postgresql_where=sa.text(FLOW_ROWS),
        )
        batch_op.create_index("ix_executions_flow_id_id", ["flow_id", "id"])
        batch_op.create_index(
            "ix_executions_flow_rows_status",
            ["project_id", "status", "id"],
            sqlite_where=sa.text(FLOW_ROWS),
            postgresql_where=sa.text(FLOW_ROWS),
        )
        # Device work gets an index of its own; the general ready index leaves it out.
        batch_op.drop_index("ix_executions_ready")
        batch_op.create_index(
            "ix_executions_ready",
            [sa.literal_column("priority DESC"), "id"],
            sqlite_where=sa.text(READY),
            postgresql_where=sa.text(READY),
        )
        batch_op.create_index(
            "ix_executions_device_ready",
            ["device_id", sa.literal_column("priority DESC"), "id"],
            sqlite_where=sa.text(DEVICE_READY),
            postgresql_where=sa.text(DEVICE_READY),
        )
        batch_op.create_index(
            "ux_executions_device_holder",
            ["device_id"],
            unique=True,
            sqlite_where=sa.text(DEVICE_HELD),
            postgresql_where=sa.text(DEVICE_HELD),
        )

    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("devices", JSON, nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.drop_column("devices")
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_index("ix_executions_device_ready")
        batch_op.drop_index("ix_executions_ready")
        batch_op.create_index(
            "ix_executions_ready",
            [sa.literal_column("priority DESC"), "id"],
            sqlite_where=sa.text("status = 'scheduling'"),
            postgresql_where=sa.text("status = 'scheduling'"),
        )
        batch_op.drop_index("ix_executions_flow_rows_status")
        batch_op.drop_index("ux_executions_device_holder")
        batch_op.drop_index("ix_executions_flow_id_id")
        batch_op.drop_index("ix_executions_flow_rows")
        batch_op.drop_column("plan")
        batch_op.drop_column("sequence")
        batch_op.drop_column("flow_id")
        batch_op.drop_column("device_id")
    with op.batch_alter_table("flows", schema=None) as batch_op:
        batch_op.drop_index("ix_flows_project_id_created")
    op.drop_table("flows")
