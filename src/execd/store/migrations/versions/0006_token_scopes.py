"""token scopes (system and tenant admins), the startup token, expiry and last use

Admin tokens used to reach every tenant. After this migration the startup token (the
live `admin` token of the default tenant's default project, which `execd serve`
keeps) is a system admin and cannot be revoked through the API; every other admin
token becomes a tenant admin, the safer reading of what it was meant for. A system
admin can create system tokens again where they are needed.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

tokens = sa.table(
    "tokens",
    sa.column("project_id", sa.String),
    sa.column("name", sa.String),
    sa.column("role", sa.String),
    sa.column("revoked", sa.Double),
    sa.column("scope", sa.String),
    sa.column("startup", sa.Boolean),
)
tenants = sa.table("tenants", sa.column("id", sa.String), sa.column("name", sa.String))
projects = sa.table(
    "projects",
    sa.column("id", sa.String),
    sa.column("tenant_id", sa.String),
    sa.column("name", sa.String),
)


def upgrade() -> None:
    # Plain ADD COLUMN on both backends: the table is not rebuilt.
    op.add_column(
        "tokens", sa.Column("scope", sa.String(length=16), nullable=False, server_default="project")
    )
    op.add_column(
        "tokens", sa.Column("startup", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.add_column("tokens", sa.Column("expires", sa.Double(), nullable=True))
    op.add_column("tokens", sa.Column("last_used", sa.Double(), nullable=True))
    op.execute(tokens.update().where(tokens.c.role == "admin").values(scope="tenant"))
    # What engine/accounts.py's bootstrap wrote, as it was when this was written.
    default_project = (
        sa.select(projects.c.id)
        .join(tenants, tenants.c.id == projects.c.tenant_id)
        .where(tenants.c.name == "default", projects.c.name == "default")
    )
    op.execute(
        tokens.update()
        .where(
            tokens.c.role == "admin",
            tokens.c.name == "admin",
            tokens.c.revoked.is_(None),
            tokens.c.project_id.in_(default_project),
        )
        .values(scope="system", startup=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        for column in ("last_used", "expires", "startup", "scope"):
            batch_op.drop_column(column)
