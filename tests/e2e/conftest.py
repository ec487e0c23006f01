from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import BACKENDS
from tests.support import Deployment, Server, new_project


@pytest.fixture(scope="module", params=BACKENDS)
def shared_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One real server per module and backend; tests isolate themselves by project. A
    module's `SERVER_ENV` (a dict) adds to the server's environment."""
    databases = request.getfixturevalue(f"{request.param}_databases")
    url = databases.new()
    root = tmp_path_factory.mktemp(request.param)
    deployment = Deployment(database_url=url, root=root)
    # Where a test can put Python modules for `python` actions (the sandbox mounts it).
    (root / "actions").mkdir()
    env = getattr(request.module, "SERVER_ENV", {})
    failed_before = request.session.testsfailed
    yield deployment.server(workers=1, EXECD_ACTIONS_PATH=str(root / "actions"), **env)
    if request.session.testsfailed > failed_before:  # a test of this module failed
        deployment.print_logs()
    deployment.close()
    databases.drop(url)


@pytest.fixture
def admin(shared_server: Server) -> httpx.Client:
    return shared_server.client()


@pytest.fixture
def client(shared_server: Server, admin: httpx.Client) -> httpx.Client:
    """An operator token in a project of its own."""
    _, _, token = new_project(admin)
    return shared_server.client(token)
