"""Fixtures shared by every tier. `backend` runs a test on SQLite and on PostgreSQL;
under CI=true an unreachable PostgreSQL fails the run instead of skipping it."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.support import (
    IN_CI,
    Deployment,
    PostgresDatabases,
    SqliteDatabases,
    postgres_reachable,
)

BACKENDS = ["sqlite", "postgresql"]
FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item,
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        item.stash[FAILED] = True
    return report


@pytest.fixture(scope="session")
def sqlite_databases(tmp_path_factory: pytest.TempPathFactory) -> SqliteDatabases:
    return SqliteDatabases(tmp_path_factory.mktemp("sqlite"))


@pytest.fixture(scope="session")
def postgresql_databases() -> Iterator[PostgresDatabases]:
    if not postgres_reachable():
        if IN_CI:
            pytest.fail("PostgreSQL is not reachable on 127.0.0.1:5432, and CI=true requires it")
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    databases = PostgresDatabases()
    yield databases
    databases.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest) -> Iterator[str]:
    databases = request.getfixturevalue(f"{backend}_databases")
    url = databases.new()
    yield url
    databases.drop(url)


@pytest.fixture
def deployment(
    database_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Deployment]:
    """A fresh database and data directory; start servers and workers on it as needed.
    When the test fails, the end of each process's log is printed with the report."""
    deployment = Deployment(database_url=database_url, root=tmp_path)
    yield deployment
    if request.node.stash.get(FAILED, False):
        deployment.print_logs()
    deployment.close()
