"""/v1/deployments: start, inspect, judge and end canary and shadow deployments."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter

from lifelong.system.api.deps import Authorized, Reader, SystemDep
from lifelong.system.api.models import loading
from lifelong.system.schemas import CanaryDecision, DeploymentRequest, Deployments, ErrorBody

router = APIRouter(prefix="/v1/deployments", tags=["models"])
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (401, 403, 404, 409, 422)}


@router.get("", response_model=Deployments, dependencies=[Reader], responses=ERRORS)
def deployments(system: SystemDep) -> Deployments:
    """Aliases in the registry (this replica may lag them by up to ``poll_seconds``)."""
    return Deployments.model_validate({"aliases": system.deployments()})


@router.post("", response_model=Deployments, dependencies=[Authorized], responses=ERRORS, status_code=201)
def deploy(body: DeploymentRequest, system: SystemDep) -> Deployments:
    """Route ``share`` of traffic to a canary, or mirror ``share`` of it to a shadow."""
    system.check_deployment(body.mode, body.share)  # a 422 of its own, not "cannot be served"
    with loading(body.version):
        system.deploy(body.version, body.mode, body.share, force=body.force)
    return Deployments.model_validate({"aliases": system.deployments()})


@router.delete("/{mode}", response_model=Deployments, dependencies=[Authorized], responses=ERRORS)
def undeploy(mode: Literal["canary", "shadow"], system: SystemDep) -> Deployments:
    system.undeploy(mode)
    return Deployments.model_validate({"aliases": system.deployments()})


@router.post("/canary/evaluate", response_model=CanaryDecision, dependencies=[Authorized], responses=ERRORS)
def evaluate_canary(system: SystemDep) -> CanaryDecision:
    """Apply the canary rule now (the server also applies it every ``poll_seconds``)."""
    return CanaryDecision(**system.evaluate_canary())
