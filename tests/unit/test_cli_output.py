"""What the CLI prints: about an execution as it runs, and about what went wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from rich.progress import ProgressBar
from rich.text import Text

from execd.cli import input_files, output
from execd.cli.app import options
from execd.client import ConnectionFailed, NotFound, Unauthorized
from execd.client import config as client_config
from execd.client.errors import UnexpectedAnswer


def test_an_execution_without_a_percentage_gets_no_bar() -> None:
    progress = output.execution_bar()
    fields = {"status": "running", "stage": "", "eta": ""}
    unknown = progress.add_task("", total=None, **fields)
    known = progress.add_task("", total=100, completed=80, **fields)
    bar = progress.columns[1]
    tasks = {task.id: task for task in progress.tasks}
    # rich's moving bar of an unknown total looks like a full one: none is drawn.
    assert bar.render(tasks[unknown]) == Text("")
    drawn = bar.render(tasks[known])
    assert isinstance(drawn, ProgressBar) and drawn.completed == 80 and drawn.total == 100


def test_piped_tables_and_records_end_their_lines_with_the_text(
    capsys: pytest.CaptureFixture[str],
) -> None:
    output.table(["ID", "DESCRIPTION"], [[1, "a long description"], [22, "-"]])
    output.fields([("id", 1), ("description", "short")])
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "ID  DESCRIPTION",
        "1   a long description",
        "22  -",
        "id           1",
        "description  short",
    ]


@pytest.fixture
def no_login(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("EXECD_URL", "EXECD_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EXECD_CONFIG", str(tmp_path / "execd.json"))
    monkeypatch.setattr(options, "url", None)
    monkeypatch.setattr(options, "token", None)
    return tmp_path


def test_a_refused_token_is_explained_by_where_the_token_came_from(
    no_login: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refused = Unauthorized(401, "Missing Authorization header")
    needs = output.problem(refused)
    assert needs == output.Problem(
        "the server needs a token (401: Missing Authorization header). "
        "Log in with `execd login` or set EXECD_TOKEN.",
        output.Exit.API_ERROR,
    )
    client_config.save("http://127.0.0.1:8095", "execd_saved")
    monkeypatch.setattr(options, "url", "http://localhost:8095/")
    assert output.problem(refused).message == (
        "no token for http://localhost:8095: the saved login is for http://127.0.0.1:8095 "
        "(use that URL, or `execd login --url http://localhost:8095`)"
    )
    monkeypatch.setattr(options, "url", None)
    wrong = output.problem(Unauthorized(401, "Invalid token"))
    assert wrong.message.startswith("the server refused the token (401: Invalid token). Log in")
    # `execd login` itself does not send its user to `execd login`.
    logging_in = output.problem(Unauthorized(401, "Invalid token"), logging_in=True)
    assert logging_in.message == (
        "the server refused the token (401: Invalid token); check the token"
    )


def test_what_the_sdk_raises_has_its_exit_code() -> None:
    down = output.problem(ConnectionFailed("cannot reach the execd server at http://x"))
    assert down.code == output.Exit.UNREACHABLE and "Is it running" in down.hint
    other = output.problem(UnexpectedAnswer("http://x is not an execd server"))
    assert other.code == output.Exit.UNREACHABLE and "--url" in other.hint
    assert output.problem(NotFound(404, "no such thing")) == output.Problem("no such thing (404)")
    assert output.problem(FileNotFoundError(2, "No such file", "a.yaml")).code == output.Exit.USAGE


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (
            "ref: [unclosed\n",
            "line 1, column 6: while parsing a flow sequence, expected ',' or ']', "
            "but got '<stream end>' on line 2",
        ),
        ("a: b: c\n", "line 1, column 5: mapping values are not allowed here"),
        ("a:\n\t- x\n", "line 2, column 1: while scanning for the next token, found "
                        "character '\\t' that cannot start any token"),
    ],
)  # fmt: skip
def test_yaml_errors_are_one_line(text: str, said: str) -> None:
    with pytest.raises(yaml.YAMLError) as raised:
        yaml.safe_load(text)
    assert input_files.yaml_problem(raised.value) == said
