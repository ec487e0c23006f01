from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import uvloop

from execd import files
from execd.domain.states import Status
from execd.runners.base import RunContext
from execd.runners.command import CommandRunner, MissingParameter, expand_argv, parameter_env
from execd.runners.control import ControlReader
from execd.runners.outcomes import describe_exit, process_outcome
from execd.runners.paths import ExecutionPaths
from execd.runners.process import CappedLog, ProcessResult, inherited_environment, run_process
from tests.records import an_execution
from tests.support import process_gone, wait_for


def test_expand_argv_keeps_values_inside_one_argument() -> None:
    argv = expand_argv(["cp", "{src}", "--to={dst}", "{n}"], {"src": "a b;c", "dst": "x", "n": 3})
    assert argv == ["cp", "a b;c", "--to=x", "3"]
    with pytest.raises(MissingParameter, match=r"\{missing\} names no parameter"):
        expand_argv(["ls", "{missing}"], {})


@pytest.mark.parametrize("start", [["sh", "-c"], ["bash", "-lc"], ["/usr/bin/env", "bash", "-c"]])
def test_placeholders_in_a_shell_script_of_an_argv_stay_data(
    start: list[str], tmp_path: Path
) -> None:
    parameters = {"x": "$(touch pwned)`touch pwned`'\"; touch pwned && id\n*", "n": 2}
    script = 'printf "<%s>" {x} "{x}" {n} "$1" ${HOME}; ls'
    argv = expand_argv([*start, script, "name", "{x}"], parameters)
    assert argv[-3:] == [
        'printf "<%s>" "$PARAM_X" "${PARAM_X}" "$PARAM_N" "$1" ${HOME}; ls',  # ${HOME}: the shell's
        "name",
        parameters["x"],  # a positional argument, not part of the script
    ]
    (tmp_path / "a-file").touch()
    env = {**parameter_env(parameters), "PATH": "/usr/bin:/bin", "HOME": "/home"}
    done = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, check=True)
    x = parameters["x"]
    assert done.stdout == f"<{x}><{x}><2><{x}></home>a-file\n"


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["bash", "-c", "echo $(( {n} + 1 ))"], "entry_point: {n} in arithmetic"),
        (["bash", "-c", "bash -c 'echo {n}'"], "entry_point: {n} inside single quotes"),
        (["python3", "-c", "print('{n}')"], "entry_point: {n} in the arguments of python3"),
        (["{n}"], "entry_point: {n} as the program to run"),
        (["ls", "{missing}"], "entry_point: {missing} names no parameter of this execution"),
    ],
)
def test_a_placeholder_a_program_would_read_as_code_fails_the_run(
    argv: list[str], error: str, tmp_path: Path
) -> None:
    ctx = _context(tmp_path)
    execution = replace(
        ctx.execution,
        runner="command",
        entry_point=json.dumps(argv),
        parameters={"n": "a[$(touch pwned)]"},
    )
    outcome = asyncio.run(CommandRunner().run(replace(ctx, execution=execution)))
    assert outcome.status is Status.FAILED
    assert outcome.error is not None and outcome.error.startswith(error), outcome.error
    assert not list(tmp_path.rglob("pwned"))


def test_parameter_env() -> None:
    env = parameter_env({"name": "ann", "count": 2, "tags": ["a"]})
    assert env["PARAM_NAME"] == "ann" and env["PARAM_COUNT"] == "2"
    assert env["PARAM_TAGS"] == '["a"]'
    assert json.loads(env["EXECD_PARAMETERS"]) == {"name": "ann", "count": 2, "tags": ["a"]}


def test_control_reader_folds_lines(tmp_path: Path) -> None:
    work = tmp_path / "work"
    artifacts = tmp_path / "artifacts"
    work.mkdir()
    (work / "r.txt").write_text("x")
    control = tmp_path / "control.jsonl"
    reader = ControlReader(control, work, artifacts)
    assert reader.poll() is False
    control.write_text(
        '{"percent": 150, "stage": "a"}\nnot json\n{"processed": 3, "total": 9}\n'
        '{"artifact": "r.txt"}\n{"artifact": "../../etc/passwd"}\n{"result": [1]}\n{"perc'
    )
    assert reader.poll() is True
    assert reader.progress["percent"] == 100.0 and reader.progress["stage"] == "a"
    assert (reader.progress["processed"], reader.progress["total"]) == (3, 9)
    assert (artifacts / "r.txt").read_text() == "x"
    assert reader.rejected == 2  # the bad line and the escaping path
    assert reader.has_result and reader.result == [1]
    with control.open("a") as handle:
        handle.write('ent": 20}\n')
    assert reader.poll() is True and reader.progress["percent"] == 20.0


def test_capped_log_marks_truncation(tmp_path: Path) -> None:
    log = CappedLog(tmp_path / "out.log", limit=10)
    log.write(b"0123456")
    log.write(b"789abcdef")
    log.close()
    text = (tmp_path / "out.log").read_text()
    assert text.startswith("0123456789\n[execd: output truncated: 6 more bytes")
    assert log.tail_text() == "0123456789abcdef"


def test_outcomes(tmp_path: Path) -> None:
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(2) == "exit code 2"
    reader = ControlReader(tmp_path / "c", tmp_path, tmp_path)
    failed = process_outcome(ProcessResult(1, "", "first\nlast line\n", False, reader))
    assert failed.status is Status.FAILED and failed.error == "exit code 1: last line"
    explicit = ProcessResult(0, "o", "", False, reader, explicit_result={"a": 1}, has_result=True)
    assert process_outcome(explicit).result == {"a": 1}


