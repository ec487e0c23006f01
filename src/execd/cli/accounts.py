"""The commands about who may do what: API tokens, tenants and projects.

Thin: each calls the SDK and prints what it answers, or with `--json` the SDK's model.
"""

from __future__ import annotations

from typing import Annotated

import typer

from execd.cli import output
from execd.cli.app import projects_app, tenants_app, token_app
from execd.cli.common_options import JsonOpt
from execd.cli.connection import connect
from execd.cli.output import Exit, out
from execd.client import NewToken


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option(help="What the token is for")],
    role: Annotated[str, typer.Option(help="viewer, operator or admin")] = "operator",
    project_id: Annotated[
        str | None, typer.Option(help="Project id (default: the admin token's own)")
    ] = None,
    scope: Annotated[
        str | None,
        typer.Option(help="Admin tokens: tenant (default) or system (needs a system admin)"),
    ] = None,
    expires_in: Annotated[
        int | None, typer.Option(help="Seconds until it stops working (default: never)")
    ] = None,
    expires: Annotated[
        str | None,
        typer.Option(
            help="When it stops working (ISO 8601, UTC if no zone); not with --expires-in"
        ),
    ] = None,
    direct: Annotated[
        bool,
        typer.Option(
            "--direct",
            help="Write it straight into the database instead of asking a server "
            "(for the first token; uses --tenant, --project, --create, --database-url)",
        ),
    ] = False,
    tenant: Annotated[
        str | None, typer.Option(help="--direct: tenant name or id [default: default]")
    ] = None,
    project: Annotated[
        str | None, typer.Option(help="--direct: project name or id [default: default]")
    ] = None,
    create: Annotated[
        bool, typer.Option(help="--direct: create the tenant/project if missing")
    ] = False,
    database_url: Annotated[str | None, typer.Option(help="--direct: [EXECD_DATABASE_URL]")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an API token (shown only once): through the server with an admin token,
    or with --direct in the database."""
    # Each way has its own options: one given to the other way is a mistake, not a no-op.
    direct_only = {"--tenant": tenant, "--project": project, "--database-url": database_url}
    given = [o for o, v in direct_only.items() if v is not None] + (["--create"] if create else [])
    if given and not direct:
        output.fail(
            f"{', '.join(given)} go with --direct (the database); through the server, "
            "name the project with --project-id",
            Exit.USAGE,
        )
    if direct and project_id is not None:
        output.fail("--project-id goes through the server; with --direct use --project", Exit.USAGE)
    if direct:
        from execd.cli.maintenance import issue_directly

        made = issue_directly(
            name,
            role,
            tenant or "default",
            project or "default",
            create,
            database_url,
            scope=scope,
            expires_in=expires_in,
            expires=expires,
        )
    else:
        with connect() as client:
            made = client.create_token(
                name, role, project_id, scope=scope, expires_in=expires_in, expires=expires
            )
    show_new_token(made, as_json)


def show_new_token(made: NewToken, as_json: bool) -> None:
    """A new token as both ways print it (--direct or not), the same for scripts too."""
    output.show(
        made,
        as_json,
        lambda: output.fields(
            [
                ("id", made.id),
                ("name", made.name),
                ("role", made.role),
                ("tenant", made.tenant_id),
                ("project", made.project_id),
                ("scope", made.scope),
                ("expires", made.expires),
                ("token", made.token),
            ]
        ),
    )


@token_app.command("list")
def token_list(
    project_id: Annotated[
        str | None, typer.Option(help="Project id (default: the admin token's own)")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """A project's tokens (admin): role, scope, expiry and last use, never the values."""
    with connect() as client:
        tokens = client.list_tokens(project_id)
    output.listing(
        tokens,
        as_json,
        {
            "ID": lambda t: t.id,
            "NAME": lambda t: t.name,
            "ROLE": lambda t: t.role,
            "SCOPE": lambda t: t.scope + (" (startup)" if t.startup else ""),
            "CREATED": lambda t: t.created,
            "EXPIRES": lambda t: t.expires,
            "LAST USED": lambda t: t.last_used,
            "REVOKED": lambda t: t.revoked,
        },
    )


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[int, typer.Argument(help="The token's id")], as_json: JsonOpt = False
) -> None:
    """Revoke a token (admin). The startup admin token cannot be: restart the server
    with a new EXECD_ADMIN_TOKEN to replace it."""
    with connect() as client:
        client.revoke_token(token_id)
    output.show(
        {"id": token_id, "revoked": True}, as_json, lambda: out.print(f"revoked token {token_id}")
    )


# --- tenants and projects -------------------------------------------------------------


@tenants_app.command("list")
def tenants_list(as_json: JsonOpt = False) -> None:
    """Every tenant (system admin), or a tenant admin's own."""
    with connect() as client:
        found = client.list_tenants()
    output.listing(found, as_json, output.columns("id", "name", "created"))


@tenants_app.command("create")
def tenants_create(
    name: Annotated[str, typer.Argument(help="The new tenant's name")], as_json: JsonOpt = False
) -> None:
    """Create a tenant (system admin); `execd projects create` gives it projects."""
    with connect() as client:
        made = client.create_tenant(name)
    output.show(made, as_json, lambda: out.print(f"tenant {made.name} created: {made.id}"))


TenantOpt = Annotated[
    str | None,
    typer.Option("--tenant-id", help="A tenant's id (default: the token's own tenant)"),
]


@projects_app.command("list")
def projects_list(tenant_id: TenantOpt = None, as_json: JsonOpt = False) -> None:
    """The projects of the tenants the token administers (admin)."""
    with connect() as client:
        found = client.list_projects(tenant_id)
    output.listing(found, as_json, output.columns("id", "tenant_id", "name", "created"))


@projects_app.command("create")
def projects_create(
    name: Annotated[str, typer.Argument(help="The new project's name")],
    tenant_id: TenantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a project in a tenant the token administers (admin); `execd token create
    --project-id` then gives it tokens."""
    with connect() as client:
        made = client.create_project(tenant_id or client.me().tenant_id, name)
    output.show(
        made,
        as_json,
        lambda: out.print(f"project {made.name} created in tenant {made.tenant_id}: {made.id}"),
    )
