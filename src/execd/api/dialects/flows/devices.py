"""/api/devices: the devices workers serve, online or not, busy or free."""

from __future__ import annotations

from fastapi import APIRouter

from execd.api.deps import Caller, RuntimeDep
from execd.api.dialects.flows import wire
from execd.api.responses import Json

router = APIRouter(prefix="/devices", tags=["devices"])


@router.get("", summary="Devices: who serves them, whether they are busy")
async def list_devices(runtime: RuntimeDep, caller: Caller) -> Json:
    devices = await runtime.flows.devices(caller)
    return Json(
        wire.envelope(
            "Devices retrieved successfully",
            devices=[
                {
                    "id": d.id,
                    "status": "BUSY" if d.busy else ("ONLINE" if d.online else "OFFLINE"),
                    "online": d.online,
                    "busy": d.busy,
                    "workers": [{"id": w.id, "name": w.name, "state": w.state} for w in d.workers],
                    "currentExecutionId": d.holder.uuid if d.holder else None,
                    "currentFlowId": d.holder.flow_id if d.holder else None,
                    "waitingExecutions": d.waiting,
                }
                for d in devices
            ],
            count=len(devices),
        )
    )
