"""GET /v1/drift, /v1/events, /healthz, /readyz: what the loop decided, whether this replica lives and
whether it should get traffic."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from lifelong.errors import DataError
from lifelong.system.api.deps import Reader, SystemDep
from lifelong.system.events import EventKind
from lifelong.system.schemas import MAX_ID, DriftCheckOut, ErrorBody, EventOut, Readiness

router = APIRouter(tags=["monitoring"])
Limit = Annotated[int, Query(ge=1, le=1000)]
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (401, 403, 422)}


@router.get("/v1/drift", response_model=list[EventOut], dependencies=[Reader], responses=ERRORS)
def drift(system: SystemDep, limit: Limit = 20) -> list[dict]:
    """The latest drift reports stored by the monitors, oldest first."""
    return [e._asdict() for e in system.drift(limit)]


@router.get("/v1/drift/checks", response_model=list[DriftCheckOut], dependencies=[Reader], responses=ERRORS)
def drift_checks(
    system: SystemDep, after_id: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None, limit: Limit = 200
) -> list[dict]:
    """Every block of inputs the data-drift test judged, drifting or not, oldest first (a report takes
    ``drift_persistence`` drifting blocks in a row); poll with ``after_id``."""
    return [c._asdict() for c in system.store.drift_checks(limit, after_id)]


@router.get("/v1/events", response_model=list[EventOut], dependencies=[Reader], responses=ERRORS)
def events(
    system: SystemDep,
    kind: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_-]{0,63}$")] = None,
    after_id: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
    limit: Limit = 100,
) -> list[dict]:
    """Events oldest first; poll with ``after_id`` set to the last id seen."""
    kinds = [k.value for k in EventKind]
    if kind is not None and kind not in kinds:  # as `lifelong events --kind`: a typo is not an empty log
        raise DataError(f"unknown event kind {kind!r}; valid: {', '.join(kinds)}")
    return [e._asdict() for e in system.events(kind, after_id=after_id, limit=limit)]


@router.get("/healthz")
async def healthz(system: SystemDep) -> JSONResponse:
    """Liveness: 200 while the process serves HTTP (with the versions it serves, if any).

    Async and free of I/O on purpose: it answers even when the store or the worker is down; use
    ``/readyz`` to decide whether to send traffic.
    """
    live = system.holder.live.versions() if system.holder.ready else {}
    return JSONResponse(
        {"status": "ok", "live": {k: {"version": v, "share": s} for k, (v, s) in live.items()}}
    )


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
def readyz(system: SystemDep, scope: Literal["all", "serving"] = "all") -> JSONResponse:
    """Readiness: 200 when this replica should get traffic, else 503 with every reason.

    ``scope=serving`` (for load balancers) leaves the worker's heartbeat, the last training and the
    store out: a replica answers predictions from its loaded champion while the database is down.
    """
    reasons = system.readiness(scope)
    return JSONResponse({"ready": not reasons, "reasons": reasons}, status_code=503 if reasons else 200)


# some load balancers probe with HEAD (it was a 405); kept out of the schema, where GET documents both
router.add_api_route("/healthz", healthz, methods=["HEAD"], include_in_schema=False)
router.add_api_route("/readyz", readyz, methods=["HEAD"], include_in_schema=False)
