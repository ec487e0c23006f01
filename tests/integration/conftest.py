from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from execd.store.database import Database

T = TypeVar("T")


@pytest.fixture
def with_db(database_url: str) -> Callable[[Callable[[Database], Awaitable[T]]], T]:
    """Run `scenario(db)` in a fresh event loop against this test's database."""

    def run(scenario: Callable[[Database], Awaitable[T]]) -> T:
        async def main() -> T:
            db = Database(database_url)
            try:
                return await scenario(db)
            finally:
                await db.dispose()

        return asyncio.run(main())

    return run
