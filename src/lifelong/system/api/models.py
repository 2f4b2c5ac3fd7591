"""GET /v1/models, POST /v1/models/{version}/promote, POST /v1/rollback: versions and the champion."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path

from lifelong.errors import CheckpointError, LifelongError, NotFoundError, RegistryError
from lifelong.system.api.deps import Authorized, Reader, SystemDep
from lifelong.system.schemas import (
    MAX_VERSION,
    Deployments,
    ErrorBody,
    ModelInfo,
    PromoteRequest,
    RollbackRequest,
    RollbackResponse,
)

router = APIRouter(prefix="/v1", tags=["models"])
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (401, 403, 404, 409, 422)}
VersionPath = Annotated[int, Path(ge=1, le=MAX_VERSION)]


@contextmanager
def loading(version: int) -> Iterator[None]:
    """A version whose artifact cannot be rebuilt (crafted or damaged) is a 409 naming it, never a 500.

    Loading reads a manifest written by whoever published the version: unknown model arguments, a
    manifest nested too deep or fields of the wrong type surface here as ordinary Python errors.
    """
    try:
        yield
    except (NotFoundError, RegistryError, CheckpointError):
        raise
    except LifelongError as err:
        raise CheckpointError(f"version {version} cannot be served: {err}") from err
    except (
        TypeError,
        ValueError,
        KeyError,
        IndexError,
        AttributeError,
        RecursionError,
        OSError,
        RuntimeError,
    ) as err:
        raise CheckpointError(
            f"version {version} cannot be loaded: its artifact is malformed ({type(err).__name__}); "
            "promote another version or publish it again"
        ) from err


@router.get("/models", response_model=list[ModelInfo], dependencies=[Reader], responses=ERRORS)
def list_models(system: SystemDep) -> list[dict]:
    """Every registered version, oldest first, with the aliases pointing at it."""
    return system.models()


@router.post(
    "/models/{version}/promote", response_model=Deployments, dependencies=[Authorized], responses=ERRORS
)
def promote(
    system: SystemDep,
    version: VersionPath,
    body: Annotated[PromoteRequest | None, Body()] = None,
) -> Deployments:
    """Point an alias (default: champion) at ``version``; this replica swaps at once, others within ~1 s."""
    body = body or PromoteRequest()
    with loading(version):
        system.promote(version, body.alias, force=body.force)
    return Deployments.model_validate({"aliases": system.deployments()})


@router.post("/rollback", response_model=RollbackResponse, dependencies=[Authorized], responses=ERRORS)
def rollback(system: SystemDep, body: Annotated[RollbackRequest | None, Body()] = None) -> RollbackResponse:
    """Move the alias (default: champion) back to its previous holder."""
    alias = (body or RollbackRequest()).alias
    version = system.rollback(alias)
    return RollbackResponse.model_validate(
        {"alias": alias, "version": version, "aliases": system.deployments()}
    )
