"""action sandbox options, copied to executions; each worker's sandbox

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    # Plain ADD COLUMN on both backends: no table is rebuilt, however large.
    op.add_column("actions", sa.Column("sandbox", JSON, nullable=True))
    op.add_column("executions", sa.Column("sandbox", JSON, nullable=True))
    op.add_column("workers", sa.Column("sandbox", sa.String(length=16), nullable=True))


def downgrade() -> None:
    for table in ("workers", "executions", "actions"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("sandbox")
