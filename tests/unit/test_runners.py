from __future__ import annotations

import json
from pathlib import Path

import pytest

from execd.domain.states import Status
from execd.runners.command import expand_argv, parameter_env
from execd.runners.control import ControlReader
from execd.runners.outcomes import describe_exit, process_outcome
from execd.runners.process import CappedLog, ProcessResult


def test_expand_argv_keeps_values_inside_one_argument() -> None:
    argv = expand_argv(["cp", "{src}", "--to={dst}", "{n}"], {"src": "a b;c", "dst": "x", "n": 3})
    assert argv == ["cp", "a b;c", "--to=x", "3"]
    with pytest.raises(KeyError):
        expand_argv(["{missing}"], {})


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
