"""Dependency aliases shared by the routers: the system and the bearer-token checks, defined once.

:class:`~lifelong.system.api.auth.TokenGuard` already refused a request without the token before
its body was read; these dependencies repeat the header check (cheap) so that the OpenAPI
description shows which routes need the token, and so the routes stay safe if mounted without it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from lifelong.system.api.auth import check_bearer
from lifelong.system.service import System

_bearer = HTTPBearer(auto_error=False, description="LIFELONG_TOKEN, or the token in <data_dir>/token")


async def get_system(request: Request) -> System:  # async: no threadpool hop per request
    return request.app.state.system


async def require_token(request: Request, _: Annotated[object, Depends(_bearer)]) -> None:
    """Mutating endpoints need ``Authorization: Bearer <token>`` unless the server runs with --no-auth."""
    check_bearer(request.headers.get("authorization"), request.app.state.token)


async def require_read_token(request: Request, _: Annotated[object, Depends(_bearer)]) -> None:
    """Read endpoints need the token too, unless the server runs with ``--public-reads``."""
    if not request.app.state.public_reads:
        check_bearer(request.headers.get("authorization"), request.app.state.token)


SystemDep = Annotated[System, Depends(get_system)]
Authorized = Depends(require_token)
Reader = Depends(require_read_token)
