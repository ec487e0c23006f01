"""The fault suite's figures go to the terminal even when pytest captures output (as
in CI), so every run's log shows them."""

from __future__ import annotations

from collections.abc import Callable

import pytest


@pytest.fixture
def report(capsys: pytest.CaptureFixture[str]) -> Callable[[str], None]:
    def say(line: str) -> None:
        with capsys.disabled():
            print(f"\n[fault] {line}")

    return say
