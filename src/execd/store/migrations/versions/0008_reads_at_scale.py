"""reads at scale: an index on created, a covering index for flow statistics, and
the counts of executions in rolled-up hours

The v1 lists filtered by a `created` range had no index holding `created` and counted
every row of the project; the flow history API's statistics read every flow row of
the window; the v1 stats counts read every row of the project. `execution_counts`
starts out holding what the rollups already cover, counted once here.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

FLOW_ROWS = sa.text("flow_id IS NOT NULL")
INDEXES: dict[str, tuple[list[str], sa.TextClause | None]] = {
    "ix_executions_project_id_created_id": (["project_id", "created", "id"], None),
    "ix_executions_flow_rows_created": (
        ["project_id", "status", "created", "started", "ended", "parent_id", "flow_id"],
        FLOW_ROWS,
    ),
}
TERMINAL = ("completed", "failed", "cancelled", "timeout", "abandoned")


def upgrade() -> None:
    op.create_table(
        "execution_counts",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("executions", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "status", name=op.f("pk_execution_counts")),
    )
    statuses = ", ".join(f"'{s}'" for s in TERMINAL)
    op.execute(
        "INSERT INTO execution_counts (project_id, status, executions) "
        "SELECT e.project_id, e.status, count(*) FROM executions e "
        "JOIN event_cursors c ON c.name = 'rollups' "
        f"WHERE e.status IN ({statuses}) AND e.ended >= c.txid AND e.ended < c.event_id "
        "GROUP BY e.project_id, e.status"
    )
    if op.get_bind().dialect.name != "postgresql":
        for name, (columns, where) in INDEXES.items():
            op.create_index(name, "executions", columns, sqlite_where=where)
        return
    # Built CONCURRENTLY (outside a transaction): a large executions table keeps
    # taking writes meanwhile.
    with op.get_context().autocommit_block():
        for name, (columns, where) in INDEXES.items():
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")  # a failed try
            op.create_index(
                name, "executions", columns, postgresql_where=where, postgresql_concurrently=True
            )


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="executions")
    op.drop_table("execution_counts")
