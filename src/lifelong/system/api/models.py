"""GET /v1/models, POST /v1/models/{version}/promote, POST /v1/rollback: versions and the champion."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path

from lifelong.system.api.deps import Authorized, SystemDep
from lifelong.system.schemas import (
    Deployments,
    ErrorBody,
    ModelInfo,
    PromoteRequest,
    RollbackRequest,
    RollbackResponse,
)

router = APIRouter(prefix="/v1", tags=["models"])
ERRORS = {code: {"model": ErrorBody} for code in (401, 403, 404, 409, 422)}


@router.get("/models", response_model=list[ModelInfo])
def list_models(system: SystemDep) -> list[dict]:
    """Every registered version, oldest first, with the aliases pointing at it."""
    return system.models()


@router.post(
    "/models/{version}/promote", response_model=Deployments, dependencies=[Authorized], responses=ERRORS
)
def promote(
    system: SystemDep,
    version: Annotated[int, Path(ge=1)],
    body: Annotated[PromoteRequest | None, Body()] = None,
) -> Deployments:
    """Point an alias (default: champion) at ``version``; this replica swaps at once, others within ~1 s."""
    system.promote(version, (body or PromoteRequest()).alias)
    return Deployments(aliases=system.deployments())


@router.post("/rollback", response_model=RollbackResponse, dependencies=[Authorized], responses=ERRORS)
def rollback(system: SystemDep, body: Annotated[RollbackRequest | None, Body()] = None) -> RollbackResponse:
    """Move the alias (default: champion) back to its previous holder."""
    alias = (body or RollbackRequest()).alias
    return RollbackResponse(alias=alias, version=system.rollback(alias))
