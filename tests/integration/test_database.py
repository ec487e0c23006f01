"""Database.write: each write is one all-or-nothing unit, on both backends; on SQLite
the writes that queue up behind the one being written share the next commit."""

from __future__ import annotations

import asyncio
import fcntl
import os
import stat
import threading
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import Connection, event, func, insert, select
from sqlalchemy.exc import IntegrityError

from execd.domain.errors import StoreUnavailable
from execd.store.database import Database, must_reach_disk
from execd.store.migrate import upgrade
from execd.store.schema import projects, tenants

Run = Callable[[Callable[[Database], Awaitable[Any]]], Any]
T = TypeVar("T")


def _add_tenant(name: str, fail: bool = False) -> Callable[[Connection], str]:
    def work(conn: Connection) -> str:
        conn.execute(insert(tenants).values(id=str(uuid.uuid4()), name=name, created=0.0))
        if fail:
            raise ValueError(f"{name} refused after writing")
        return name

    return work


async def _names(db: Database, prefix: str) -> set[str]:
    query = select(tenants.c.name).where(tenants.c.name.like(f"{prefix}%"))
    return set(await db.read(lambda conn: list(conn.execute(query).scalars())))


def test_a_failing_write_among_concurrent_ones_rolls_back_alone(with_db: Run) -> None:
    async def scenario(db: Database) -> None:
        works = [_add_tenant(f"w{i}", fail=(i % 7 == 3)) for i in range(40)]
        results = await asyncio.gather(*(db.write(w) for w in works), return_exceptions=True)
        for i, result in enumerate(results):
            if i % 7 == 3:
                assert isinstance(result, ValueError) and f"w{i} refused" in str(result)
            else:
                assert result == f"w{i}"
        assert await _names(db, "w") == {f"w{i}" for i in range(40) if i % 7 != 3}

    with_db(scenario)


def _on_sqlite(tmp_path: Path, scenario: Callable[[Database], Awaitable[T]]) -> T:
    url = f"sqlite:///{tmp_path / 'execd.db'}"
    upgrade(url)

    async def run() -> T:
        db = Database(url)
        try:
            return await scenario(db)
        finally:
            await db.dispose()

    return asyncio.run(run())


async def _queued_behind_one(
    db: Database,
    prefix: str,
    works: list[Callable[[Connection], Any]],
    while_queued: Callable[[list[asyncio.Future[Any]]], None] = lambda queued: None,
    *,
    durable: bool = True,
) -> list[Any]:
    """Hold the writer with one write (named `<prefix>-first`) until all of `works` are
    queued behind it (`while_queued` sees them then), let go, and return what each
    of them answered, its exception included."""
    started, release = threading.Event(), threading.Event()

    def first(conn: Connection) -> str:
        started.set()
        release.wait(10)  # holds the writer while the others queue up
        return _add_tenant(f"{prefix}-first")(conn)

    held = asyncio.ensure_future(db.write(first))
    assert await asyncio.to_thread(started.wait, 10)
    queued = [asyncio.ensure_future(db.write(w, durable=durable)) for w in works]
    for _ in range(1000):
        if len(db._queued) == len(works):
            break
        await asyncio.sleep(0.005)
    while_queued(queued)
    release.set()
    assert await held == f"{prefix}-first"
    return await asyncio.wait_for(asyncio.gather(*queued, return_exceptions=True), 10)


def test_sqlite_writes_queued_behind_one_share_the_next_commit(tmp_path: Path) -> None:
    """(PostgreSQL's writes run side by side, each in its own transaction.)"""

    async def scenario(db: Database) -> None:
        commits: list[int] = []
        event.listen(db._writer, "commit", lambda conn: commits.append(1))
        works = [_add_tenant(f"q{i}") for i in range(20)] + [_add_tenant("q-bad", fail=True)]
        results = await _queued_behind_one(db, "q", works)
        assert results[:20] == [f"q{i}" for i in range(20)]
        assert isinstance(results[20], ValueError)
        assert len(commits) == 2  # the first alone, then the twenty-one together
        stored = await _names(db, "q")
        assert stored == {"q-first", *(f"q{i}" for i in range(20))}
        count = select(func.count()).select_from(tenants).where(tenants.c.name == "q-bad")
        assert await db.read(lambda conn: conn.execute(count).scalar()) == 0

    _on_sqlite(tmp_path, scenario)


