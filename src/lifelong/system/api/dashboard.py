"""GET / (the dashboard), GET /v1/dashboard (its data), and the API docs at /docs and /redoc, offline.

Everything the browser loads comes from files installed with the package (``lifelong/system/static``:
Swagger UI, ReDoc and uPlot copied from npm, plus the dashboard's own script), so the pages work on
a machine without internet. The dashboard is rendered on the server (aliases, lineage, events) and
its two charts are drawn by uPlot from the same data, embedded in the page and refreshed from
``/v1/dashboard``. Promote and roll back buttons call the ordinary endpoints with the bearer token
the user types (kept in ``sessionStorage``, never sent anywhere else).
"""

from __future__ import annotations

import functools
import html
import json
import mimetypes
import time
from collections import Counter
from pathlib import Path
from string import Template
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

from lifelong.errors import NotFoundError
from lifelong.system.api.deps import Reader, SystemDep
from lifelong.system.events import describe
from lifelong.system.service import System

STATIC = Path(__file__).resolve().parent.parent / "static"
PAGE = Template((STATIC / "dashboard.html").read_text())
MAIN = Template((STATIC / "dashboard-main.html").read_text())
LOCKED = ('<p class="empty" id="locked">This server protects reads: type the bearer token above to load '
          "the dashboard.</p>")  # fmt: skip
# A fixed list: a request can only ever name one of these files, so no path can escape the directory.
ASSETS = {p.relative_to(STATIC).as_posix(): p for p in sorted(STATIC.rglob("*")) if p.is_file()}
# Open without a token, like /docs: the page shell and its files hold no data. The data come from
# /v1/dashboard and /v1/dashboard/main, which need the token whenever other reads do.
OPEN_PATHS = frozenset({"/", *(f"/static/{name}" for name in ASSETS)})
GATE_FIGURES = ("new_accuracy", "old_accuracy", "negative_flip_rate", "latency_ms", "size_mb")
router = APIRouter(tags=["monitoring"])
pages = APIRouter(include_in_schema=False)


def install(app: FastAPI) -> None:
    """Add the routes; the app must be built with ``docs_url=None, redoc_url=None``, and its token
    middleware must leave :data:`OPEN_PATHS` open."""
    app.include_router(router)
    app.include_router(pages)


def summary(system: System, window: int = 50, limit: int = 5000, n_events: int = 30) -> dict[str, Any]:
    """What the dashboard shows, as JSON: aliases, versions with lineage, live accuracy, drift, events,
    and why the replica is not ready (``/readyz``'s reasons: a dead worker, a failing training).

    Live accuracy: the last ``limit`` labelled predictions, in order, cut per variant into windows of
    ``window``; each point is one window's accuracy at the time of its last prediction.
    """
    aliases = system.deployments()
    holders: dict[int, list[str]] = {}
    for name, a in aliases.items():
        holders.setdefault(a["version"], []).append(name)
    versions = [
        {"version": v.version, "parent": v.parent, "created": v.created, "strategy": v.strategy,
         "window": list(v.window) if v.window else None, "aliases": sorted(holders.get(v.version, [])),
         "collected": v.collected,
         "figures": {k: v.metrics[k] for k in GATE_FIGURES if isinstance(v.metrics.get(k), (int, float))}}
        for v in system.registry.versions(collected=True)
    ]  # fmt: skip
    parents = {v["version"]: v["parent"] for v in versions}
    chain: list[int] = []
    v = aliases.get("champion", {}).get("version")
    while v is not None and v not in chain:  # the champion's ancestry, newest first
        chain.append(v)
        v = parents.get(v)
    accuracy: dict[str, list[dict[str, Any]]] = {}
    by_variant: dict[str, list[Any]] = {}
    for r in system.store.labelled_predictions(limit=limit):
        by_variant.setdefault(r.variant, []).append(r)
    for variant, rows in sorted(by_variant.items()):
        for i in range(0, len(rows) - window + 1, window):
            w = rows[i : i + window]
            accuracy.setdefault(variant, []).append({
                "ts": w[-1].ts, "accuracy": sum(r.predicted == r.label for r in w) / len(w), "n": len(w),
                "version": Counter(r.version for r in w).most_common(1)[0][0],
            })  # fmt: skip
    drift = [
        {"id": e.id, "ts": e.ts, "kind": e.kind, "monitor": e.payload.get("monitor") or e.payload.get("detector") or e.kind,  # the floor's: "floor"
         "score": e.payload.get("score"), "threshold": e.payload.get("threshold"),
         "drift": bool(e.payload.get("drift", True))}
        for e in system.drift(200) if isinstance(e.payload.get("score"), (int, float))
    ]  # fmt: skip
    events = [
        {"id": e.id, "ts": e.ts, "kind": e.kind, "text": describe(e.kind, e.payload or {})}
        for e in reversed(system.events(limit=n_events))
    ]
    # /readyz's reasons (a dead worker, a failing training, the store down): the page showed none (a trial)
    return {"now": time.time(), "window": window, "aliases": aliases, "champion_chain": chain,
            "versions": versions[::-1], "accuracy": accuracy, "drift": drift, "events": events,
            "readiness": system.readiness(),
            "drift_checks": [{"ts": c.ts, "monitor": c.monitor, "score": c.score, "drift": c.drift}
                             for c in system.store.drift_checks(500) if c.score is not None]}  # fmt: skip


