"""POST /v1/samples: training data sent directly (labelled or not), shaped like the model's input."""

from __future__ import annotations

from fastapi import APIRouter, status

from lifelong.system.api.deps import Authorized, SystemDep
from lifelong.system.schemas import ErrorBody, SamplesRequest, SamplesResponse

router = APIRouter(prefix="/v1", tags=["data"])


@router.post(
    "/samples",
    response_model=SamplesResponse,
    status_code=status.HTTP_201_CREATED,
    dependencies=[Authorized],
    responses={code: {"model": ErrorBody} for code in (400, 401, 403, 413, 422)},
)
def add_samples(body: SamplesRequest, system: SystemDep) -> SamplesResponse:
    return SamplesResponse(ids=system.add_samples(body.inputs, body.labels))
