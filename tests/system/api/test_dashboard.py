"""The dashboard and the offline API docs, against a real server on loopback and a real headless Chromium.

Chromium is driven two ways: ``--dump-dom`` / ``--screenshot`` (what a person can rerun by hand),
and the DevTools protocol over a pipe (``--remote-debugging-pipe``: no WebDriver, no websocket
library) to type the token and press the promote and roll back buttons.
"""

from __future__ import annotations

import base64
import json
import os
import re
import select
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch

from lifelong.system.api.dashboard import render_main, summary
from lifelong.system.app import create_app
from lifelong.system.service import System
from lifelong.system.settings import Settings
from tests.system._models import DATA, trained
from tests.system._serve import running

TOKEN = "dashboard-token-0123456789"
FIGURES = {"new_accuracy": 0.93, "champion_new_accuracy": 0.9, "old_accuracy": 0.91, "negative_flip_rate": 0.02,
           "latency_ms": 0.3, "size_mb": 0.01}  # fmt: skip
# Every host name but the loopback address fails to resolve: the pages must work with no network at all.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]  # fmt: skip


AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Server:
    url: str  # reads are public (Settings.public_reads): the page is rendered on the server
    protected: str  # the same store, with every read behind the token: the page loads with it
    versions: dict[str, int]
    data_dir: Path

    def aliases(self) -> dict[str, Any]:
        return httpx.get(f"{self.url}/v1/deployments").json()["aliases"]


def _browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip(
        "no Chromium binary found; install Debian's chromium (`make system-deps`) to run the browser test"
    )


def _populate(settings: Settings) -> dict[str, int]:
    """What a worker would have left behind: a lineage of three versions, labelled traffic, drift, gates."""
    with System(settings) as s:
        root = s.bootstrap(trained(0))
        with s.registry.publish(strategy="replay", parent=root, window=(1, 120), metrics=FIGURES) as draft:
            trained(1).save(draft.path)
        child = draft.version
        assert child is not None
        s.promote(child)
        with s.registry.publish(strategy="replay", parent=child, window=(121, 240), metrics=FIGURES) as draft:
            trained(1, wrong=True).save(draft.path)
        canary = draft.version
        assert canary is not None
        s.deploy(canary, "canary", 0.3)
        x, y = DATA.test.x.repeat(4, 1), DATA.test.y.repeat(4)  # 320 requests of one sample
        for i in range(len(x)):
            (out,) = s.predict(x[i : i + 1].tolist())
            s.feedback(out["id"], int(y[i]))
        for i, score in enumerate([0.12, 0.35, 0.18]):
            s.store.add_event("data_drift", {"type": "drift", "monitor": "ks", "score": score, "threshold": 0.2,
                                             "drift": score > 0.2, "first": 1 + 50 * i, "at": 50 * (i + 1)})  # fmt: skip
        s.store.add_event("performance_drift", {"detector": "floor", "score": 0.4, "threshold": 0.8, "first": 140,
                                                "at": 150})  # the floor's: no "monitor" key  # fmt: skip
        s.store.add_event("gate", {"passed": True, "reasons": [], "version": canary, "parent": child,
                                   "mode": "finetune", "reason": "data_drift", "figures": FIGURES})  # fmt: skip
    return {"root": root, "child": child, "canary": canary}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    data_dir = tmp_path_factory.mktemp("dashboard")
    settings = Settings(data_dir=data_dir, token=TOKEN, poll_seconds=0.2)
    versions = _populate(settings)
    try:
        with ExitStack() as stack:
            public, protected = (
                stack.enter_context(running(create_app(settings.model_copy(update={"public_reads": p}))))
                for p in (True, False)
            )
            yield Server(public, protected, versions, data_dir)
    finally:
        torch.set_num_threads(threads)


