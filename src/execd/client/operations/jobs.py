"""Jobs, through the tenant dialect (its paths take the token's tenant and project)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from execd.client.models import Job
from execd.client.operations.base import OperationsBase, segment
from execd.client.protocol import Operation, Request, operation, params


class JobOperations(OperationsBase):
    @operation
    def submit_job(self, job: Mapping[str, Any]) -> Operation[Job]:
        """Submit a job (`jobName`, `jobType`, `resource`, ...; see docs/api-tenant.md)."""
        scope = yield from self._scope()
        reply = yield Request("POST", f"{scope}/execution/job", json=dict(job))
        return Job.model_validate(reply.json())

    @operation
    def get_job(self, job_id: str) -> Operation[Job]:
        scope = yield from self._scope()
        return Job.model_validate(
            (yield Request("GET", f"{scope}/execution/job/{segment(job_id)}")).json()
        )

    @operation
    def list_jobs(
        self, *, status: str | None = None, page: int = 1, page_size: int = 20
    ) -> Operation[dict[str, Any]]:
        """One page of jobs: `jobs`, `summary` and `hasNextPage` as the dialect has them."""
        scope = yield from self._scope()
        query = params(status=status, page=page, pageSize=page_size)
        listed: dict[str, Any] = (
            yield Request("GET", f"{scope}/execution/jobs", params=query)
        ).json()
        return listed

    @operation
    def cancel_job(self, job_id: str, *, force: bool = False) -> Operation[dict[str, Any]]:
        scope = yield from self._scope()
        body = {"forceTermination": force}
        answer: dict[str, Any] = (
            yield Request("DELETE", f"{scope}/execution/job/{segment(job_id)}", json=body)
        ).json()
        return answer
