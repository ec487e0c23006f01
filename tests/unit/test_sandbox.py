"""The action sandbox at the runner level: a real bubblewrap, both ways it can run (as
root switching to an unprivileged uid, and through a user namespace), and each limit.
The escape attempts against a real server are in tests/e2e/test_sandbox.py."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from execd.domain.executions import Execution, Outcome
from execd.domain.sandbox import Limits, SandboxOptions, sandbox_status
from execd.domain.states import Priority, Status
from execd.runners import cgroups, sandbox
from execd.runners.base import RunContext
from execd.runners.command import ShellRunner
from execd.runners.paths import ExecutionPaths
from execd.runners.python import PythonRunner
from tests.support import IN_CI

HAVE_BWRAP = shutil.which("bwrap") is not None
if not HAVE_BWRAP and IN_CI:
    raise RuntimeError("bubblewrap is required under CI=true (make test installs it)")
needs_bwrap = pytest.mark.skipif(not HAVE_BWRAP, reason="bubblewrap is not installed")


def _execution(
    parameters: dict[str, Any], options: SandboxOptions | None = None, **kw: Any
) -> Execution:
    values: dict[str, Any] = {
        "id": 77,
        "uuid": str(uuid.uuid4()),
        "tenant_id": "t",
        "project_id": "p",
        "action_id": None,
        "action_ref": "core.shell",
        "pack": "core",
        "runner": "shell",
        "entry_point": "",
        "parameters": parameters,
        "status": Status.RUNNING,
        "priority": Priority.NORMAL,
        "attempt": 1,
        "max_attempts": 1,
        "retry_policy": None,
        "fence": 1,
        "created": 0.0,
        "updated": 0.0,
        "sandbox": options.to_json() if options else None,
        **kw,
    }
    return Execution(**values)


class Run:
    def __init__(self, root: Path, box: sandbox.Sandbox) -> None:
        self.root = root
        self.box = box
        self.paths: ExecutionPaths | None = None

    def __call__(self, execution: Execution) -> Outcome:
        self.paths = ExecutionPaths(
            run_dir=self.root / "work" / execution.uuid, store_dir=self.root / execution.uuid
        )
        ctx = RunContext(
            execution=execution,
            paths=self.paths,
            output_limit=1024 * 1024,
            result_limit=1024 * 1024,
            kill_grace=1.0,
            sandbox=self.box,
        )
        runner = PythonRunner() if execution.runner == "python" else ShellRunner()
        return asyncio.run(asyncio.wait_for(runner.run(ctx), 60))

    def shell(self, cmd: str, options: SandboxOptions | None = None) -> tuple[Outcome, str]:
        outcome = self(_execution({"cmd": cmd}, options))
        return outcome, self.output()

    def output(self) -> str:
        assert self.paths is not None
        return self.paths.stdout_file.read_text() + self.paths.stderr_file.read_text()


@pytest.fixture(params=["root", "user-namespace"])
def run(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Run]:
    if not HAVE_BWRAP:
        pytest.skip("bubblewrap is not installed")
    as_root = request.param == "root"
    if as_root and os.geteuid() != 0:
        pytest.skip("switching to a run's own uid needs root")
    yield Run(tmp_path, _bubblewrap(as_root))


def _bubblewrap(as_root: bool) -> sandbox.Bubblewrap:
    box = sandbox.Bubblewrap(
        Limits(processes=64, memory_bytes=256 * 1024 * 1024),
        read_only=[p for p in sandbox.python_paths([]) if p.exists()],
        as_root=as_root,
    )
    box.check()
    return box


@needs_bwrap
def test_the_action_sees_its_own_world_only(run: Run, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("the service's own file")
    outcome, said = run.shell(
        f"""
        echo "uid=$(id -u) name=$(id -un)"
        echo "processes=$(ls /proc | grep -c '^[0-9]')"
        ls {tmp_path} || echo "no host directory"
        echo "work=$EXECD_WORK_DIR artifacts=$EXECD_ARTIFACTS_DIR pwd=$(pwd)"
        cat {secret} || echo "no secret"
        touch /usr/x || echo "usr read-only"
        touch /x || echo "root read-only"
        echo kept > "$EXECD_ARTIFACTS_DIR/kept.txt" && echo "artifacts writable"
        echo tmp > /tmp/t && echo "tmp writable"
        """
    )
    assert outcome.status is Status.COMPLETED, said
    uid = int(said.split("uid=")[1].split()[0])
    assert uid != 0 and "name=sandbox" in said
    assert int(said.split("processes=")[1].split()[0]) <= 5  # init, the shell, $( ), ls, grep
    assert "no host directory" in said
    assert "work=/execd/run/work artifacts=/execd/artifacts pwd=/execd/run/work" in said
    assert "the service's own file" not in said and "no secret" in said
    assert "usr read-only" in said and "root read-only" in said
    assert "artifacts writable" in said and "tmp writable" in said
    assert run.paths is not None
    assert (run.paths.artifacts_dir / "kept.txt").read_text() == "kept\n"


@needs_bwrap
def test_python_actions_run_in_the_sandbox(run: Run) -> None:
    outcome = run(_execution({"obj": {"a": [1, 2]}}, runner="python", entry_point="json:dumps"))
    assert outcome.status is Status.COMPLETED, run.output()
    assert outcome.result == '{"a": [1, 2]}'


@needs_bwrap
def test_a_fork_bomb_meets_the_process_limit(tmp_path: Path) -> None:
    # As the worker runs here by default: the kernel exempts a root worker's user
    # namespace from RLIMIT_NPROC, so root switches to a uid of the run's own.
    run = Run(tmp_path, _bubblewrap(as_root=os.geteuid() == 0))
    outcome, said = run.shell("bomb() { bomb | bomb & }; bomb; sleep 1")
    assert outcome.status is Status.FAILED
    assert outcome.error == "process limit reached: 64 processes and threads"
    assert "Cannot fork" in said


@needs_bwrap
def test_memory_beyond_the_limit_is_refused(run: Run) -> None:
    outcome, said = run.shell("python3 -c 'x = bytearray(512 * 1024 * 1024)'")
    assert outcome.status is Status.FAILED
    assert outcome.error == "memory limit reached: more than 256 MiB refused"
    assert "MemoryError" in said


@needs_bwrap
def test_cpu_time_beyond_the_limit_stops_the_run(run: Run) -> None:
    options = SandboxOptions(limits=Limits(cpu_seconds=1))
    outcome, _ = run.shell("while :; do :; done", options)
    assert outcome.status is Status.FAILED
    assert outcome.error is not None and outcome.error.startswith("CPU time limit reached")


@needs_bwrap
def test_output_beyond_the_limit_stops_the_run(run: Run) -> None:
    options = SandboxOptions(limits=Limits(output_bytes=64 * 1024))
    outcome, _ = run.shell("yes 'a line of output'", options)
    assert outcome.status is Status.FAILED
    assert outcome.error == "output limit reached: more than 64 KiB of stdout and stderr"


@needs_bwrap
def test_network_off_leaves_only_an_empty_loopback(run: Run) -> None:
    probe = (
        'python3 -c "import socket; s = socket.socket(); s.settimeout(3); '
        "print('reached' if s.connect_ex(('127.0.0.1', 5432)) == 0 else 'refused')\""
    )
    outcome, said = run.shell(probe, SandboxOptions(network=False))
    assert outcome.status is Status.COMPLETED, said
    assert said.strip() == "refused"
    outcome, said = run.shell(probe)  # PostgreSQL listens there: the host's loopback
    assert said.strip() == "reached"


@needs_bwrap
def test_links_planted_by_the_action_are_not_followed(run: Run, tmp_path: Path) -> None:
    private = tmp_path / "private.json"
    private.write_text('{"percent": 12, "result": "stolen"}\n')
    outcome, _ = run.shell(
        f'ln -s {private} "$EXECD_RESULT_FILE"; ln -s {private} "$EXECD_CONTROL_FILE"'
    )
    assert outcome.status is Status.COMPLETED
    assert "stolen" not in str(outcome.result) and outcome.progress is None
    outcome, said = run.shell(
        f"""
        ln -s {private.parent} linked-dir
        ln -s {private} linked-file
        echo '{{"artifact": "linked-file"}}' >> "$EXECD_CONTROL_FILE"
        echo '{{"artifact": "linked-dir/private.json"}}' >> "$EXECD_CONTROL_FILE"
        echo '{{"percent": 50}}' >> "$EXECD_CONTROL_FILE"
        """
    )
    assert outcome.status is Status.COMPLETED, said
    assert outcome.progress is not None and outcome.progress["percent"] == 50
    assert run.paths is not None
    assert list(run.paths.artifacts_dir.iterdir()) == []


def test_a_limit_above_the_ceiling_is_lowered_to_it() -> None:
    ceiling = Limits(memory_bytes=1 << 30, processes=100)
    asked = Limits(memory_bytes=1 << 32, cpu_seconds=5)
    assert asked.within(ceiling) == Limits(memory_bytes=1 << 30, processes=100, cpu_seconds=5)
    with pytest.raises(ValueError, match=r"limits\.processes must be a whole number"):
        Limits.from_json({"processes": 1.5})
    with pytest.raises(ValueError, match="Unknown limits: disk"):
        Limits.from_json({"disk": 1})
    with pytest.raises(ValueError, match=r"limits\.memory_bytes must be between"):
        Limits.from_json({"memory_bytes": 1})


def test_the_status_of_mixed_workers_warns() -> None:
    assert sandbox_status([]) == ("unknown", [])
    assert sandbox_status(["bubblewrap", "bubblewrap"]) == ("bubblewrap", [])
    word, warnings = sandbox_status(["bubblewrap", "none"])
    assert word == "mixed" and warnings[0].startswith("1 of 2 live workers run actions unsandboxed")


def test_paths_holding_the_data_directory_are_never_mounted(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    with pytest.raises(sandbox.SandboxUnavailable, match="actions must not see"):
        sandbox.build(
            "bubblewrap",
            Limits(),
            read_only=[tmp_path],
            forbidden=[data],
            uid_base=3_000_000,
            tmp_bytes=1 << 20,
        )


def _cgroups() -> cgroups.Cgroups:
    found = cgroups.detect(None)
    if found is None:
        if IN_CI:
            raise AssertionError("CI machines give root a cgroup for runs")
        pytest.skip("no cgroup can be made here")
    return found


@needs_bwrap
def test_a_cgroup_counts_memory_no_rlimit_sees(tmp_path: Path) -> None:
    if os.geteuid() != 0 and not IN_CI:
        pytest.skip("cgroups for runs need root or a delegated cgroup")
    box = _bubblewrap(as_root=os.geteuid() == 0)
    box.cgroups = _cgroups()
    box.tmp_bytes = 1 << 30
    run = Run(tmp_path, box)
    # Files in a tmpfs and a memfd are nobody's data segment: only the cgroup sees them.
    outcome, said = run.shell(
        "head -c 400000000 /dev/zero > /tmp/fill; echo filled",
        SandboxOptions(limits=Limits(memory_bytes=64 * 1024 * 1024)),
    )
    assert outcome.status is Status.FAILED, said
    assert outcome.error == (
        "memory limit reached: more than 64 MiB in use (the kernel stopped a process)"
    )
    assert "filled" not in said
    assert run.paths is not None
    name = cgroups.RUN_PREFIX + run.paths.run_dir.name  # the run's group is gone
    assert not (box.cgroups.memory_parent / name).exists()
    assert not (box.cgroups.pids_parent / name).exists()


@needs_bwrap
def test_groups_dead_workers_left_behind_are_swept_and_live_ones_kept(tmp_path: Path) -> None:
    found = _cgroups()
    names = [f"sweep-{os.getpid()}-{n}" for n in ("lost", "busy", "young")]
    lost, busy, young = (found.make(name, Limits(processes=8)) for name in names)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        for procs in busy.procs_files:
            Path(procs).write_text(str(sleeper.pid))
        for group in (lost, busy):  # made long ago
            for directory in {group.memory, group.pids}:
                os.utime(directory, (time.time() - 3600, time.time() - 3600))
        removed = found.sweep()
        assert [n for n in removed if n.startswith(f"{cgroups.RUN_PREFIX}sweep-")] == [
            lost.memory.name
        ]
        assert not lost.memory.exists() and not lost.pids.exists()
        assert busy.memory.exists() and young.memory.exists()  # in use; just made
    finally:
        sleeper.kill()
        sleeper.wait()
        busy.remove()
        young.remove()


@needs_bwrap
def test_a_cgroup_holds_the_process_limit_of_the_run(tmp_path: Path) -> None:
    box = _bubblewrap(as_root=os.geteuid() == 0)
    box.cgroups = _cgroups()
    run = Run(tmp_path, box)
    outcome, said = run.shell("bomb() { bomb | bomb & }; bomb; sleep 1")
    assert outcome.status is Status.FAILED
    assert outcome.error == "process limit reached: 64 processes and threads"
    assert "Cannot fork" in said


def test_runs_on_one_machine_never_share_a_uid(tmp_path: Path) -> None:
    leases = sandbox.UidLeases(3_000_000, tmp_path)
    first = leases.lease(12)
    second = leases.lease(12 + sandbox.UID_SLOTS)  # the same slot by id: the next is taken
    assert (first.uid, second.uid) == (3_000_012, 3_000_013)
    first.release()
    again = leases.lease(12)
    assert again.uid == 3_000_012
    second.release()
    again.release()


@needs_bwrap
def test_the_run_gets_no_descriptor_of_the_worker(run: Run) -> None:
    leaked = os.open("/dev/null", os.O_RDONLY)  # inheritable, as uvloop's own are
    os.set_inheritable(leaked, True)
    try:
        outcome, said = run.shell("ls /proc/self/fd | sort -n | tr '\\n' ' '")
    finally:
        os.close(leaked)
    assert outcome.status is Status.COMPLETED, said
    assert said.split() == ["0", "1", "2", "3"]  # stdio, and ls's own directory


@needs_bwrap
def test_planted_fifos_and_deep_trees_end_the_run_cleanly(run: Run) -> None:
    outcome, said = run.shell(
        """
        mkfifo "$EXECD_ARTIFACTS_DIR/f"; echo x > f
        echo '{"artifact": "f"}' >> "$EXECD_CONTROL_FILE"
        d=$(printf 'a/%.0s' $(seq 1 300)); mkdir -p "$d" && echo deep > "$d/x"
        cd / && rm -rf "$EXECD_WORK_DIR" && mkfifo "$EXECD_WORK_DIR"
        echo done
        """
    )
    assert outcome.status is Status.COMPLETED, said
    assert said.strip() == "done"
    assert run.paths is not None
    # The worker reads the control file while the run goes on: before the work directory
    # is swapped for a FIFO, "f" is copied over the planted one (replaced, never written
    # through); after it, the copy is refused and the planted FIFO stays.
    kept = run.paths.artifacts_dir / "f"
    if not stat.S_ISFIFO(kept.lstat().st_mode):
        assert stat.S_ISREG(kept.lstat().st_mode)
        assert kept.read_bytes() == b"x\n"


@needs_bwrap
def test_the_operator_can_take_the_network_from_every_action(tmp_path: Path) -> None:
    box = _bubblewrap(as_root=os.geteuid() == 0)
    box.network = False  # EXECD_SANDBOX_NETWORK=none
    outcome, said = Run(tmp_path, box).shell(
        'python3 -c "import socket; s = socket.socket(); s.settimeout(3); '
        "print('reached' if s.connect_ex(('127.0.0.1', 5432)) == 0 else 'refused')\""
    )
    assert outcome.status is Status.COMPLETED, said
    assert said.strip() == "refused"


def test_no_http_action_fetches_when_the_operator_took_the_network(tmp_path: Path) -> None:
    from execd import fetching
    from execd.runners.http import HttpRunner

    run = _execution({"url": "http://127.0.0.1:9/"}, runner="http", action_ref="core.http")
    ctx = RunContext(
        execution=run,
        paths=ExecutionPaths(tmp_path / "run", tmp_path / "store"),
        output_limit=1024,
        result_limit=1024,
        kill_grace=1.0,
        sandbox=sandbox.Unsandboxed(network=False),
    )
    outcome = asyncio.run(HttpRunner(fetching.AllowList.parse(["127.0.0.1"])).run(ctx))
    assert outcome.status is Status.FAILED
    assert outcome.error == (
        "refused: no action has a network on this worker (EXECD_SANDBOX_NETWORK=none)"
    )
