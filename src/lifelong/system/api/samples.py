"""/v1/samples: training data sent directly (labelled or not), relabelled or deleted by id."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response, status

from lifelong.system.api.body import OffloadedJSONRoute
from lifelong.system.api.deps import Authorized, SystemDep
from lifelong.system.schemas import (
    MAX_ID,
    ErrorBody,
    SampleOut,
    SamplesRequest,
    SamplesResponse,
    SampleUpdate,
)

router = APIRouter(prefix="/v1", tags=["data"], route_class=OffloadedJSONRoute)
SampleId = Annotated[int, Path(ge=1, le=MAX_ID, description="an id returned by POST /v1/samples")]
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (401, 403, 404, 413, 422, 507)
}


@router.post(
    "/samples",
    response_model=SamplesResponse,
    status_code=status.HTTP_201_CREATED,
    dependencies=[Authorized],
    responses=ERRORS,
)
def add_samples(body: SamplesRequest, system: SystemDep) -> SamplesResponse:
    """Store samples shaped like the model's input; labels must be in the deployment's label space."""
    return SamplesResponse(ids=system.add_samples(body.inputs, body.labels))


@router.patch("/samples/{sample_id}", response_model=SampleOut, dependencies=[Authorized], responses=ERRORS)
def relabel_sample(sample_id: SampleId, body: SampleUpdate, system: SystemDep) -> SampleOut:
    """Correct (or, with ``null``, clear) the label of a stored sample."""
    return SampleOut(id=sample_id, label=system.relabel_sample(sample_id, body.label))


@router.delete(
    "/samples/{sample_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,  # no body, so no content-type (was application/json on an empty body)
    dependencies=[Authorized],
    responses=ERRORS,
)
def delete_sample(sample_id: SampleId, system: SystemDep) -> None:
    """Delete a stored sample (a wrong input, or data that must be forgotten)."""
    system.delete_sample(sample_id)
