"""POST /v1/feedback: true labels of earlier predictions (judge variants, label training data)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from lifelong.system.api.body import OffloadedJSONRoute
from lifelong.system.api.deps import Authorized, SystemDep
from lifelong.system.schemas import ErrorBody, FeedbackBatch, FeedbackItem, FeedbackRequest

router = APIRouter(prefix="/v1", tags=["serving"], route_class=OffloadedJSONRoute)


@router.post(
    "/feedback",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,  # no body, so no content-type (was application/json on an empty body)
    dependencies=[Authorized],
    responses={code: {"model": ErrorBody} for code in (401, 403, 404, 413, 422, 507)},
)
def feedback(body: FeedbackRequest, system: SystemDep) -> None:
    """One ``{prediction_id, label}`` or a batch ``{"feedback": [...]}``: all stored or none.

    A label outside the deployment's classes is a 422 naming the valid labels (and the item).
    """
    items: list[FeedbackItem] = body.feedback if isinstance(body, FeedbackBatch) else [body]
    system.feedback([(i.prediction_id, i.label) for i in items])
