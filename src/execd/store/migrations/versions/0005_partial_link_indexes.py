"""links to other executions indexed only where they are set

Most executions have no parent, enforcement, retry-of or flow. A full index on such a
column is one huge group of NULLs, and once SQLite's ANALYZE has seen that, it
prefers scanning the table to using the index for `parent_id IN (...)`. Partial
indexes hold only the rows that link somewhere, and are what every query on these
columns asks for.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

LINKS = {
    "ix_executions_parent_id": ["parent_id"],
    "ix_executions_enforcement_id": ["enforcement_id"],
    "ix_executions_retry_of": ["retry_of"],
    "ix_executions_flow_id_id": ["flow_id", "id"],
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        for name, columns in LINKS.items():
            where = sa.text(f"{columns[0]} IS NOT NULL")
            op.drop_index(name, table_name="executions")
            op.create_index(name, "executions", columns, sqlite_where=where)
        return
    # On PostgreSQL the new indexes are built CONCURRENTLY (outside a transaction), so
    # a large executions table keeps taking writes meanwhile; each swap is a rename.
    with op.get_context().autocommit_block():
        for name, columns in LINKS.items():
            where = sa.text(f"{columns[0]} IS NOT NULL")
            building = f"{name}_partial"
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {building}")  # a failed try
            op.create_index(
                building,
                "executions",
                columns,
                postgresql_where=where,
                postgresql_concurrently=True,
            )
            op.drop_index(name, table_name="executions", postgresql_concurrently=True)
            op.execute(f"ALTER INDEX {building} RENAME TO {name}")


def downgrade() -> None:
    for name, columns in LINKS.items():
        op.drop_index(name, table_name="executions")
        op.create_index(name, "executions", columns)
