"""The SDK's public names, written out: renaming or removing one is a change users see,
so it has to fail here first."""

from __future__ import annotations

import execd.client
from execd.client import AsyncClient, Client
from execd.client.protocol import iteration, operation

EXPORTED = [
    "Action",
    "ApiError",
    "Applied",
    "AsyncClient",
    "BadRequest",
    "Batch",
    "BatchItem",
    "Client",
    "ClientError",
    "ConfigurationError",
    "Conflict",
    "ConnectionFailed",
    "Enforcement",
    "Event",
    "Execution",
    "ExecutionSummary",
    "FLOW_TERMINAL",
    "Flow",
    "FlowExecution",
    "Forbidden",
    "Job",
    "Me",
    "NewToken",
    "NotFound",
    "PackError",
    "Page",
    "PartlyApplied",
    "Progress",
    "Project",
    "Queue",
    "Rule",
    "ServerError",
    "Stats",
    "StatusChange",
    "TERMINAL",
    "Tenant",
    "Token",
    "Trigger",
    "Unauthorized",
    "UnexpectedAnswer",
    "WaitTimeout",
    "Worker",
]

#: What both clients offer; each adds its own way to close (`close` / `aclose`).
OPERATIONS = {
    "apply_pack",
    "bulk_cancel",
    "bulk_delete",
    "cancel",
    "cancel_job",
    "create_action",
    "create_flow",
    "create_project",
    "create_rule",
    "create_tenant",
    "create_token",
    "create_trigger",
    "delete_action",
    "delete_flow",
    "delete_rule",
    "delete_trigger",
    "download_package",
    "enable_action",
    "enable_rule",
    "enable_trigger",
    "events",
    "execute",
    "execute_batch",
    "export",
    "fire_webhook",
    "follow_output",
    "get_action",
    "get_enforcement",
    "get_execution",
    "get_flow",
    "get_flow_execution",
    "get_job",
    "get_rule",
    "get_trigger",
    "health",
    "history",
    "iter_executions",
    "list_actions",
    "list_enforcements",
    "list_executions",
    "list_flows",
    "list_jobs",
    "list_projects",
    "list_rules",
    "list_tenants",
    "list_tokens",
    "list_triggers",
    "me",
    "output",
    "queue",
    "retry",
    "revoke_token",
    "run_flow",
    "stats",
    "submit_job",
    "system_status",
    "update_action",
    "update_flow",
    "update_rule",
    "update_trigger",
    "wait",
    "wait_flow",
    "workers",
}

#: The operations that answer an iterator (an async one on `AsyncClient`).
ITERATIONS = {"events", "export", "follow_output", "iter_executions"}


def public_methods(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


def test_the_package_exports_exactly_these_names() -> None:
    assert sorted(execd.client.__all__) == EXPORTED
    assert all(hasattr(execd.client, name) for name in EXPORTED)


def test_both_clients_offer_exactly_these_methods() -> None:
    assert public_methods(Client) == OPERATIONS | {"close"}
    assert public_methods(AsyncClient) == OPERATIONS | {"aclose"}


def test_these_answer_iterators_and_the_others_results() -> None:
    for cls in (Client, AsyncClient):
        kinds = {name: type(getattr(cls, name)) for name in OPERATIONS}
        assert {name for name, kind in kinds.items() if kind is iteration} == ITERATIONS
        assert {name for name, kind in kinds.items() if kind is operation} == (
            OPERATIONS - ITERATIONS
        )
