"""Advancing flows, inside the transaction that changed one of their steps.

A flow execution (PARENT or SUBFLOW) holds no worker while it runs: a worker only
starts it (and, with a device, acquires the device for it). From then on the flow
moves when its steps do. Whenever a step ends, or a flow starts or is being
cancelled, the followers of that change (followers.py) call `advance` in the same
transaction: it reads the flow's steps, the domain decides the move
(domain/flow_moves.py: start the next step, cancel the active ones, settle), and it
carries the move out. A crash can therefore
never leave a flow between two steps with nobody to move it on.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, select

from execd.domain.changes import Change
from execd.domain.executions import Execution
from execd.domain.flow_moves import CancelSteps, Settle, StartStep, StepState, next_move
from execd.domain.states import Status
from execd.store.queue.cancel import cancel_all
from execd.store.queue.submit import insert_executions
from execd.store.queue.transitions import Transitions
from execd.store.rows import to_execution
from execd.store.schema import executions as ex

_CHILDREN = select(ex.c.id, ex.c.sequence, ex.c.status, ex.c.error).order_by(ex.c.id)


class FlowEngine:
    def __init__(self, transitions: Transitions) -> None:
        self.t = transitions

    def advance(self, conn: Connection, now: float, flow_ids: Iterable[int]) -> None:
        # Newest first, like every lock the queue takes (see transitions.LOCK_STATES).
        for flow_id in sorted(flow_ids, reverse=True):
            query = select(ex).where(ex.c.id == flow_id).with_for_update()
            row = conn.execute(query).mappings().first()
            if row is not None:
                self._advance(conn, now, to_execution(row))

    def _advance(self, conn: Connection, now: float, flow: Execution) -> None:
        move = next_move(flow, _latest_steps(conn, flow.id))
        if isinstance(move, CancelSteps):
            cancel_all(self.t, conn, now, move.ids)  # their ends settle the flow
        elif isinstance(move, Settle):
            values = {"result": {"stepSummary": move.summary}, "error": move.error}
            change = Change(flow.id, move.status, values=values, message=move.error)
            self.t.apply(conn, now, [change])
        elif isinstance(move, StartStep):
            insert_executions(conn, now, [move.step])
            self.t.db.notify_jobs(conn)


def _latest_steps(conn: Connection, flow_id: int) -> dict[int, StepState]:
    """The latest attempt of each step, by sequence (ids grow with attempts)."""
    latest: dict[int, StepState] = {}
    for child in conn.execute(_CHILDREN.where(ex.c.parent_id == flow_id)):
        if child.sequence is not None:
            latest[child.sequence] = StepState(
                child.id, child.sequence, Status(child.status), child.error
            )
    return latest
