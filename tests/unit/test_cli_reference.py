"""docs/cli.md's reference is generated from the commands: it must not drift."""

from __future__ import annotations

from pathlib import Path

from execd.cli.reference import BEGIN, END, render, rewrite

DOC = Path(__file__).parents[2] / "docs" / "cli.md"


def test_the_cli_reference_is_up_to_date() -> None:
    document = DOC.read_text()
    assert rewrite(document) == document, "run `make docs` to regenerate docs/cli.md"


def test_every_client_command_is_in_the_reference() -> None:
    reference = render()
    assert reference.startswith(BEGIN) and reference.rstrip().endswith(END)
    for command in (
        "run", "executions list", "executions get", "executions watch", "executions logs",
        "executions cancel", "executions retry", "executions download", "executions export",
        "actions list", "actions get", "actions apply", "flows run", "rules list", "stats",
        "queue", "workers", "system status", "token create", "login",
    ):  # fmt: skip
        assert f"### `execd {command}`" in reference, command