def test_control_reader_refuses_links_at_either_end(tmp_path: Path) -> None:
    work, artifacts = tmp_path / "work", tmp_path / "artifacts"
    work.mkdir()
    artifacts.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("do not copy")
    (work / "link.txt").symlink_to(secret)
    os.link(secret, work / "hard.txt")
    (work / "ok.txt").write_text("fresh")
    (work / "also.txt").write_text("fresh too")
    outside = tmp_path / "outside.txt"
    outside.write_text("untouched")
    # Planted where the copies will land: a symlink and a hard link to a file outside.
    (artifacts / "ok.txt").symlink_to(outside)
    os.link(outside, artifacts / "also.txt")
    control = tmp_path / "control.jsonl"
    names = ("link.txt", "hard.txt", "ok.txt", "also.txt")
    control.write_text("".join(f'{{"artifact": "{name}"}}\n' for name in names))
    reader = ControlReader(control, work, artifacts)
    reader.poll()
    assert reader.rejected == 2
    assert not (artifacts / "link.txt").exists() and not (artifacts / "hard.txt").exists()
    assert outside.read_text() == "untouched" and outside.stat().st_nlink == 1
    assert (artifacts / "ok.txt").read_text() == "fresh" and not (artifacts / "ok.txt").is_symlink()
    assert (artifacts / "also.txt").read_text() == "fresh too"


def test_a_file_with_other_hard_links_is_neither_read_nor_listed(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("private")
    os.link(outside, root / "hard.txt")
    (root / "own.txt").write_text("mine")
    assert files.regular_files(root) == [("own.txt", 4)]
    assert files.regular_files(root, linked=True) == [("hard.txt", 7), ("own.txt", 4)]
    with pytest.raises(files.Unsafe, match="other hard links"):
        files.open_below(root, "hard.txt")
    assert files.open_file_no_follow(root / "hard.txt") is None
    os.close(files.open_below(root, "own.txt"))


def _context(tmp_path: Path) -> RunContext:
    execution = an_execution(
        uuid="u-1",
        action_ref="x.y",
        pack="x",
        runner="shell",
        entry_point="",
        status=Status.RUNNING,
    )
    return RunContext(
        execution=execution,
        paths=ExecutionPaths(tmp_path / "run", tmp_path / "store"),
        output_limit=10_000,
        result_limit=10_000,
        kill_grace=1.0,
        inherited_env=inherited_environment(),
    )


def test_processes_left_in_the_background_end_with_the_run(tmp_path: Path) -> None:
    script = "sleep 300 >/dev/null 2>&1 </dev/null & echo $!"
    run = asyncio.run(run_process(_context(tmp_path), ["/bin/sh", "-c", script], {}))
    assert run.return_code == 0
    pid = int(run.stdout_tail)
    wait_for(lambda: process_gone(pid), timeout=10, message=f"background sleep {pid} gone")


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_run_closes_its_own_descriptors_once_and_no_one_elses(tmp_path: Path, loop: str) -> None:
    """Other threads of a worker open files and connections while runs end: a pipe's
    number closed twice would close whatever took the number in between."""

    def open_descriptors() -> set[str]:
        return set(os.listdir("/proc/self/fd"))

    async def runs() -> tuple[set[str], set[str], list[int]]:
        before = open_descriptors()
        argv = ["/bin/sh", "-c", "echo o; echo e >&2"]
        for _ in range(3):
            done = await run_process(_context(tmp_path), argv, {})
            assert done.stdout_tail == "o\n" and done.stderr_tail == "e\n"
        # Ended the way a timeout ends a run: cancelled while it still writes.
        ctx = _context(tmp_path / "cancelled")
        script = "echo started; while :; do echo more; sleep 0.01; done"
        run = asyncio.create_task(run_process(ctx, ["/bin/sh", "-c", script], {}))
        log = ctx.paths.stdout_file
        await asyncio.to_thread(wait_for, lambda: log.exists() and log.stat().st_size)
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
        after = open_descriptors()
        # The numbers the pipes had are free now: these take them, and must keep them.
        taken = [os.open(os.devnull, os.O_RDONLY) for _ in range(8)]
        gc.collect()
        await asyncio.sleep(0.05)
        lost = []
        for fd in taken:
            try:
                os.fstat(fd)
                os.close(fd)
            except OSError:
                lost.append(fd)
        return before, after, lost

    before, after, lost = uvloop.run(runs()) if loop == "uvloop" else asyncio.run(runs())
    assert after == before
    assert lost == []


def test_actions_inherit_only_what_programs_need(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXECD_ADMIN_TOKEN", "secret-token")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-key")
    monkeypatch.setenv("LC_TIME", "C")
    monkeypatch.setenv("WANTED_BY_OPERATOR", "yes")
    assert set(inherited_environment()) & {"EXECD_ADMIN_TOKEN", "WANTED_BY_OPERATOR"} == set()
    assert inherited_environment(["WANTED_BY_OPERATOR"])["WANTED_BY_OPERATOR"] == "yes"
    ctx = _context(tmp_path)
    run = asyncio.run(run_process(ctx, ["/bin/sh", "-c", "env"], {"PARAM_X": "2"}))
    seen = dict(line.split("=", 1) for line in run.stdout_tail.splitlines() if "=" in line)
    assert seen["PARAM_X"] == "2" and seen["EXECD_EXECUTION_ID"] == "1"
    assert seen["PATH"] == os.environ["PATH"] and seen["LC_TIME"] == "C"
    assert "EXECD_ADMIN_TOKEN" not in seen and "AWS_SECRET_ACCESS_KEY" not in seen
