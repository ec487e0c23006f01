"""/api/v1/webhooks: a webhook trigger fired from outside, with a token or a signature."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Header, Query, Request

from execd.api.deps import RuntimeDep, authenticated
from execd.api.dialects.v1 import wire
from execd.api.dialects.v1.params import Ref
from execd.api.responses import Json
from execd.domain import jsonsafe
from execd.domain.errors import InvalidInput
from execd.engine.rules import SIGNATURE_HEADER

router = APIRouter(tags=["v1 rules"])


@router.post("/webhooks/{trigger_ref}", status_code=202, summary="Fire a webhook trigger")
async def webhook(
    runtime: RuntimeDep,
    request: Request,
    trigger_ref: Ref,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    signature: Annotated[str | None, Header(alias=SIGNATURE_HEADER)] = None,
    project: Annotated[str | None, Query(max_length=36, description="Signed calls")] = None,
) -> Json:
    body = await request.body()  # at most EXECD_MAX_WEBHOOK_BYTES (api/limits.py)
    try:
        payload = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError:
        raise InvalidInput("The webhook payload must be JSON") from None
    if problem := jsonsafe.problem(payload, "the payload"):
        raise InvalidInput(problem[0].upper() + problem[1:])
    caller = await authenticated(request, authorization) if authorization else None
    trigger, fired = await runtime.rules.webhook(
        caller, trigger_ref, body, signature, payload, project
    )
    data = {"trigger": trigger.ref, "enforcements": [wire.enforcement(e) for e in fired]}
    return Json({"data": data}, status_code=202)
