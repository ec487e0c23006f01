"""The execd Python SDK: `Client` (blocking) and `AsyncClient` (asyncio) on httpx.

    from execd.client import Client

    with Client("http://127.0.0.1:8080", token="execd_...") as client:
        run = client.execute("core.sleep", {"seconds": 2})
        done = client.wait(run.id, on_progress=lambda e: print(e.status, e.progress))

See docs/sdk.md.
"""

from execd.client.clients import AsyncClient, Client
from execd.client.errors import (
    ApiError,
    BadRequest,
    ClientError,
    ConfigurationError,
    Conflict,
    ConnectionFailed,
    Forbidden,
    NotFound,
    ServerError,
    Unauthorized,
    UnexpectedAnswer,
)
from execd.client.models import (
    TERMINAL,
    Action,
    Applied,
    Batch,
    BatchItem,
    Enforcement,
    Event,
    Execution,
    ExecutionSummary,
    Flow,
    FlowExecution,
    Job,
    Me,
    NewToken,
    Page,
    Progress,
    Project,
    Queue,
    Rule,
    Stats,
    StatusChange,
    Tenant,
    Token,
    Trigger,
    Worker,
)
from execd.client.operations import FLOW_TERMINAL, PartlyApplied, WaitTimeout
from execd.client.packs import PackError

__all__ = [
    "FLOW_TERMINAL",
    "TERMINAL",
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
    "Tenant",
    "Token",
    "Trigger",
    "Unauthorized",
    "UnexpectedAnswer",
    "WaitTimeout",
    "Worker",
]
