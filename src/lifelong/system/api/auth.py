"""The bearer-token check, done from the headers before a single body byte is read.

A pure ASGI middleware, so an unauthenticated upload costs the server nothing but discarding its
bytes: the 401/403 is sent at once and the body is never buffered nor parsed (before this, a 7.8 MB
unauthenticated body was parsed on the event loop and froze every other request for seconds).
``/healthz``, ``/readyz``, ``/metrics`` and the API docs are open; every other route needs the token,
except GET/HEAD requests when ``Settings.public_reads`` is set. The route dependency
:data:`~lifelong.system.api.deps.Authorized` runs the same check, for the OpenAPI description and
for apps mounted without this middleware.
"""

from __future__ import annotations

import secrets

from starlette.types import ASGIApp, Receive, Scope, Send

from lifelong.system.api.errors import AuthError, ForbiddenError, raw_error

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect",
                        "/redoc"})  # fmt: skip
READ_METHODS = frozenset({"GET", "HEAD"})


def check_bearer(authorization: str | None, expected: str | None) -> None:
    """Raise AuthError (no or malformed credentials) or ForbiddenError (wrong token); never echo either."""
    if expected is None:
        return
    scheme, _, credentials = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        got = (
            "missing credentials"
            if not scheme
            else "an empty bearer token"
            if scheme.lower() == "bearer"
            else f"credentials of scheme {scheme[:20]!r}, not a bearer token"
        )
        raise AuthError(f"{got}: send the header 'Authorization: Bearer <LIFELONG_TOKEN>'")
    if not secrets.compare_digest(credentials.strip().encode(), expected.encode()):
        raise ForbiddenError("the bearer token is wrong; use LIFELONG_TOKEN or the one in <data_dir>/token")


class TokenGuard:
    """Pure ASGI middleware: answer 401/403 from the headers alone, before the app reads the body."""

    def __init__(self, app: ASGIApp, token: str | None, public_reads: bool = False,
                 open_paths: frozenset[str] = OPEN_PATHS) -> None:  # fmt: skip
        self.app, self.token, self.public_reads, self.open_paths = app, token, public_reads, open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.token is None or not self._needs_token(scope):
            await self.app(scope, receive, send)
            return
        authorization = None
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        try:
            check_bearer(authorization, self.token)
        except AuthError as err:
            status = 403 if isinstance(err, ForbiddenError) else 401
            # The body is left unread: the server discards it and keeps the connection usable.
            await raw_error(send, status, type(err).__name__, str(err),
                            [(b"www-authenticate", b"Bearer")] if status == 401 else [])  # fmt: skip
            return
        await self.app(scope, receive, send)

    def _needs_token(self, scope: Scope) -> bool:
        path, method = scope.get("path", ""), scope.get("method", "GET")
        return path not in self.open_paths and not (self.public_reads and method in READ_METHODS)
