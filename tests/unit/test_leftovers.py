"""What a lost run left running is found by its record and killed, and nothing else is:
a pid reused since the record was written is left alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from execd.runners import leftovers
from tests.support import wait_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux processes")


def _start(command: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sh", "-c", command], start_new_session=True)


def _gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_recorded_run_and_its_descendants_are_killed_and_the_record_removed(
    tmp_path: Path,
) -> None:
    run = _start("sleep 60 & sleep 60; wait")
    try:
        run_dir = tmp_path / "abc-1"
        leftovers.remember(run_dir, run.pid)
        leader = psutil.Process(run.pid)
        wait_for(lambda: len(leader.children()) == 2, timeout=5, message="both sleeps")
        members = [leader, *leader.children(recursive=True)]
        assert leftovers.record_path(run_dir).exists()
        assert leftovers.stop_left_behind(tmp_path, ["abc-1"]) == len(members) >= 2
        run.wait(timeout=5)
        assert all(_gone(m) for m in members)
        assert not leftovers.record_path(run_dir).exists()
    finally:
        run.kill()
        run.wait()


def test_a_group_whose_leader_exited_is_still_reached(tmp_path: Path) -> None:
    leader = _start("sleep 60 & echo $!")
    try:
        run_dir = tmp_path / "abc-2"
        leftovers.remember(run_dir, leader.pid)
    finally:
        leader.wait(timeout=5)
    stray = [p for p in psutil.process_iter(["cmdline"]) if _in_group(p, leader.pid)]
    assert stray, "the background sleep should still run in the group"
    leftovers.stop_left_behind(tmp_path, ["abc-2"])
    psutil.wait_procs(stray, timeout=5)
    assert all(_gone(p) for p in stray)


def test_a_reused_pid_is_left_alone(tmp_path: Path) -> None:
    other = _start("sleep 60")
    try:
        record = tmp_path / leftovers.RECORDS / "abc-3"
        record.parent.mkdir()
        started = psutil.Process(other.pid).create_time()
        record.write_text(f"{other.pid} {started - 100.0!r}\n")  # another process's pid
        assert leftovers.stop_left_behind(tmp_path, ["abc-3", "never-recorded"]) == 0
        assert other.poll() is None
        assert not record.exists()
    finally:
        other.kill()
        other.wait()


def _in_group(process: psutil.Process, group: int) -> bool:
    try:
        return process.pid != group and os.getpgid(process.pid) == group
    except (ProcessLookupError, psutil.Error):
        return False
