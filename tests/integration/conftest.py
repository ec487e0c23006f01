from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import httpx
import pytest

from execd.store.database import Database
from tests.conftest import BACKENDS
from tests.in_process import InProcessServer
from tests.support import new_project

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


@pytest.fixture(scope="module", params=BACKENDS)
def app_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessServer]:
    """One app in process per module and backend, without workers; tests isolate
    themselves by project (as `shared_server` does with a real server)."""
    databases = request.getfixturevalue(f"{request.param}_databases")
    url = databases.new()
    server = InProcessServer(url, tmp_path_factory.mktemp(request.param))
    yield server
    server.close()
    databases.drop(url)


@pytest.fixture
def admin(app_server: InProcessServer) -> httpx.Client:
    return app_server.client()


@pytest.fixture
def client(app_server: InProcessServer, admin: httpx.Client) -> httpx.Client:
    """An operator token in a project of its own."""
    _, _, token = new_project(admin)
    return app_server.client(token)