# -- without a browser ----------------------------------------------------------------------------
def test_dashboard_data_holds_aliases_lineage_accuracy_and_drift(server: Server) -> None:
    v = server.versions
    assert httpx.get(f"{server.protected}/v1/dashboard").status_code == 401
    doc = httpx.get(f"{server.protected}/v1/dashboard", params={"window": 20}, headers=AUTH).json()
    assert (
        doc["aliases"]["champion"]["version"] == v["child"]
        and doc["aliases"]["canary"]["version"] == v["canary"]
    )
    assert doc["champion_chain"] == [v["child"], v["root"]]
    (top,) = [x for x in doc["versions"] if x["version"] == v["canary"]]
    assert (
        top["parent"] == v["child"] and top["window"] == [121, 240] and top["figures"]["old_accuracy"] == 0.91
    )
    # the floor's alarm by its detector's name (was "performance_drift", the event's kind)
    assert [x["monitor"] for x in doc["drift"]] == ["ks"] * 3 + ["floor"]
    assert [x["score"] for x in doc["drift"]] == [0.12, 0.35, 0.18, 0.4]
    assert doc["events"][0]["kind"] == "gate"  # newest first
    # the windows are the store's labelled predictions, 20 at a time per variant, in order
    with System(Settings(data_dir=server.data_dir, auth=False)) as s:
        rows = s.store.labelled_predictions(limit=5000)
    for variant in ("champion", "canary"):
        mine = [r for r in rows if r.variant == variant]
        expected = [
            sum(r.predicted == r.label for r in mine[i : i + 20]) / 20 for i in range(0, len(mine) - 19, 20)
        ]
        assert [p["accuracy"] for p in doc["accuracy"][variant]] == pytest.approx(expected)
        assert all(p["n"] == 20 for p in doc["accuracy"][variant])
    champion, canary = (sum(p["accuracy"] for p in doc["accuracy"][k]) for k in ("champion", "canary"))
    assert champion / len(doc["accuracy"]["champion"]) > 0.8 > canary / len(doc["accuracy"]["canary"])


def _local_refs(page: str) -> list[str]:
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", page) + re.findall(
        r"""url:\s*["']([^"']+)["']""", page
    )
    assert refs
    return refs


@pytest.mark.parametrize("path", ["/", "/docs", "/redoc"])
def test_pages_reference_only_files_served_by_the_app(server: Server, path: str) -> None:
    page = httpx.get(server.url + path)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "http://" not in page.text and "https://" not in page.text and "//cdn" not in page.text
    for ref in _local_refs(page.text):
        assert ref.startswith("/"), ref
        if ref.startswith("/v1/") and path == "/":
            continue  # the dashboard's own endpoints (their 401s are tested in test_app)
        asset = httpx.get(server.url + ref)
        assert asset.status_code == 200 and len(asset.content) > 100, ref


def test_protected_reads_leave_only_an_empty_shell_open(server: Server) -> None:
    page = httpx.get(server.protected + "/")
    assert page.status_code == 200 and 'id="locked"' in page.text
    assert (
        "dashboard-data" not in page.text and "alias-champion" not in page.text
    )  # no data without the token
    for ref in _local_refs(page.text):  # the shell's own files are open, like /docs
        if ref.startswith("/static/"):
            assert httpx.get(server.protected + ref).status_code == 200, ref
    assert httpx.get(server.protected + "/v1/dashboard/main").status_code == 401
    main = httpx.get(server.protected + "/v1/dashboard/main", headers=AUTH)
    assert main.status_code == 200 and f'<p class="version">v{server.versions["child"]}</p>' in main.text


def test_static_files_do_not_escape_the_static_directory(server: Server) -> None:
    assert httpx.get(f"{server.url}/static/../app.py").status_code == 404
    assert httpx.get(f"{server.url}/static/%2e%2e/app.py").status_code == 404


def test_summary_without_anything_registered(tmp_path: Path) -> None:
    with System(Settings(data_dir=tmp_path, auth=False)) as s:
        doc = summary(s)
    assert (
        doc["aliases"] == {}
        and doc["versions"] == []
        and doc["accuracy"] == {}
        and doc["champion_chain"] == []
    )
    # why it is not ready, as /readyz says it: the page had no word of a dead worker (a trial)
    assert any("no worker holds the lease" in r for r in doc["readiness"])
    page = render_main(doc)
    assert '<div class="card" id="readiness"><h2>loop</h2><ul class="reasons"><li>' in page
    assert "no worker holds the lease" in page


