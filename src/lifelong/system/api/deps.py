"""Dependency aliases shared by the routers: the system and the bearer-token check, defined once."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from lifelong.system.api.errors import AuthError, ForbiddenError
from lifelong.system.service import System

_bearer = HTTPBearer(auto_error=False, description="LIFELONG_TOKEN, printed by `lifelong up`")


async def get_system(request: Request) -> System:  # async: no threadpool hop per request
    return request.app.state.system


async def require_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """Mutating endpoints need ``Authorization: Bearer <token>`` unless the server runs with --no-auth."""
    expected: str | None = request.app.state.token
    if expected is None:
        return
    if credentials is None:
        raise AuthError("missing credentials: send the header 'Authorization: Bearer <LIFELONG_TOKEN>'")
    if not secrets.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise ForbiddenError("the bearer token is wrong; use the token printed by `lifelong up`")


SystemDep = Annotated[System, Depends(get_system)]
Authorized = Depends(require_token)
