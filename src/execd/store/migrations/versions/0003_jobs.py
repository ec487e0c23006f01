"""jobs

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JOBS = "job_type IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("job_type", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("job", JSON, nullable=True))
        batch_op.add_column(sa.Column("cancel_request", JSON, nullable=True))
        batch_op.create_index(
            "ix_executions_jobs",
            ["project_id", "id"],
            sqlite_where=sa.text(JOBS),
            postgresql_where=sa.text(JOBS),
        )
        batch_op.create_index("ix_executions_tenant_id_ended", ["tenant_id", "ended"])
        batch_op.create_index(
            "ix_executions_jobs_status",
            ["project_id", "status"],
            sqlite_where=sa.text(JOBS),
            postgresql_where=sa.text(JOBS),
        )
    op.create_table(
        "notifications",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("execution_id", sa.BigInteger(), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt", sa.Double(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created", sa.Double(), nullable=False),
        sa.Column("sent", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index("ix_notifications_execution_id", ["execution_id"], unique=False)
        batch_op.create_index(
            "ix_notifications_due",
            ["next_attempt"],
            sqlite_where=sa.text("state = 'pending'"),
            postgresql_where=sa.text("state = 'pending'"),
        )
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cpu_count", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("memory_total", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.drop_table("notifications")
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.drop_column("memory_total")
        batch_op.drop_column("cpu_count")
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_index("ix_executions_jobs_status")
        batch_op.drop_index("ix_executions_tenant_id_ended")
        batch_op.drop_index("ix_executions_jobs")
        batch_op.drop_column("cancel_request")
        batch_op.drop_column("job")
        batch_op.drop_column("job_type")
