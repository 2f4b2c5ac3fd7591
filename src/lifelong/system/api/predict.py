"""POST /v1/predict: answered by the champion, or a canary for its share; mirrored to a shadow."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from lifelong.system.api.deps import Authorized, SystemDep
from lifelong.system.schemas import ErrorBody, PredictRequest, PredictResponse

router = APIRouter(prefix="/v1", tags=["serving"])
ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 403, 404, 413, 422)}


@router.post("/predict", response_model=PredictResponse, dependencies=[Authorized], responses=ERRORS)
async def predict(body: PredictRequest, system: SystemDep) -> JSONResponse:
    """Predict a batch. Each prediction has an id to send back with its true label (POST /v1/feedback).

    The batch joins concurrent requests in one micro-batch; the event loop never waits on the model.
    """
    rows = await asyncio.wrap_future(system.submit(body.inputs, body.ids))
    return JSONResponse({"predictions": rows})  # built by the service already; skip re-validation