def _num(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _when(ts: float) -> str:
    """UTC, as ``lifelong events`` and the charts show it: the server's local time, unlabelled, put the
    same event at 09:13 on one replica, 14:13 on another and 2:13pm on the chart beside it."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


@router.get(
    "/v1/dashboard",
    summary="Data behind the dashboard: aliases, lineage, live accuracy, drift",
    dependencies=[Reader],  # declared, so the API docs send the token (the middleware checks it anyway)
)
def dashboard_data(
    system: SystemDep,
    window: Annotated[int, Query(ge=1, le=10_000)] = 50,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 5000,
) -> dict[str, Any]:
    return summary(system, window, limit)


def render_main(data: dict[str, Any]) -> str:
    """The dashboard's content as HTML (cards, lineage, chart containers, versions, events, chart data)."""
    e = html.escape
    cards = []
    for alias in ("champion", "canary", "shadow"):
        a = data["aliases"].get(alias)
        value = f"v{a['version']}" if a else "none"
        share = f"<small>{a['share']:.0%} of traffic</small>" if a and a.get("share") is not None else ""
        cards.append(
            f'<div class="card" id="alias-{alias}"><h2>{alias}</h2><p class="version">{value}</p>{share}</div>'
        )
    reasons = data.get("readiness") or []
    state = "".join(f"<li>{e(r)}</li>" for r in reasons)
    cards.append(
        '<div class="card" id="readiness"><h2>loop</h2>'
        + (f'<ul class="reasons">{state}</ul>' if reasons else '<p class="version">ready</p>')
        + "</div>"
    )
    rows = []
    for v in data["versions"]:
        figures = " ".join(f"{k.replace('_', ' ')} {_num(x)}" for k, x in v["figures"].items()) or "-"
        window = f"{v['window'][0]}&ndash;{v['window'][1]}" if v["window"] else "-"
        tags = " ".join(f'<span class="tag {e(a)}">{e(a)}</span>' for a in v["aliases"])
        rows.append(
            f'<tr data-version="{v["version"]}"><td>v{v["version"]} {tags}</td>'
            f"<td>{'v' + str(v['parent']) if v['parent'] else '-'}</td><td>{e(v['strategy'])}</td>"
            f"<td>{window}</td><td>{e(figures)}</td><td>{_when(v['created'])}</td>"
            + (
                "<td><small>collected</small></td></tr>"  # its weights were deleted by retention
                if v["collected"]
                else "<td></td></tr>"  # the champion already: nothing to promote
                if "champion" in v["aliases"]
                else f'<td><button class="promote" data-version="{v["version"]}">promote</button></td></tr>'
            )
        )
    events = [
        f"<li><time>{_when(ev['ts'])}</time> <b>{e(ev['kind'])}</b> {e(ev['text'])}</li>"
        for ev in data["events"]
    ]
    chain = " &larr; ".join(f"v{v}" for v in data["champion_chain"]) or "no champion yet"
    return MAIN.substitute(
        cards="".join(cards), chain=chain, rows="".join(rows) or '<tr><td colspan="7">no versions yet</td></tr>',
        events="".join(events) or "<li>no events yet</li>", window=data["window"],
        data=_script_json(data),
    )  # fmt: skip


def _script_json(data: Any) -> str:
    """JSON safe inside a ``<script>`` element: every ``<``, ``>`` and ``&`` escaped (``\\u003c`` ...), as
    escaping ``</`` alone let ``<!--<script>`` in an event's text (a training request's reason, a class
    name) switch the HTML parser into a state where the data block never ended: no charts, no buttons."""
    return json.dumps(data).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def reads_are_open(request: Request) -> bool:
    return getattr(request.app.state, "token", None) is None or bool(
        getattr(request.app.state, "public_reads", False)
    )


@pages.get("/", response_class=HTMLResponse)
def dashboard(request: Request, system: SystemDep) -> HTMLResponse:
    """Rendered here when reads are public; otherwise a shell that loads ``/v1/dashboard/main`` with the
    token typed into it (a browser cannot send a bearer header when it navigates)."""
    main = render_main(summary(system)) if reads_are_open(request) else LOCKED
    return HTMLResponse(PAGE.substitute(main=main))


@pages.get("/v1/dashboard/main", response_class=HTMLResponse)
def dashboard_main(system: SystemDep) -> HTMLResponse:
    """The dashboard's content, for the page to swap in (after a promotion, or once the token is typed)."""
    return HTMLResponse(render_main(summary(system)))


@functools.cache
def _asset(name: str) -> bytes:
    return ASSETS[name].read_bytes()


@pages.get("/static/{name:path}")
def static(name: str) -> Response:
    """The vendored files, from memory (a few MB, read once): whole bodies, no streaming."""
    if name not in ASSETS:
        raise NotFoundError(f"no static file {name!r}")
    media = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return Response(_asset(name), media_type=media, headers={"Cache-Control": "public, max-age=3600"})


#: the docs pages may load only this server's files: ReDoc's bundle fetches its logo from a CDN
DOCS_CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
            "script-src 'self' 'unsafe-inline'; worker-src 'self' blob:; font-src 'self' data:")  # fmt: skip


def _self_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = DOCS_CSP
    return page


@pages.get("/docs", response_class=HTMLResponse)
def swagger(request: Request) -> HTMLResponse:
    return _self_only(get_swagger_ui_html(
        openapi_url=str(request.app.openapi_url), title="lifelong API",
        swagger_js_url="/static/swagger-ui/swagger-ui-bundle.js", swagger_css_url="/static/swagger-ui/swagger-ui.css",
        swagger_favicon_url="/static/swagger-ui/favicon-32x32.png",
        swagger_ui_parameters={"validatorUrl": None},  # the default badge calls validator.swagger.io
    ))  # fmt: skip


@pages.get("/redoc", response_class=HTMLResponse)
def redoc(request: Request) -> HTMLResponse:
    return _self_only(get_redoc_html(
        openapi_url=str(request.app.openapi_url), title="lifelong API", redoc_js_url="/static/redoc/redoc.standalone.js",
        redoc_favicon_url="/static/swagger-ui/favicon-32x32.png", with_google_fonts=False,
    ))  # fmt: skip
