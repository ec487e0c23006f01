"""Workers taking work: the ready queue, delayed work coming due, claims and their
leases."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import structlog
from sqlalchemy import (
    Connection,
    Double,
    Integer,
    Select,
    bindparam,
    or_,
    select,
    text,
    update,
)

from execd.domain.changes import Change
from execd.domain.executions import Execution
from execd.domain.states import LEASED, Status
from execd.store.clock import now_of
from execd.store.database import must_reach_disk
from execd.store.queue.transitions import Transitions, event_row, log_events
from execd.store.rows import to_execution
from execd.store.schema import executions as ex
from execd.store.sql_functions import db_now

log = structlog.get_logger(__name__)

CANDIDATE = (ex.c.id, ex.c.device_id, ex.c.parent_id, ex.c.priority, ex.c.runner)
# The hot statements are built once: building and keying a statement costs more than
# running it on a small batch.
READY = (
    select(*CANDIDATE)
    .where(ex.c.status == Status.SCHEDULING, ex.c.device_id.is_(None))
    .order_by(ex.c.priority.desc(), ex.c.id)
    .limit(bindparam("limit", type_=Integer))
    .with_for_update(skip_locked=True)
)
"""Ready work bound to no device, best first: it reads only ix_executions_ready."""

# Spelled as the predicate of ux_executions_device_holder, so SQLite reads that index.
DEVICE_FREE = text(
    "NOT EXISTS (SELECT 1 FROM executions AS holder "
    "WHERE holder.device_id = executions.device_id AND holder.device_id IS NOT NULL "
    "AND holder.parent_id IS NULL "
    "AND holder.status IN ('scheduled', 'running', 'canceling'))"
)
# A claim that loses a race for a device (PostgreSQL) runs again, as submissions do.
DEVICE_INDEX = "ux_executions_device_holder"


def device_ready_query(devices: Sequence[str]) -> Select[Any]:
    """Ready work bound to one of `devices`, best first, from ix_executions_device_ready.
    A top-level execution takes its device only while no other holds it; its steps
    (children of the holder) may run."""
    return (
        select(*CANDIDATE)
        .where(
            ex.c.status == Status.SCHEDULING,
            ex.c.device_id.in_(sorted(devices)),
            or_(ex.c.parent_id.is_not(None), DEVICE_FREE),
        )
        .order_by(ex.c.priority.desc(), ex.c.id)
        .limit(bindparam("limit", type_=Integer))
        .with_for_update(skip_locked=True)
    )


CLAIM = (
    update(ex)
    .where(ex.c.id.in_(bindparam("ids", expanding=True)), ex.c.status == Status.SCHEDULING)
    .values(
        status=Status.SCHEDULED,
        worker_id=bindparam("worker"),
        fence=ex.c.fence + 1,
        lease_expires=bindparam("lease_expires"),
        updated=bindparam("now"),
    )
    .returning(*ex.c)
)
# PostgreSQL: the clock is read by the claim itself, once for all its rows (an
# uncorrelated subquery), and comes back in `updated`: no round trip of its own.
_CLOCK = select(db_now()).scalar_subquery()
CLAIM_BY_DB_CLOCK = CLAIM.values(
    lease_expires=_CLOCK + bindparam("lease", type_=Double()), updated=_CLOCK
)
ANY_READY = (
    select(ex.c.id).where(ex.c.status == Status.SCHEDULING, ex.c.device_id.is_(None)).limit(1)
)
DUE = (
    select(ex.c.id)
    .where(ex.c.status == Status.REQUESTED, ex.c.not_before <= bindparam("now"))
    .order_by(ex.c.not_before)
    .limit(bindparam("limit", type_=Integer))
    .with_for_update(skip_locked=True)
)
ANY_DUE = (  # a plain read: the lock-taking DUE is for the claim transaction
    select(ex.c.id)
    .where(ex.c.status == Status.REQUESTED, ex.c.not_before <= bindparam("now"))
    .limit(1)
)
NEXT_DUE = (
    select(ex.c.not_before)
    .where(ex.c.status == Status.REQUESTED)
    .order_by(ex.c.not_before)
    .limit(1)
)


def has_work(conn: Connection, devices: Sequence[str]) -> bool:
    if conn.execute(ANY_READY).first() is not None:
        return True
    if devices:
        mine = select(ex.c.id).where(
            ex.c.status == Status.SCHEDULING, ex.c.device_id.in_(list(devices))
        )
        if conn.execute(mine.limit(1)).first() is not None:
            return True
    return conn.execute(ANY_DUE, {"now": now_of(conn)}).first() is not None


def next_due(conn: Connection) -> float | None:
    now = now_of(conn)
    first = conn.execute(NEXT_DUE).scalar()
    return None if first is None else max(0.0, first - now)


@dataclass(frozen=True)
class Inline:
    """Work a worker runs inside the transaction that claims it: executions of
    `runners`, up to `limit` per claim beside the claim's own limit (they hold no
    slot), among the first of the ready queue (as many as both limits together).
    `settle` (called in the database thread) gives the changes that start and end
    one of them."""

    runners: frozenset[str]
    settle: Callable[[Execution], Sequence[Change]]
    limit: int


def claim(
    t: Transitions,
    conn: Connection,
    device_ready: Select[Any] | None,
    worker_id: int,
    limit: int,
    lease: float,
    inline: Inline | None = None,
) -> list[Execution]:
    """Take up to `limit` ready executions, highest priority first, then oldest, and
    with `inline` up to `inline.limit` more of its runners, which are run and ended
    here: those come back ended, the others `scheduled`."""
    now = now_of(conn)
    promote_due(t, conn, now)
    extra = inline.limit if inline is not None else 0
    # Two statements, not UPDATE ... WHERE id IN (SELECT ... LIMIT): PostgreSQL may
    # evaluate such a subquery more than once and claim more than `limit` rows.
    candidates = list(conn.execute(READY, {"limit": limit + extra}))
    if device_ready is not None:  # each part from its own index, merged here
        candidates += conn.execute(device_ready, {"limit": limit + extra})
        candidates.sort(key=lambda r: (-r.priority, r.id))
    ids = _chosen(candidates, limit, inline.runners if inline is not None else frozenset(), extra)
    if not ids:
        return []
    # Stamped by the clock after the rows were found: one submitted (and stamped)
    # after `now` was read may be among them, and its history must stay in order.
    if conn.dialect.name == "sqlite":  # the local clock: no round trip
        now = now_of(conn)
        stamp = {"lease_expires": now + lease, "now": now}
        rows = conn.execute(CLAIM, {"ids": ids, "worker": worker_id, **stamp})
    else:
        rows = conn.execute(CLAIM_BY_DB_CLOCK, {"ids": ids, "worker": worker_id, "lease": lease})
    claimed = sorted((to_execution(r) for r in rows.mappings()), key=lambda e: (-e.priority, e.id))
    if not claimed:
        return []  # taken by another worker in between
    now = claimed[0].updated  # as stamped, whichever clock stamped it
    log_events(
        conn,
        [
            event_row(e, Status.SCHEDULING, Status.SCHEDULED, now, worker_id=worker_id)
            for e in claimed
        ],
    )
    if inline is not None:
        claimed = _settle(t, conn, now, claimed, inline)
    return claimed


def _chosen(candidates: list[Any], limit: int, inline: frozenset[str], extra: int) -> list[int]:
    """The ids to claim: up to `limit` that take a slot, up to `extra` run inline; a
    top-level execution bound to a device only if no other of this batch takes it."""
    ids: list[int] = []
    taken: set[str] = set()
    slots = settled = 0
    for row in candidates:
        if row.runner in inline:
            if settled == extra:
                continue
        elif slots == limit:
            continue
        if row.device_id is not None and row.parent_id is None:
            if row.device_id in taken:
                continue  # one top-level execution per device, in this batch too
            taken.add(row.device_id)
        if row.runner in inline:
            settled += 1
        else:
            slots += 1
        ids.append(row.id)
        if slots == limit and settled == extra:
            break
    return ids


def _settle(
    t: Transitions, conn: Connection, now: float, claimed: list[Execution], inline: Inline
) -> list[Execution]:
    """Run and end the inline work of a claim in its transaction. If writing their
    outcomes fails, they stay claimed (rolled back to a savepoint) and the worker runs
    them as any other; a poison outcome cannot make the claim itself fail."""
    changes: list[Change] = []
    for execution in claimed:
        if execution.runner in inline.runners:
            try:
                changes += inline.settle(execution)
            except Exception:  # left to the worker, which reports what went wrong
                log.exception("inline_run_failed", execution=execution.id)
    if not changes:
        return claimed
    try:
        with conn.begin_nested():
            states = t.apply(conn, now, changes, retries=True)
    except Exception:
        log.exception("inline_settle_failed", count=len(changes))
        return claimed
    # An outcome is an answer to nobody yet, but it is stored as durably as any.
    must_reach_disk(conn)
    ended = {s.id: s.status for s in states if s is not None}
    return [replace(e, status=ended.get(e.id, e.status)) for e in claimed]


def promote_due(t: Transitions, conn: Connection, now: float) -> int:
    """Release delayed executions whose time has come; how many."""
    ids = list(conn.execute(DUE, {"now": now, "limit": 1000}).scalars())
    if ids:  # stamped after they were found, as in `claim`
        t.apply(conn, now_of(conn), [Change(i, Status.SCHEDULING) for i in ids])
    return len(ids)


def renew(
    conn: Connection, worker_id: int, held: Mapping[int, int], lease: float
) -> dict[int, Status | None]:
    """Extend the leases this worker holds; each one's status (None: lost)."""
    now = now_of(conn)
    conn.execute(
        update(ex)
        .where(ex.c.id.in_(held), ex.c.worker_id == worker_id, ex.c.status.in_(LEASED))
        .values(lease_expires=now + lease)
    )
    rows = conn.execute(
        select(ex.c.id, ex.c.fence, ex.c.status, ex.c.worker_id).where(ex.c.id.in_(held))
    )
    found = {
        r.id: Status(r.status)
        for r in rows
        if r.fence == held[r.id] and r.worker_id == worker_id and r.status in LEASED
    }
    return {i: found.get(i) for i in held}
