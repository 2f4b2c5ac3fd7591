"""POST /v1/predict: answered by the champion, or a canary for its share; mirrored to a shadow."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from lifelong.system.api.body import OffloadedJSONRoute
from lifelong.system.api.deps import Authorized, SystemDep
from lifelong.system.contract import Contract
from lifelong.system.schemas import ErrorBody, PredictRequest, PredictResponse

router = APIRouter(prefix="/v1", tags=["serving"], route_class=OffloadedJSONRoute)
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 413, 422)
}


@router.post("/predict", response_model=PredictResponse, dependencies=[Authorized], responses=ERRORS)
async def predict(body: PredictRequest, system: SystemDep) -> JSONResponse:
    """Predict a batch. Each prediction has an id to send back with its true label (POST /v1/feedback).

    ``scores`` is the softmax over the model's outputs (index = label); with ``"probabilities": true``
    the same numbers also come keyed by class name (or label). The batch joins concurrent requests
    in one micro-batch; the event loop never waits on the model.
    """
    rows = await asyncio.wrap_future(system.submit(body.inputs, body.ids))
    if body.probabilities:
        contract = system.contract()
        for row in rows:
            row["probabilities"] = by_class(row["scores"], contract)
    return JSONResponse({"predictions": rows})  # built by the service already; skip re-validation


def by_class(scores: list[float], contract: Contract | None) -> dict[str, Any]:
    """``{"cat": 0.9, "dog": 0.1}`` with class names, ``{"0": 0.9, "1": 0.1}`` without."""
    if contract is None:
        return {str(i): p for i, p in enumerate(scores)}
    names = contract.class_names or tuple(str(c) for c in contract.classes)
    return {name: scores[c] for c, name in zip(contract.classes, names) if c < len(scores)}
