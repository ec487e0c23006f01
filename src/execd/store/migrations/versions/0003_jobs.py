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
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cpu_count", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("memory_total", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.drop_column("memory_total")
        batch_op.drop_column("cpu_count")
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_index("ix_executions_tenant_id_ended")
        batch_op.drop_index("ix_executions_jobs")
        batch_op.drop_column("cancel_request")
        batch_op.drop_column("job")
        batch_op.drop_column("job_type")
