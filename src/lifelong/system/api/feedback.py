"""POST /v1/feedback: the true label of an earlier prediction (judges variants, labels training data)."""

from __future__ import annotations

from fastapi import APIRouter, status

from lifelong.system.api.deps import Authorized, SystemDep
from lifelong.system.schemas import ErrorBody, FeedbackRequest

router = APIRouter(prefix="/v1", tags=["serving"])


@router.post(
    "/feedback",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Authorized],
    responses={code: {"model": ErrorBody} for code in (401, 403, 404, 422)},
)
def feedback(body: FeedbackRequest, system: SystemDep) -> None:
    system.feedback(body.prediction_id, body.label)
