"""POST /v1/predict: answered by the champion, or a canary for its share; mirrored to a shadow.

The route below is what OpenAPI describes and what answers every request that is not plainly
valid. Valid JSON requests take :class:`PredictPath` instead, a pure ASGI middleware ahead of
FastAPI's routing and dependency solving (about a tenth of the server's CPU per request, profiled
with py-spy): same token check (``TokenGuard`` runs before it), same body limit, same validation
model and the same answer. Anything else (invalid JSON or fields, another content type, a body
large enough to be parsed off the loop) is replayed to the route, so error bodies stay the route's.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lifelong.errors import LifelongError
from lifelong.system.api.body import OFFLOAD_BYTES, OffloadedJSONRoute
from lifelong.system.api.deps import Authorized, SystemDep
from lifelong.system.api.errors import error_response, status_of
from lifelong.system.contract import Contract
from lifelong.system.schemas import ErrorBody, PredictRequest, PredictResponse

router = APIRouter(prefix="/v1", tags=["serving"], route_class=OffloadedJSONRoute)
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 413, 422)
}


@router.post("/predict", response_model=PredictResponse, dependencies=[Authorized], responses=ERRORS)
async def predict(body: PredictRequest, system: SystemDep) -> JSONResponse:
    """Predict a batch. Each prediction has an id to send back with its true label (POST /v1/feedback).

    ``scores`` is the softmax over the model's outputs (index = label); ``class_name`` names the label
    where the classes have names; with ``"probabilities": true`` the same numbers also come keyed by
    class name (or label). The batch joins concurrent requests in one micro-batch; the event loop
    never waits on the model.
    """
    return await answer(system, body)


async def answer(system: Any, body: PredictRequest) -> JSONResponse:
    rows = await system.submit_async(body.inputs, body.ids)
    if body.probabilities:
        contract = system.contract()
        for row in rows:
            row["probabilities"] = by_class(row["scores"], contract)
    return JSONResponse({"predictions": rows})  # built by the service already; skip re-validation


class PredictPath:
    """Pure ASGI middleware: answer a valid ``POST /v1/predict`` without FastAPI's router.

    Install it innermost (after ``TokenGuard`` and ``BodyLimit`` have run), with ``route`` the
    FastAPI route it stands in for: ``scope["route"]`` is set to it so metrics label it the same.
    """

    def __init__(self, app: ASGIApp, route: Any = None, path: str = "/v1/predict") -> None:
        self.app, self.route, self.path = app, route, path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        if not _is_json(scope):  # FastAPI's own content-type handling decides
            await self.app(scope, receive, send)
            return
        try:
            body = await _read(receive)
        except ClientGone:  # nobody to answer
            return
        except HTTPException as err:  # BodyLimit: the body passed the limit while streaming in
            await error_response(err.status_code, "BodyTooLargeError", str(err.detail),
                                 {"connection": "close"})(scope, receive, send)  # fmt: skip
            return
        request = _parse(body)
        if request is None:  # invalid, or big enough for the off-loop parser: the route answers
            await self.app(scope, _replay(body, receive), send)
            return
        if self.route is not None:
            scope["route"] = self.route
        try:
            response = await answer(scope["app"].state.system, request)
        except LifelongError as err:
            response = error_response(status_of(err), type(err).__name__, str(err))
        await response(scope, receive, send)


class ClientGone(Exception):
    """The client disconnected before its body arrived."""


def _is_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return value.split(b";", 1)[0].strip().lower() == b"application/json"
    return False


async def _read(receive: Receive) -> bytes:
    chunks, more = [], True
    while more:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            raise ClientGone
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


def _parse(body: bytes) -> PredictRequest | None:
    """The request if it is valid JSON and a valid body, parsed as the route would; else None."""
    if len(body) > OFFLOAD_BYTES:
        return None
    try:
        return PredictRequest.model_validate(json.loads(body))
    except (ValueError, ValidationError, RecursionError):  # JSONDecodeError, UnicodeDecodeError: ValueErrors
        return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the already-read body to the route, then defers to the server's."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def by_class(scores: list[float], contract: Contract | None) -> dict[str, Any]:
    """``{"cat": 0.9, "dog": 0.1}`` with class names, ``{"0": 0.9, "1": 0.1}`` without."""
    if contract is None:
        return {str(i): p for i, p in enumerate(scores)}
    names = contract.class_names or tuple(str(c) for c in contract.classes)
    return {name: scores[c] for c, name in zip(contract.classes, names) if c < len(scores)}
