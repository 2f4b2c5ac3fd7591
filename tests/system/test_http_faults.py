"""The HTTP service under misuse and faults, against real uvicorn servers on 127.0.0.1.

Big unauthenticated uploads, every kind of out-of-range or malformed input a client can send,
versions with crafted artifacts, and a store that cannot write (a full filesystem or database):
the server answers each with a JSON 4xx/409/507, keeps answering predictions and recovers alone.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import torch

from lifelong.system.app import create_app
from lifelong.system.health import WriteHealth
from lifelong.system.service import System
from lifelong.system.settings import Settings
from tests.system._models import DATA, error_of, trained
from tests.system._serve import free_port, running

TOKEN = "fault-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BIG = 2**63


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, System]]:
    """A server with the default 8 MB body limit, a 4-class champion and crafted versions."""
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("faults"), token=TOKEN, poll_seconds=0.2, max_batch=16
    )
    with System(settings) as system:
        system.bootstrap(trained(0))
        with running(create_app(system=system)) as url:
            yield url, system


def client(url: str, auth: bool = True) -> httpx.Client:
    return httpx.Client(base_url=url, headers=AUTH if auth else {}, timeout=30)


# -- auth before the body ---------------------------------------------------------------------
def test_big_unauthenticated_bodies_get_401_at_once_and_never_stall_healthz(
    served: tuple[str, System],
) -> None:
    url, _ = served
    row = "[" + ",".join(["0.123456"] * 8) + "]"
    body = ('{"inputs": [' + ",".join([row] * (7_800_000 // (len(row) + 1))) + "]}").encode()
    assert 7_700_000 < len(body) < 8_000_000  # under the body limit: only the token stops it

    def one_round() -> float:
        """Three unauthenticated uploads at once; the longest /healthz wait meanwhile."""
        answers: list[tuple[int, float, str]] = []

        def upload() -> None:
            start = time.perf_counter()
            r = httpx.post(
                f"{url}/v1/predict", content=body, headers={"content-type": "application/json"}, timeout=30
            )
            answers.append((r.status_code, time.perf_counter() - start, r.json()["error"]["type"]))

        uploads = [threading.Thread(target=upload) for _ in range(3)]
        latencies = []
        with client(url, auth=False) as c:
            c.get("/healthz")
            for t in uploads:
                t.start()
            while any(t.is_alive() for t in uploads) or len(latencies) < 5:
                start = time.perf_counter()
                assert c.get("/healthz").status_code == 200
                latencies.append(time.perf_counter() - start)
                time.sleep(0.01)
        for t in uploads:
            t.join()
        assert [(status, kind) for status, _, kind in answers] == [(401, "AuthError")] * 3
        assert max(seconds for _, seconds, _ in answers) < 2.0, answers
        return max(latencies)

    # a body read on the event loop stalls /healthz in every round (about a second each); a stall of the
    # whole shared machine (seen once: 0.76 s while the other test worker ran) does not repeat
    waits = [one_round()]
    if waits[0] >= 0.3:
        waits.append(one_round())
    assert min(waits) < 0.3, f"healthz took up to {waits} s"


def test_auth_is_checked_before_the_declared_length(served: tuple[str, System]) -> None:
    """Without the token a client learns nothing but 401 (not the body limit), and its body is never
    awaited: a declared gigabyte that never comes is answered at once."""
    url, _ = served
    host, port = url.removeprefix("http://").split(":")
    for headers, status in ((b"", 401), (b"Authorization: Bearer wrong-token-0123456789\r\n", 403)):
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         + headers + b"Content-Length: 1000000000\r\n\r\n")  # fmt: skip
            assert sock.recv(65536).startswith(f"HTTP/1.1 {status} ".encode())
    with client(url) as c:  # with the token, the declared length is refused before a byte is read
        big = c.post("/v1/predict", content=b"x" * 8_000_001, headers={"content-type": "application/json"})
        assert error_of(big, 413) == "BodyTooLargeError"


def test_big_authenticated_bodies_are_parsed_off_the_event_loop(served: tuple[str, System]) -> None:
    """An 8 MB batch takes most of a second of CPU to parse; /healthz must not wait for it."""
    url, _ = served
    row = "[" + ",".join(["0.123456"] * 8) + "]"
    body = ('{"inputs": [' + ",".join([row] * (7_800_000 // (len(row) + 1))) + "]}").encode()

    def longest_healthz_wait() -> float:
        """Three such uploads at once; the longest /healthz answer meanwhile."""
        answers: list[int] = []

        def upload() -> None:
            with client(url) as c:
                r = c.post(
                    "/v1/predict", content=body, headers={"content-type": "application/json"}, timeout=120
                )
                answers.append(r.status_code)

        uploads = [threading.Thread(target=upload) for _ in range(3)]
        latencies = []
        with client(url, auth=False) as c:
            for t in uploads:
                t.start()
            while any(t.is_alive() for t in uploads):
                start = time.perf_counter()
                assert c.get("/healthz").status_code == 200
                latencies.append(time.perf_counter() - start)
                time.sleep(0.01)
        assert answers == [413] * 3  # parsed (in the helper process), then refused: 105,405 samples > 16
        return max(latencies)

    # Parsed on the event loop (OFFLOAD_BYTES patched away) /healthz waited 0.85-1.6 s a round on this
    # machine; parsed in the helper, about 0.03 s, but a busy 2-core CI stalls it now and then beside
    # other tests' load (0.46 s, 0.98 s seen once each): a second round separates the two.
    waits = [longest_healthz_wait()]
    if waits[0] >= 0.75:
        waits.append(longest_healthz_wait())
    assert min(waits) < 0.75, f"healthz took up to {waits} s"


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        (json.dumps({"inputs": DATA.test.x[:3].tolist()}), 200, None),
        (json.dumps({"inputs": [[0.0] * 8, [0.0]]}), 422, "DataError"),
        (json.dumps({"inputs": [[0.0] * 8]}) + "}", 400, "MalformedJSON"),
        (json.dumps({"inputs": [[0.0] * 8], "ids": ["\ud800"]}), 422, "ValidationError"),
    ],
)
def test_a_body_parsed_by_the_helper_process_gets_the_same_answer(
    served: tuple[str, System], body: str, status: int, kind: str | None
) -> None:
    url, _ = served
    padded = body.encode() + b" " * 1_100_000  # over OFFLOAD_BYTES: parsed in the helper process
    with client(url) as c:
        for content in (body.encode(), padded):
            r = c.post("/v1/predict", content=content, headers={"content-type": "application/json"})
            if kind is None:
                assert r.status_code == status and len(r.json()["predictions"]) == 3
            else:
                assert error_of(r, status) == kind


def test_oversized_bodies_are_refused_while_streaming(served: tuple[str, System]) -> None:
    url, _ = served
    with client(url) as c:
        declared = c.post(
            "/v1/predict", content=b"x" * 8_000_001, headers={"content-type": "application/json"}
        )
        assert error_of(declared, 413) == "BodyTooLargeError"

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
            yield b'{"inputs": ['
            for _ in range(200):
                yield b"[" + b"0.5," * 10_000 + b"0.5],"
            yield b"[0]]}"

        streamed = c.post("/v1/predict", content=chunks(), headers={"content-type": "application/json"})
        assert error_of(streamed, 413) == "BodyTooLargeError"
        assert c.post("/v1/predict", json={"inputs": DATA.test.x[:1].tolist()}).status_code == 200


# -- no 500 for anything a client can send ----------------------------------------------------
ROW = [0.0] * 8
DEEP = "[" * 100_000 + "]" * 100_000
CASES: list[tuple[str, str, Any, int]] = [
    # (method, path, JSON body or raw bytes, status)
    ("POST", "/v1/samples", {"inputs": [ROW], "labels": [BIG]}, 422),
    ("POST", "/v1/samples", {"inputs": [ROW], "labels": [2**64 + 5]}, 422),
    ("POST", "/v1/samples", {"inputs": [ROW], "labels": [-1]}, 422),
    ("POST", "/v1/samples", {"inputs": [ROW], "labels": [-BIG - 1]}, 422),
    ("POST", "/v1/samples", {"inputs": [ROW], "labels": [9]}, 422),  # outside the 4 classes
    ("POST", "/v1/samples", {"inputs": [ROW, ROW], "labels": [1]}, 422),
    ("POST", "/v1/samples", {"inputs": [[10**400] * 8]}, 422),  # 2**70 is a number like 1e21: taken
    ("POST", "/v1/feedback", {"prediction_id": "x", "label": BIG}, 422),
    ("POST", "/v1/feedback", {"prediction_id": "x", "label": 7}, 422),
    ("POST", "/v1/feedback", {"prediction_id": "\ud800", "label": 1}, 422),
    # NUL: PostgreSQL's text columns refuse it (a 500 there, and a replica out of /readyz, before)
    ("POST", "/v1/feedback", {"prediction_id": "x\u0000", "label": 1}, 422),
    ("POST", "/v1/feedback", {"feedback": [{"prediction_id": "\u0000", "label": 1}]}, 422),
    ("POST", "/v1/predict", {"inputs": [ROW], "ids": ["a\u0000b"]}, 422),
    ("POST", "/v1/predict", {"inputs": [ROW], "probabilities": "yes"}, 422),  # true or false only
    ("POST", "/v1/train", {"reason": "now\u0000"}, 422),
    ("POST", "/v1/feedback", {"feedback": []}, 422),
    ("POST", "/v1/feedback", {"feedback": [{"prediction_id": "x", "label": -BIG}]}, 422),
    ("POST", "/v1/predict", {"inputs": [ROW], "ids": ["\udfff"]}, 422),
    ("POST", "/v1/predict", {"inputs": [ROW], "ids": ["a\ud800b"]}, 422),
    ("POST", "/v1/predict", {"inputs": [[-(10**400)] * 8]}, 422),
    ("POST", "/v1/predict", {"inputs": [ROW], "\ud800": 1}, 422),
    ("POST", "/v1/predict", {"inputs": json.loads("[" * 70 + "1" + "]" * 70)}, 422),
    ("POST", "/v1/predict", DEEP.encode(), 400),
    ("POST", "/v1/predict", b'{"inputs": [[1e400, 0, 0, 0, 0, 0, 0, 0]]}', 422),
    ("POST", "/v1/models/9223372036854775808/promote", None, 422),
    ("POST", "/v1/models/2147483648/promote", None, 422),
    ("POST", "/v1/models/-1/promote", None, 422),
    ("POST", "/v1/deployments", {"version": BIG, "mode": "canary"}, 422),
    ("POST", "/v1/deployments", {"version": 2**31, "mode": "shadow"}, 422),
    ("GET", "/v1/events?after_id=9223372036854775808", None, 422),
    ("GET", "/v1/events?after_id=-5", None, 422),
    ("GET", "/v1/events?after_id=1e400", None, 422),
    ("GET", f"/v1/events?limit={2**70}", None, 422),
    ("GET", "/v1/events?kind=%ED%A0%80", None, 422),
    ("GET", "/v1/drift?limit=-1", None, 422),
    ("PATCH", "/v1/samples/9223372036854775808", {"label": 1}, 422),
    ("PATCH", "/v1/samples/1", {"label": BIG}, 422),
    ("PATCH", "/v1/samples/1", {"label": 9}, 422),
    ("PATCH", "/v1/samples/abc", {"label": 1}, 422),
    ("DELETE", "/v1/samples/0", None, 422),
    ("DELETE", f"/v1/samples/{2**63 - 1}", None, 404),
    ("POST", "/v1/train", {"reason": "\ud800"}, 422),
    ("POST", "/v1/train", {"reason": "x" * 500}, 422),
    ("POST", "/v1/train", {"reason": 5}, 422),
]


@pytest.mark.parametrize(
    "request_bytes",
    [b"GARBAGE\r\n\r\n", b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
     b"GET /healthz HTTP/1.1\r\nHost x\r\n\r\n"],
    ids=["request-line", "content-length", "header"],
)  # fmt: skip
def test_a_request_that_is_not_http_gets_the_json_error_body(
    served: tuple[str, System], request_bytes: bytes
) -> None:
    """uvicorn answers what it cannot parse itself, before any route: it was a plain-text 400."""
    url, _ = served
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request_bytes)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and b"content-type: application/json" in head.lower()
    error = json.loads(body)["error"]
    assert error["type"] == "MalformedHTTP" and "not valid HTTP/1.1" in error["message"]
    with client(url) as c:  # and the server goes on
        assert c.post("/v1/predict", json={"inputs": [ROW]}).status_code == 200


@pytest.mark.parametrize(("method", "path", "body", "status"), CASES, ids=[f"{m} {p[:40]} #{i}" for i, (m, p, _, _) in
                                                                        enumerate(CASES)])  # fmt: skip
def test_bad_input_is_a_json_4xx_and_changes_nothing(
    served: tuple[str, System], method: str, path: str, body: Any, status: int
) -> None:
    url, system = served
    before = (system.store.count_samples(), system.store.count_samples(labelled_only=True))
    content = body if isinstance(body, bytes) else None if body is None else json.dumps(body).encode()
    with client(url) as c:
        r = c.request(method, path, content=content, headers={"content-type": "application/json"})
        error_of(r, status)
        assert (system.store.count_samples(), system.store.count_samples(labelled_only=True)) == before
        assert c.post("/v1/predict", json={"inputs": [ROW]}).status_code == 200


def test_labels_outside_the_deployment_are_refused_with_the_valid_set(served: tuple[str, System]) -> None:
    url, _ = served
    with client(url) as c:
        r = c.post("/v1/samples", json={"inputs": [ROW], "labels": [9]})
        assert error_of(r, 422) == "DataError" and "valid labels: 0, 1, 2, 3" in r.json()["error"]["message"]
        pid = c.post("/v1/predict", json={"inputs": [ROW]}).json()["predictions"][0]["id"]
        r = c.post("/v1/feedback", json={"feedback": [{"prediction_id": pid, "label": 1},
                                                      {"prediction_id": pid, "label": 7}]})  # fmt: skip
        message = r.json()["error"]["message"]
        assert error_of(r, 422) == "DataError" and "item 1" in message and "0, 1, 2, 3" in message


# -- crafted artifacts --------------------------------------------------------------------------
def _crafted(system: System, edit: Any) -> int:
    """Publish a version whose manifest ``edit`` rewrote after saving (hash-consistent, so verified)."""
    with system.registry.publish(strategy="naive") as draft:
        trained(0).save(draft.path)
        manifest = Path(draft.path) / "manifest.json"
        doc = json.loads(manifest.read_text())
        manifest.write_text(edit(doc) if callable(edit) else edit)
    assert draft.version is not None
    return draft.version


def _with(doc: dict[str, Any], path: tuple[str, ...], value: Any) -> str:
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return json.dumps(doc)


CRAFTED = {
    "unknown model kwargs": lambda d: _with(d, ("model", "spec", "kwargs", "evil"), 1),
    "unknown model name": lambda d: _with(d, ("model", "spec", "name"), "os.system"),
    "model spec not a dict": lambda d: _with(d, ("model", "spec"), "mlp"),
    "model not a dict": lambda d: _with(d, ("model",), [1, 2]),
    "unknown learner kwargs": lambda d: _with(d, ("learner", "evil"), 1),
    "unknown strategy": lambda d: _with(d, ("strategies",), [{"name": "evil", "params": {}}]),
    "strategy with unknown params": lambda d: _with(
        d, ("strategies",), [{"name": "replay", "params": {"x": 1}}]
    ),
    "deep manifest": lambda d: '{"a": ' + "[" * 200_000 + "]" * 200_000 + "}",
    "deep learner": lambda d: _with(d, ("learner",), json.loads("[" * 500 + "]" * 500)),
    "not json": "\x00\xff garbage",
    "other format version": lambda d: _with(d, ("format_version",), 99),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_artifacts_are_refused_with_409(served: tuple[str, System], case: str) -> None:
    url, system = served
    version = _crafted(system, CRAFTED[case])
    champion = system.registry.alias("champion")
    with client(url) as c:
        r = c.post(f"/v1/models/{version}/promote")
        assert error_of(r, 409) in ("CheckpointError", "RegistryError"), r.text
        r = c.post("/v1/deployments", json={"version": version, "mode": "canary", "share": 0.5})
        assert error_of(r, 409) in ("CheckpointError", "RegistryError"), r.text
        assert system.registry.alias("champion") == champion and system.registry.alias("canary") is None
        assert c.post("/v1/predict", json={"inputs": [ROW]}).status_code == 200


# -- a store that cannot write --------------------------------------------------------------------
def _predict_until_unlogged(c: httpx.Client, system: System, attempts: int = 200) -> str:
    """Predict until one batch could not be recorded; return the id of one of its predictions."""
    for _ in range(attempts):
        before = system.write_health.unlogged_predictions
        r = c.post("/v1/predict", json={"inputs": DATA.test.x[:16].tolist()})
        assert r.status_code == 200, r.text  # predictions are answered even when they cannot be recorded
        if system.write_health.unlogged_predictions > before:
            return r.json()["predictions"][0]["id"]
    raise AssertionError("the store never filled up")


def _metric(c: httpx.Client, name: str) -> str:
    """The value of an unlabelled metric from /metrics."""
    return next(line for line in c.get("/metrics").text.splitlines() if line.startswith(name + " ")).split()[
        -1
    ]


# failures clear this long after the last one: 2 s flaked on a loaded machine, where the 507 and the
# /readyz that should report it were more than 2 s apart and a small write between them succeeded
SETTLE = 6.0


def _check_full_then_recovered(url: str, system: System, fill: Any, free: Any) -> None:
    """After ``fill()``: predictions answered and counted, writes 507, /readyz and /metrics say so;
    after ``free()`` everything works again in the same process."""
    with client(url) as c:
        logged = c.post("/v1/predict", json={"inputs": [ROW]}).json()["predictions"][0]["id"]
        fill()
        unlogged = _predict_until_unlogged(c, system)
        for _ in range(100):  # a write that still fits a free page succeeds; the store soon refuses
            samples = c.post("/v1/samples", json={"inputs": DATA.test.x[:16].tolist(), "labels": [0] * 16})
            if samples.status_code != 201:
                break
        assert error_of(samples, 507) == "StorageFullError" and "full" in samples.json()["error"]["message"]
        ready = c.get("/readyz")
        assert ready.status_code == 503 and any("full" in r for r in ready.json()["reasons"]), ready.text
        metrics = c.get("/metrics").text
        count = next(
            line for line in metrics.splitlines() if line.startswith("lifelong_predictions_unlogged_total")
        )
        assert int(count.split()[-1]) >= 16 and "lifelong_store_write_failing 1" in metrics
        pending = c.post("/v1/feedback", json={"prediction_id": unlogged, "label": 1})
        assert error_of(pending, 507) == "StorageFullError", pending.text  # kept, not yet recorded
        assert int(_metric(c, "lifelong_predictions_pending")) >= 16
        feedback = c.post("/v1/feedback", json={"prediction_id": logged, "label": 1})
        assert (
            feedback.status_code == 204 or error_of(feedback, 507) == "StorageFullError"
        )  # fits a free page?
        free()
        time.sleep(WriteHealth.settle_seconds + 0.1)  # a success clears a failure this much later
        assert c.post("/v1/samples", json={"inputs": [ROW], "labels": [1]}).status_code == 201
        r = c.post("/v1/predict", json={"inputs": [ROW]})
        pid = r.json()["predictions"][0]["id"]
        assert c.post("/v1/feedback", json={"prediction_id": pid, "label": 1}).status_code == 204
        # what was answered while the store was full was recorded once it could write: its label lands
        assert c.post("/v1/feedback", json={"prediction_id": unlogged, "label": 1}).status_code == 204
        assert int(_metric(c, "lifelong_predictions_pending")) == 0
        assert int(_metric(c, "lifelong_predictions_dropped_total")) == 0
        reasons = c.get("/readyz").json()["reasons"]
        assert not any("full" in r or "failing" in r for r in reasons), reasons
        assert "lifelong_store_write_failing 0" in c.get("/metrics").text


def test_a_full_database_degrades_prediction_logging_and_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's own SQLITE_FULL ("database or disk is full"), raised by capping the file's pages."""
    monkeypatch.setattr(WriteHealth, "settle_seconds", SETTLE)
    settings = Settings(data_dir=tmp_path, token=TOKEN, max_batch=16)
    with System(settings) as system:
        system.bootstrap(trained(0))
        cap = {"pages": 1_000_000_000}

        @sa.event.listens_for(system.store.engine, "begin")
        def _cap(conn: sa.Connection) -> None:
            conn.exec_driver_sql(f"PRAGMA max_page_count = {cap['pages']}")

        def fill() -> None:
            with system.store.engine.connect() as conn:
                cap["pages"] = conn.exec_driver_sql("PRAGMA page_count").scalar_one()

        with running(create_app(system=system)) as url:
            _check_full_then_recovered(url, system, fill, lambda: cap.update(pages=1_000_000_000))