def test_only_writes_marked_not_durable_commit_without_waiting_for_the_disk(
    with_db: Run, backend: str
) -> None:
    """On SQLite a claim, a lease renewal or a heartbeat may be lost in a power cut
    without harm; everything else (a submission, an outcome) is on disk before it
    returns. PostgreSQL keeps every commit durable: its workers outlive its crashes."""
    show = "PRAGMA synchronous" if backend == "sqlite" else "SHOW synchronous_commit"
    durable_mode, relaxed_mode = ("2", "1") if backend == "sqlite" else ("on", "on")

    async def scenario(db: Database) -> None:
        def mode(name: str) -> Callable[[Connection], str]:
            def work(conn: Connection) -> str:
                _add_tenant(name)(conn)
                return str(conn.exec_driver_sql(show).scalar())

            return work

        assert await db.write(mode("d1")) == durable_mode
        assert await db.write(mode("r1"), durable=False) == relaxed_mode
        assert await db.write(mode("d2")) == durable_mode
        together = await asyncio.gather(
            db.write(mode("r2"), durable=False), db.write(mode("r3"), durable=False)
        )
        assert together == [relaxed_mode, relaxed_mode]
        assert await _names(db, "d") == {"d1", "d2"}
        assert await _names(db, "r") == {"r1", "r2", "r3"}

    with_db(scenario)


