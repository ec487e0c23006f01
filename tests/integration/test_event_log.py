"""The event log's reading order on PostgreSQL: an event committed after a later id
is not skipped by a reader that has passed that id (store/events.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, insert, select

from execd.store import events as log
from execd.store.database import sync_url
from execd.store.migrate import upgrade
from execd.store.schema import execution_events
from tests.support import wait_for


def _event(n: int) -> dict[str, object]:
    return {
        "execution_id": n, "tenant_id": "t", "project_id": "p", "from_status": None,
        "to_status": "requested", "at": 0.0, "attempt": 1,
    }  # fmt: skip


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_an_event_committed_late_is_read_in_its_place(database_url: str) -> None:
    upgrade(database_url)
    engine = create_engine(sync_url(database_url))
    statement = insert(execution_events).values(txid=log.current_txid())
    with engine.connect() as reader:
        start = log.tail(reader)
        reader.rollback()
        slow = engine.connect()
        slow_tx = slow.begin()
        slow.execute(statement, [_event(1)])  # takes the lower id, commits last
        with engine.begin() as fast:
            fast.execute(statement, [_event(2)])
        found, here = log.read(reader, start, 100)
        reader.rollback()
        assert found == [] and here == start  # the later id waits behind the open one
        slow_tx.commit()
        slow.close()

        def both() -> bool:  # once no older transaction of the cluster is open
            found, _ = log.read(reader, start, 100)
            reader.rollback()
            return [e.execution_id for e in found] == [1, 2]

        wait_for(both, timeout=30, message="both events, in id order")
        # Written without a txid (a process of the previous version): filled in.
        reader.execute(insert(execution_events), [_event(3)])
        txid = reader.execute(
            select(execution_events.c.txid).where(execution_events.c.execution_id == 3)
        ).scalar_one()
        assert txid is not None and txid > 0
    engine.dispose()
