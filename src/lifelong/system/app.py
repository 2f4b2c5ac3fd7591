"""``create_app(settings)``: the FastAPI shell around :class:`~lifelong.system.service.System`.

Models are loaded in ``lifespan`` (never at import), the registry is polled every
``poll_seconds`` so versions promoted by the worker process are hot-swapped, and each resource has
its own router module under ``lifelong.system.api``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import torch
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

from lifelong import __version__
from lifelong.system.api import (
    auth,
    body,
    dashboard,
    deployments,
    errors,
    feedback,
    limits,
    metrics,
    models,
    monitoring,
    predict,
    samples,
    training,
)
from lifelong.system.service import System
from lifelong.system.settings import Settings


def create_app(settings: Settings | None = None, *, system: System | None = None) -> FastAPI:
    """Build the app. Pass ``system`` to serve one you own (it is then neither polled nor closed here)."""
    settings = system.settings if system is not None else (settings or Settings())
    token = settings.require_token()  # refuse to start with auth on and no token

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = system is None
        if owned and settings.torch_threads is not None:  # the process is the server's: tune it
            torch.set_num_threads(settings.torch_threads)
        app.state.system = System(settings) if owned else system
        app.state.json_parser = body.JsonParser()  # large bodies are parsed off the event loop
        app.state.json_parser.start()
        if owned:
            app.state.system.start_polling()
        try:
            yield
        finally:
            app.state.json_parser.close()
            if owned:
                app.state.system.close()

    app = FastAPI(
        title="lifelong",
        version=__version__,
        summary="Serve continually learning models: champion, canary, shadow, feedback, drift.",
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc are served offline by api/dashboard.py
        redoc_url=None,
        # /v1/predict/ is a JSON 404 like any unknown path, not a 307 to a Location built from the
        # client's Host header (a fuzzing trial)
        redirect_slashes=False,
    )
    app.state.token, app.state.public_reads = token, settings.public_reads
    app.state.http_metrics = metrics.HttpMetrics()
    errors.install(app)
    routers = [
        m.router for m in (predict, feedback, samples, training, models, deployments, monitoring, metrics)
    ]
    for router in routers:
        app.include_router(router)
    # Last added runs first: requests are counted, the token is checked from the headers alone, then
    # the body is size-limited while it streams in (413 the moment it passes the limit), then a valid
    # POST /v1/predict is answered without FastAPI's routing (api/predict.py says why).
    app.add_middleware(predict.PredictPath, route=_route(predict.router, "/v1/predict", "POST"))
    app.add_middleware(limits.BodyLimit, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(auth.TokenGuard, token=token, public_reads=settings.public_reads,
                       open_paths=auth.OPEN_PATHS | dashboard.OPEN_PATHS)  # fmt: skip
    # the API's routes, the dashboard's (added below) and FastAPI's own /openapi.json
    routes = [r for router in (*routers, dashboard.router, dashboard.pages) for r in router.routes]
    routes += [r for r in app.router.routes if getattr(r, "path", None) == app.openapi_url]
    app.add_middleware(metrics.Observe, metrics=app.state.http_metrics, routes=routes)
    dashboard.install(app)  # GET /, /v1/dashboard, /docs, /redoc and /static
    return app


def _route(router: APIRouter, path: str, method: str) -> APIRoute:
    return next(
        r for r in router.routes if isinstance(r, APIRoute) and r.path == path and method in (r.methods or ())
    )