def test_a_relaxed_write_that_must_reach_disk_is_on_disk_before_it_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claim that also ended work (built-in actions run in the claim) commits without
    waiting for the disk, as claims do, but flushes the WAL before it is answered."""
    flushed: list[str] = []
    fsync = os.fsync

    def recording_fsync(descriptor: int) -> None:
        flushed.append(os.readlink(f"/proc/self/fd/{descriptor}"))
        fsync(descriptor)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    wal = str(tmp_path / "execd.db-wal")

    def ending(name: str) -> Callable[[Connection], str]:
        def work(conn: Connection) -> str:
            must_reach_disk(conn)
            return _add_tenant(name)(conn)

        return work

    async def scenario(db: Database) -> None:
        await db.write(_add_tenant("plain"), durable=False)
        assert flushed == []
        await db.write(ending("ending"), durable=False)
        assert flushed == [wal]
        await db.write(ending("durable"))  # its commit waited for the disk itself
        assert flushed == [wal]
        works = [_add_tenant("q0"), ending("q1"), _add_tenant("q2")]
        results = await _queued_behind_one(db, "q", works, durable=False)
        assert results == ["q0", "q1", "q2"]
        assert flushed == [wal, wal]  # once for the three that shared a commit
        assert await _names(db, "q") == {"q-first", "q0", "q1", "q2"}

    _on_sqlite(tmp_path, scenario)


def test_processes_sharing_an_sqlite_file_take_turns_to_write(tmp_path: Path) -> None:
    """Each write holds `<db>-writer.lock` from BEGIN to COMMIT: while another process
    holds it the write waits (it neither fails nor goes ahead), it goes ahead once the
    lock is let go, and a write that fails lets go of it too."""
    turn = tmp_path / "execd.db-writer.lock"

    async def scenario(db: Database) -> None:
        assert await db.write(_add_tenant("turn-first")) == "turn-first"
        assert stat.S_IMODE(turn.stat().st_mode) == 0o600
        other = os.open(turn, os.O_RDWR)  # an open file of its own: another process's hold
        try:
            fcntl.flock(other, fcntl.LOCK_EX)
            waiting = asyncio.create_task(db.write(_add_tenant("turn-waiting")))
            await asyncio.sleep(0.3)
            assert not waiting.done()
            assert await _names(db, "turn-") == {"turn-first"}
            fcntl.flock(other, fcntl.LOCK_UN)
            assert await asyncio.wait_for(waiting, 10) == "turn-waiting"
            with pytest.raises(ValueError, match="refused after writing"):
                await db.write(_add_tenant("turn-refused", fail=True))
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free: raises if still held
            fcntl.flock(other, fcntl.LOCK_UN)
        finally:
            os.close(other)
        assert await _names(db, "turn-") == {"turn-first", "turn-waiting"}

    _on_sqlite(tmp_path, scenario)


def test_a_turn_that_cannot_be_taken_leaves_writes_going(tmp_path: Path) -> None:
    """A lock file the process cannot open (here a directory in its place) turns the
    turns off for that process: its writes go ahead, waiting in SQLite as before."""
    (tmp_path / "execd.db-writer.lock").mkdir()

    async def scenario(db: Database) -> None:
        assert await db.write(_add_tenant("off-1")) == "off-1"
        assert await db.write(_add_tenant("off-2")) == "off-2"
        assert await _names(db, "off-") == {"off-1", "off-2"}

    _on_sqlite(tmp_path, scenario)


def test_a_caller_cancelled_while_its_write_is_queued_leaves_the_others_answered(
    tmp_path: Path,
) -> None:
    """A request that goes away (a client that left, a timeout) while its write waits
    for the writer: its write is dropped, and every other queued write is answered."""

    async def scenario(db: Database) -> None:
        works = [_add_tenant(f"c{i}") for i in range(6)]
        results = await _queued_behind_one(db, "c", works, lambda queued: queued[2].cancel())
        assert isinstance(results[2], asyncio.CancelledError)
        assert [r for i, r in enumerate(results) if i != 2] == ["c0", "c1", "c3", "c4", "c5"]
        assert await _names(db, "c") == {"c-first", "c0", "c1", "c3", "c4", "c5"}
        assert await asyncio.wait_for(db.write(_add_tenant("c-after")), 10) == "c-after"

    _on_sqlite(tmp_path, scenario)


def _unfinished(name: str, fail: bool = False) -> Callable[[Connection], str]:
    """A write that leaves an INSERT ... RETURNING unfinished (its cursor kept, as an
    exception's traceback keeps it while the rows were being read)."""

    def work(conn: Connection) -> str:
        row = {"id": str(uuid.uuid4()), "name": name, "created": 0.0}
        _KEPT.append(conn.execute(insert(tenants).values(row).returning(tenants.c.id)))
        if fail:
            raise ValueError(f"{name} failed while reading")
        return name

    return work


def _deferred_violation(conn: Connection) -> str:
    """A write that only its commit can refuse: a foreign key checked at the commit."""
    conn.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
    row = {"id": str(uuid.uuid4()), "tenant_id": "no-such-tenant", "name": "p", "created": 0.0}
    conn.execute(insert(projects).values(row))
    return "u-violation"


_KEPT: list[Any] = []


@pytest.mark.parametrize("together", [False, True], ids=["alone", "queued"])
def test_a_write_cannot_leave_the_sqlite_writer_unable_to_commit(
    tmp_path: Path, together: bool
) -> None:
    """Writes that leave a statement unfinished, or that only the commit refuses, stay
    their own problem: alone or sharing a transaction, every other write is answered
    and stored, and the writer goes on."""
    works = [
        _add_tenant("u0"),
        _unfinished("u-kept"),
        _add_tenant("u1"),
        _unfinished("u-failed", fail=True),
        _add_tenant("u2"),
        _deferred_violation,
        _add_tenant("u3"),
    ]

    async def scenario(db: Database) -> None:
        try:
            if together:
                results = await _queued_behind_one(db, "u", works)
            else:
                results = []
                for w in works:
                    try:
                        results.append(await asyncio.wait_for(db.write(w), 10))
                    except Exception as exc:
                        results.append(exc)
            assert results[:3] == ["u0", "u-kept", "u1"]
            assert isinstance(results[3], ValueError)
            assert results[4] == "u2"
            assert isinstance(results[5], IntegrityError)
            assert results[6] == "u3"
            stored = {"u0", "u-kept", "u1", "u2", "u3"} | ({"u-first"} if together else set())
            assert await _names(db, "u") == stored
            assert await asyncio.wait_for(db.write(_add_tenant("u-after")), 10) == "u-after"
        finally:
            _KEPT.clear()

    _on_sqlite(tmp_path, scenario)


def test_a_full_disk_is_the_store_unavailable_and_passes_when_space_returns(
    tmp_path: Path,
) -> None:
    """SQLite out of space (its page limit stands in for the disk): the write answers
    StoreUnavailable saying "disk full", commits nothing, and the next write, once
    there is room again, goes through."""

    async def scenario(db: Database) -> tuple[str, set[str]]:
        def full(conn: Connection) -> None:
            pages = conn.exec_driver_sql("PRAGMA page_count").scalar()
            conn.exec_driver_sql(f"PRAGMA max_page_count = {pages}")
            try:
                _add_tenant("full-" + "x" * 150)(conn)
                for i in range(200):  # more than the pages left
                    _add_tenant(f"full-{i}-" + "y" * 180)(conn)
            finally:
                conn.exec_driver_sql("PRAGMA max_page_count = 1073741823")

        try:
            await db.write(full)
        except StoreUnavailable as exc:
            reason = exc.reason
        else:
            reason = "nothing refused it"
        await db.write(_add_tenant("full-later"))
        return reason, await _names(db, "full")

    reason, stored = _on_sqlite(tmp_path, scenario)
    assert reason == "disk full"
    assert stored == {"full-later"}


def test_a_statement_sqlite_cannot_run_is_an_error_not_an_outage(tmp_path: Path) -> None:
    """(A bug or a schema not migrated must not read as "try again shortly".)"""

    async def scenario(db: Database) -> BaseException:
        try:
            await db.read(lambda conn: conn.exec_driver_sql("SELECT * FROM no_such_table").all())
        except Exception as exc:
            return exc
        raise AssertionError("the statement ran")

    error = _on_sqlite(tmp_path, scenario)
    assert not isinstance(error, StoreUnavailable) and "no such table" in str(error)