# -- in a real browser --------------------------------------------------------------------------
def test_headless_chromium_renders_the_champion_and_the_charts(server: Server, tmp_path: Path) -> None:
    browser = _browser()
    profile = tmp_path / "profile"
    base = [
        browser,
        *FLAGS,
        f"--user-data-dir={profile}",
        "--window-size=1280,1000",
        "--virtual-time-budget=5000",
    ]
    dom = subprocess.run([*base, "--dump-dom", server.url + "/"], capture_output=True, text=True, timeout=90)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    champion = server.versions["child"]
    assert re.search(rf'id="alias-champion"><h2>champion</h2><p class="version">v{champion}</p>', html), html[
        :3000
    ]
    # uPlot replaced the empty chart containers with its own DOM (a canvas inside div.uplot)
    for chart in ("accuracy-chart", "drift-chart"):
        m = re.search(rf'<div id="{chart}" class="chart" data-points="(\d+)"><div class="uplot', html)
        assert m and int(m.group(1)) > 0, chart
    assert html.count("<canvas") >= 2
    shot = tmp_path / "dashboard.png"
    done = subprocess.run([*base, f"--screenshot={shot}", server.url + "/"], capture_output=True, timeout=90)
    assert (
        done.returncode == 0
        and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        and shot.stat().st_size > 20_000
    )
    if os.environ.get("LIFELONG_SCREENSHOT"):  # how docs/dashboard.png is made
        shutil.copy(shot, os.environ["LIFELONG_SCREENSHOT"])


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_api_docs_render_offline_in_headless_chromium(server: Server, tmp_path: Path, path: str) -> None:
    browser = _browser()
    cmd = [
        browser,
        *FLAGS,
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=8000",
        "--dump-dom",
    ]
    dom = subprocess.run([*cmd, server.url + path], capture_output=True, text=True, timeout=90).stdout
    csp = httpx.get(server.url + path).headers["content-security-policy"]  # no CDN (ReDoc's logo asked one)
    assert "default-src 'self'" in csp and "img-src 'self' data: blob:;" in csp
    if path == "/docs":  # Swagger UI drew one block per operation
        assert 'data-path="/v1/predict"' in dom and dom.count("opblock-summary-path") >= 10
    else:  # ReDoc drew its menu and the operations
        assert "menu-content" in dom and "/v1/predict" in dom and "/v1/dashboard" in dom


class DevTools:
    """Chromium over the DevTools protocol on a pipe: JSON messages separated by NUL on fds 3 and 4."""

    def __init__(self, browser: str, profile: Path) -> None:
        to_chrome_r, self._w = os.pipe()
        self._r, from_chrome_w = os.pipe()

        def wire() -> None:  # in the child: the protocol's fixed descriptors
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        self.proc = subprocess.Popen([browser, *FLAGS, "--remote-debugging-pipe", f"--user-data-dir={profile}"],
                                     preexec_fn=wire, pass_fds=(3, 4), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)  # fmt: skip
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._next, self._buffer = 0, b""
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def call(
        self, method: str, session: str | None = None, timeout: float = 30, **params: Any
    ) -> dict[str, Any]:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._w, json.dumps(message).encode() + b"\0")
        deadline = time.time() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._next:
                    assert "error" not in reply, reply
                    return reply["result"]
            left = deadline - time.time()
            assert left > 0 and select.select([self._r], [], [], left)[0], f"no reply to {method}"
            chunk = os.read(self._r, 1 << 16)
            assert chunk, "Chromium closed the pipe"
            self._buffer += chunk

    def js(self, expression: str) -> Any:
        out = self.call(
            "Runtime.evaluate", self.session, expression=expression, awaitPromise=True, returnByValue=True
        )
        assert "exceptionDetails" not in out, out
        return out["result"].get("value")

    def wait(self, expression: str, timeout: float = 20) -> Any:
        deadline = time.time() + timeout
        while time.time() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {expression}")

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)
        os.close(self._w)
        os.close(self._r)