def test_a_full_filesystem_degrades_prediction_logging_and_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real ENOSPC: the data directory on a 4 MB tmpfs, filled up, then freed."""
    monkeypatch.setattr(WriteHealth, "settle_seconds", SETTLE)
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN): {done.stderr.decode().strip()}"
        )
    try:
        settings = Settings(data_dir=mount, token=TOKEN, max_batch=16)
        with System(settings) as system:
            system.bootstrap(trained(0))
            filler = mount / "filler"

            def fill() -> None:  # the filesystem, to the last byte
                fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
                try:
                    while os.write(fd, b"\0" * 4096):
                        pass
                except OSError as err:
                    assert err.errno == errno.ENOSPC
                finally:
                    os.close(fd)

            with running(create_app(system=system)) as url:
                _check_full_then_recovered(url, system, fill, filler.unlink)
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
        shutil.rmtree(mount, ignore_errors=True)


def test_the_parsing_helper_dies_with_a_killed_server(tmp_path: Path) -> None:
    """SIGKILL skips every shutdown hook: the helper process must notice and leave no orphan."""
    psutil = pytest.importorskip("psutil")
    port = free_port()
    code = ("import sys, uvicorn; from lifelong.system.app import create_app; "
            "from lifelong.system.settings import Settings; "
            f"uvicorn.run(create_app(Settings(data_dir=sys.argv[1], auth=False)), port={port}, log_level='warning')")  # fmt: skip
    server = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], env={**os.environ})
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        helpers = psutil.Process(server.pid).children(recursive=True)
        while not any("spawn_main" in " ".join(p.cmdline()) for p in helpers) and time.monotonic() < deadline:
            time.sleep(0.2)
            helpers = psutil.Process(server.pid).children(recursive=True)
        assert any("spawn_main" in " ".join(p.cmdline()) for p in helpers), "the helper never started"
    finally:
        server.kill()
        server.wait(30)
    _, alive = psutil.wait_procs(helpers, timeout=10)
    for p in alive:
        p.kill()
    assert not alive, f"orphaned: {[p.cmdline() for p in alive]}"


def test_a_store_that_cannot_be_reached_is_a_503_and_readiness_recovers_alone(tmp_path: Path) -> None:
    """A read-only file or a database that went down: was a 500 with a traceback, and /readyz stayed
    503 after the store came back until client traffic (which a load balancer never sends) arrived."""
    settings = Settings(data_dir=tmp_path, token=TOKEN, max_batch=16)
    with System(settings) as system:
        system.bootstrap(trained(0))
        down = {"on": False}

        @sa.event.listens_for(system.store.engine, "begin")
        def _io_error(conn: sa.Connection) -> None:
            if down["on"]:
                raise sa.exc.OperationalError("BEGIN", {}, Exception("disk I/O error"))

        with running(create_app(system=system)) as url, client(url) as c:
            down["on"] = True
            answered = c.post("/v1/predict", json={"inputs": [ROW]})
            assert answered.status_code == 200  # answered, kept in memory to record later
            unrecorded, answered_at = answered.json()["predictions"][0]["id"], time.time()
            for method, path, body in [("POST", "/v1/samples", {"inputs": [ROW], "labels": [1]}),
                                       ("POST", "/v1/feedback", {"prediction_id": unrecorded, "label": 1}),
                                       ("POST", "/v1/train", {}), ("POST", "/v1/rollback", {}),
                                       ("GET", "/v1/models", None)]:  # fmt: skip
                r = c.request(method, path, json=body)
                assert error_of(r, 503) == "StoreUnavailable", (path, r.text)
                assert "disk I/O error" in r.json()["error"]["message"] and r.headers["retry-after"] == "5"
            assert c.get("/readyz").status_code == 503
            down["on"] = False
            time.sleep(WriteHealth.settle_seconds + 1.1)  # the failures settle; the next probe is due
            assert c.get("/readyz", params={"scope": "serving"}).json() == {"ready": True, "reasons": []}
            # the poller recorded the prediction answered during the outage, at the time it was answered
            assert c.post("/v1/feedback", json={"prediction_id": unrecorded, "label": 1}).status_code == 204
            (row,) = system.store.labelled_predictions(1)
            assert row.label == 1 and abs(row.ts - answered_at) < 1.0
