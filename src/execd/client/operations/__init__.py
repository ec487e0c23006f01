"""Every operation of the SDK, written once (see protocol.py for how they run), one
module per resource; `Operations` gathers them for `Client` and `AsyncClient`.

Executions, actions, triggers, rules and enforcements go through the v1 API; flows
through the flow dialect; jobs, the queue, system status and result packages through
the tenant dialect (its paths take the token's tenant and project, read once from
`/api/v1/me`).
"""

from execd.client.operations.accounts import AccountOperations
from execd.client.operations.actions import ActionOperations
from execd.client.operations.base import WaitTimeout
from execd.client.operations.executions import ExecutionFilters, ExecutionOperations
from execd.client.operations.flows import FLOW_TERMINAL, FlowOperations
from execd.client.operations.jobs import JobOperations
from execd.client.operations.packs import PackOperations, PartlyApplied
from execd.client.operations.rules import RuleOperations
from execd.client.operations.streams import StreamOperations
from execd.client.operations.system import SystemOperations

__all__ = ["FLOW_TERMINAL", "ExecutionFilters", "Operations", "PartlyApplied", "WaitTimeout"]


class Operations(
    SystemOperations,
    AccountOperations,
    ActionOperations,
    ExecutionOperations,
    StreamOperations,
    FlowOperations,
    JobOperations,
    RuleOperations,
    PackOperations,
):
    """The methods `Client` and `AsyncClient` share. Each is a generator of steps."""
