"""POST /v1/train: ask the worker to train now (the manual stage, or "train now" in any stage)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, status

from lifelong.system.api.deps import Authorized, SystemDep
from lifelong.system.schemas import ErrorBody, TrainAccepted, TrainRequest

router = APIRouter(prefix="/v1", tags=["models"])


@router.post(
    "/train",
    response_model=TrainAccepted,
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[Authorized],
    responses={code: {"model": ErrorBody} for code in (401, 403, 422, 507)},
)
def train(system: SystemDep, body: Annotated[TrainRequest | None, Body()] = None) -> TrainAccepted:
    """Record a ``train_request`` event; the worker trains at its next poll (see GET /v1/events).
    With no worker holding the lease the request is still recorded, and ``worker`` and ``message``
    say that it waits until a worker runs on the store (as ``lifelong train`` does)."""
    event_id = system.request_training((body or TrainRequest()).reason)
    if system.worker_running():
        message = "training requested; the worker starts it at its next poll (see GET /v1/events)"
        return TrainAccepted(event_id=event_id, worker=True, message=message)
    message = (
        "training requested, but no worker holds the lease (none started, or it stopped): the request "
        "waits until a worker runs on the store (`lifelong worker` or `lifelong up`; see GET /readyz)"
    )
    return TrainAccepted(event_id=event_id, worker=False, message=message)
