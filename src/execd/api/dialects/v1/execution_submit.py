"""/api/v1/executions/execute and /batch: submitting one execution, or up to 1,000 at
once."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema

from execd.api.deps import Caller, RuntimeDep
from execd.api.dialects.v1 import wire
from execd.api.errors import describe_validation
from execd.api.openapi import ACTION_REF, PRIORITY, answers, nullable, shown
from execd.api.responses import Json
from execd.domain.actions import MAX_SECONDS
from execd.domain.errors import ExecdError, InvalidInput, item_error
from execd.domain.executions import MAX_ID
from execd.domain.states import Priority
from execd.engine.executions import MAX_BATCH, MAX_IDEMPOTENCY_KEY, Submission, SubmitOptions

router = APIRouter(prefix="/executions", tags=["v1 executions"])

_IDEMPOTENCY_KEY = {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY}


class ExecuteBody(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    action_ref: Annotated[str, Field(max_length=300), shown(ACTION_REF)]
    parameters: dict[str, Any] = Field(
        default_factory=dict, validation_alias=AliasChoices("parameters", "config")
    )
    priority: Annotated[str | int, shown(PRIORITY)] = "normal"
    timeout: float | None = Field(default=None, gt=0, le=MAX_SECONDS, description="Seconds")
    not_before: datetime | None = Field(default=None, description="Do not start before")
    delay: float | None = Field(default=None, ge=0, le=MAX_SECONDS, description="Seconds from now")
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=MAX_IDEMPOTENCY_KEY)
    parent: int | None = Field(default=None, ge=1, le=MAX_ID)


def _options(body: ExecuteBody, idempotency_key: str | None = None) -> SubmitOptions:
    """How to run what `body` submits (the header's key when the body has none)."""
    try:
        priority = Priority.parse(body.priority)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    if body.not_before is not None and body.not_before.tzinfo is None:
        raise InvalidInput("not_before needs a time zone (e.g. 2024-01-13T10:00:00Z)")
    return SubmitOptions(
        priority=priority,
        timeout=body.timeout,
        not_before=body.not_before.timestamp() if body.not_before else None,
        delay=body.delay or 0.0,
        idempotency_key=body.idempotency_key or idempotency_key,
        parent_id=body.parent,
    )


@router.post(
    "/execute",
    status_code=201,
    summary="Submit an execution",
    responses=answers(
        wire.data(wire.EXECUTION), 201, {200: "A replay: what this idempotency key made before"}
    ),
)
async def execute(
    runtime: RuntimeDep,
    caller: Caller,
    body: ExecuteBody,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key"), shown(nullable(_IDEMPOTENCY_KEY))
    ] = None,
) -> Json:
    options = _options(body, idempotency_key)
    submitted = await runtime.executions.submit(caller, body.action_ref, body.parameters, options)
    if submitted.replayed:
        return Json(
            {"data": wire.execution(submitted.execution)},
            status_code=200,
            headers={"Idempotent-Replayed": "true"},
        )
    return Json({"data": wire.execution(submitted.execution)}, status_code=201)


# Items are read one by one (below), so that a bad one is refused on its own.
BatchItem = Annotated[Any, WithJsonSchema(ExecuteBody.model_json_schema())]


class BatchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    executions: list[BatchItem] = Field(
        min_length=1, max_length=MAX_BATCH, description="Each as the body of /execute"
    )
    atomic: bool = Field(default=True, description="All stored or none; false: the valid ones")


def _submission(item: Any) -> Submission | ExecdError:
    """One item of a batch as the service takes it, or why it cannot be read."""
    if not isinstance(item, dict):
        return InvalidInput("An execution is a JSON object, as the body of /execute")
    try:
        body = ExecuteBody.model_validate(item)
        return Submission(body.action_ref, body.parameters, _options(body))
    except ValidationError as exc:
        return InvalidInput(describe_validation(exc.errors(), "Invalid execution"))
    except InvalidInput as exc:
        return exc


@router.post(
    "/batch",
    status_code=201,
    summary="Submit up to 1,000 executions at once",
    responses={
        200: {"description": "Nothing new: every item was a replay of an idempotency key"},
        207: {"description": "Some items were stored, some refused: each item's outcome"},
    },
)
async def execute_batch(runtime: RuntimeDep, caller: Caller, body: BatchBody) -> Json:
    items = [_submission(item) for item in body.executions]
    results = await runtime.executions.submit_batch(caller, items, atomic=body.atomic)
    data = [
        item_error(index, outcome)
        if isinstance(outcome, ExecdError)
        else {
            "index": index,
            "status": 200 if outcome.replayed else 201,
            "execution": wire.execution(outcome.execution),
        }
        for index, outcome in enumerate(results)
    ]
    statuses = [item["status"] for item in data]
    summary = {
        "total": len(data),
        "created": statuses.count(201),
        "replayed": statuses.count(200),
        "refused": len(data) - statuses.count(201) - statuses.count(200),
    }
    status = 207 if summary["refused"] else 201 if summary["created"] else 200
    return Json({"data": data, "summary": summary}, status_code=status)
