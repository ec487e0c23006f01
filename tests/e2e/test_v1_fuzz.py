"""Property-based requests generated from the published OpenAPI schema (schemathesis,
run as its CLI against a real server, on both backends): whatever a client sends, the
answer is never a server error, its status is one the document lists for the
operation, its media type one the document names, and its body matches the schema the
document gives for that status (the dialect's error body, for every error). A request
the document says is valid is not refused: it gets a 2xx, or a 401/403/404/409 when
what it names is not there or not in a state for it (positive_data_acceptance). The
few rules no schema can state are in openapi_rules.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support import ADMIN_TOKEN, Server

ROOT = Path(__file__).resolve().parents[2]
HOOKS = "tests.e2e.openapi_rules"  # what no schema can state


def test_no_generated_request_causes_a_server_error(shared_server: Server, tmp_path: Path) -> None:
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert cli is not None, "schemathesis is a test dependency"
    # The tenant dialect's paths name the token's tenant and project: fuzz inside them
    # (other values only ever get a 401).
    me = shared_server.client().get("/api/v1/me").json()["data"]
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        "[parameters]\n"
        f'"path.tenantId" = "{me["tenant_id"]}"\n'
        f'"path.projectId" = "{me["project_id"]}"\n'
    )
    run = subprocess.run(
        [
            cli, "--config-file", str(config), "run", f"{shared_server.url}/openapi.json",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,"
            "response_schema_conformance,positive_data_acceptance",
            "--header", f"Authorization: Bearer {ADMIN_TOKEN}",
            # Live streams never end by themselves. (Tokens are fuzzed too: the startup
            # token this run uses cannot be revoked.)
            "--exclude-path-regex", "/stream$",
            "--phases", "coverage,fuzzing",
            "--max-examples", "20",
            "--seed", "20261127",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env={**os.environ, "SCHEMATHESIS_HOOKS": HOOKS, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "passed" in run.stdout
    assert "unhandled_error" not in shared_server.log()
