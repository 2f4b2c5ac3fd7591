"""GET /v1/drift, GET /v1/events, GET /healthz: what the loop decided and whether this replica serves."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from lifelong.system.api.deps import SystemDep
from lifelong.system.schemas import EventOut

router = APIRouter(tags=["monitoring"])
Limit = Annotated[int, Query(ge=1, le=1000)]


@router.get("/v1/drift", response_model=list[EventOut])
def drift(system: SystemDep, limit: Limit = 20) -> list[dict]:
    """The latest drift reports stored by the monitors, oldest first."""
    return [e._asdict() for e in system.drift(limit)]


@router.get("/v1/events", response_model=list[EventOut])
def events(
    system: SystemDep,
    kind: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_-]{0,63}$")] = None,
    after_id: Annotated[int | None, Query(ge=0)] = None,
    limit: Limit = 100,
) -> list[dict]:
    """Events oldest first; poll with ``after_id`` set to the last id seen."""
    return [e._asdict() for e in system.events(kind, after_id=after_id, limit=limit)]


@router.get("/healthz")
def healthz(system: SystemDep) -> JSONResponse:
    """200 with the live versions once a champion is loaded, 503 before."""
    if not system.holder.ready:
        return JSONResponse({"status": "no champion"}, status_code=503)
    live = system.live_versions()
    return JSONResponse(
        {"status": "ok", "live": {k: {"version": v, "share": s} for k, (v, s) in live.items()}}
    )