def test_token_loads_the_dashboard_and_its_buttons_promote_and_roll_back(
    server: Server, tmp_path: Path
) -> None:
    browser = _browser()
    v = server.versions
    chrome = DevTools(browser, tmp_path / "profile")
    try:
        chrome.call("Page.navigate", chrome.session, url=server.protected + "/")
        chrome.wait("document.readyState === 'complete' && !!document.getElementById('locked')")
        type_token = "t => { const el = document.getElementById('token'); el.value = t; el.dispatchEvent(new Event('input')); }"
        chrome.js(f"({type_token})('wrong-token-0123456789')")
        assert "wrong" in chrome.wait("document.getElementById('status').textContent")  # the 403's message
        assert chrome.js("!!document.getElementById('locked')")  # nothing shown with a wrong token
        chrome.js(f"({type_token})('{TOKEN}')")
        chrome.wait(
            "!!document.querySelector('#accuracy-chart .uplot')"
        )  # loaded with the token, charts drawn
        assert chrome.js("document.querySelector('#alias-champion .version').textContent") == f"v{v['child']}"
        assert chrome.js("sessionStorage.getItem('lifelong-token')") == TOKEN
        chrome.js(f"document.querySelector('button.promote[data-version=\"{v['root']}\"]').click()")
        chrome.wait(f"document.querySelector('#alias-champion .version')?.textContent === 'v{v['root']}'")
        assert server.aliases()["champion"]["version"] == v["root"]
        # the confirmation stays (the reload after the call cleared it at once)
        assert chrome.wait("document.getElementById('status').textContent") == f"v{v['root']} is the champion"
        # a reload keeps the token (sessionStorage): the content comes back at once and roll back works
        chrome.call("Page.reload", chrome.session)
        chrome.wait(f"document.querySelector('#alias-champion .version')?.textContent === 'v{v['root']}'")
        chrome.js("document.getElementById('rollback').click()")
        chrome.wait(f"document.querySelector('#alias-champion .version')?.textContent === 'v{v['child']}'")
        assert server.aliases()["champion"]["version"] == v["child"]
        assert (
            chrome.wait("document.getElementById('status').textContent")
            == f"champion rolled back to v{v['child']}"
        )
        png = base64.b64decode(chrome.call("Page.captureScreenshot", chrome.session, format="png")["data"])
        assert png[:4] == b"\x89PNG"
    finally:
        chrome.close()


def test_the_champions_row_has_no_promote_button(server: Server) -> None:
    """Promoting the champion onto itself was offered."""
    v = server.versions
    html = httpx.get(f"{server.protected}/v1/dashboard/main", headers=AUTH).text
    assert f'button class="promote" data-version="{v["child"]}"' not in html  # the champion
    assert f'button class="promote" data-version="{v["root"]}"' in html


def test_markup_in_an_events_text_neither_runs_nor_breaks_the_page(server: Server, tmp_path: Path) -> None:
    """`<!--<script>` in a training request's reason (or a class name) left the embedded data block
    unterminated: no charts, no buttons, for as long as the event was among the last 30; and times were
    the server's local ones, unlabelled."""
    from lifelong.system.api.dashboard import render_main
    from lifelong.system.store import Store

    reason = "nightly <!--<script> check <img src=x onerror=alert(1)>"
    with Store(data_dir=server.data_dir) as store:
        store.add_event("train_request", {"reason": reason})
    page = render_main(summary_of(server))
    block = page[page.index('id="dashboard-data"') :]
    assert "<!--" not in block.split("</script>")[0] and "\\u003c!--\\u003cscript\\u003e" in block
    assert " UTC</time>" in page
    dom = subprocess.run([_browser(), *FLAGS, f"--user-data-dir={tmp_path / 'p'}", "--virtual-time-budget=5000",
                          "--dump-dom", server.url + "/"], capture_output=True, text=True, timeout=90)  # fmt: skip
    assert dom.returncode == 0 and dom.stdout.count("<canvas") >= 2  # the charts drew: the script ran
    assert "<img src=" not in dom.stdout and "&lt;!--&lt;script&gt; check" in dom.stdout  # shown as text


def summary_of(server: Server) -> dict[str, Any]:
    with System(Settings(data_dir=server.data_dir, token=TOKEN)) as s:
        return summary(s)
