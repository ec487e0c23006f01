"""What the CLI prints about an execution as it runs."""

from __future__ import annotations

import pytest
from rich.progress import ProgressBar
from rich.text import Text

from execd.cli import output


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
