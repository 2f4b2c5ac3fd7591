"""Operating the system as an operator would: real processes, real signals, loopback only.

Two workers share one lease (SQLite and PostgreSQL) and a standby takes over from a killed holder;
``lifelong up`` restarts its killed worker and takes it down when it is killed itself; a server falls
back from a corrupted champion; two replicas on PostgreSQL follow the worker's promotions and the
canary is judged once; retention keeps the store bounded. Each test prints what it measured
(``pytest -s``): the figures quoted in the README come from these runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import pytest
import sqlalchemy as sa

from lifelong.checks import toy_data
from lifelong.cli import main
from lifelong.system.api.errors import status_of
from lifelong.system.events import EventKind
from lifelong.system.health import ChampionUnavailableError
from lifelong.system.policy import Decision, Gate, Policy
from lifelong.system.registry import Registry
from lifelong.system.service import System
from lifelong.system.store import Store, samples
from lifelong.system.trainer import bootstrap
from lifelong.system.worker import Worker
from tests.system._serve import free_port

LENIENT = {"max_new_accuracy_drop": 1.0, "max_old_accuracy_drop": 1.0, "max_negative_flip_rate": 1.0,
           "max_latency_ms": None}  # fmt: skip
LEASE, POLL = 2.0, 0.2  # seconds: short, so a takeover fits in a test
STARTUP = 240.0  # generous bound for starting processes (torch imports) on a loaded shared machine


class Proc:
    """A ``python -m lifelong`` child whose stdout and stderr go to a file (no pipe to fill up)."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        with log.open("wb") as out:
            cmd = [sys.executable, "-m", "lifelong", *args]
            self.popen = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
            )
        self.pid = self.popen.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., Proc]]:
    """Start ``lifelong`` commands; every one (and any child it started) is SIGKILLed at teardown."""
    procs: list[Proc] = []

    def start(args: list[str], name: str, env: dict[str, str] | None = None) -> Proc:
        proc = Proc(args, tmp_path / f"{name}.log", env)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(proc.pid).children(recursive=True):
                child.kill()
        proc.popen.kill()
        proc.popen.wait(30)


def _wait(predicate: Callable[[], object], timeout: float, what: str, *procs: Proc) -> float:
    """Poll ``predicate`` until true; return the seconds it took. Fails early if a process died."""
    start = time.monotonic()
    while not predicate():
        for p in procs:
            if not p.alive():
                raise AssertionError(f"{p.log.name} exited ({p.popen.returncode}) waiting for {what}:\n"
                                     f"{p.output()[-3000:]}")  # fmt: skip
        if time.monotonic() - start > timeout:
            logs = "\n".join(f"--- {p.log.name}\n{p.output()[-2000:]}" for p in procs)
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{logs}")
        time.sleep(0.05)
    return time.monotonic() - start


def _get(port: int, path: str) -> httpx.Response | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5)
    except httpx.TransportError:
        return None


def _live(port: int) -> dict[str, int]:
    """The versions a replica serves right now, by alias ({} while it is not up)."""
    r = _get(port, "/healthz")
    if r is None or r.status_code != 200:
        return {}
    return {alias: v["version"] for alias, v in r.json()["live"].items()}


def _worker_args(db_url: str, data_dir: Path, *extra: str) -> list[str]:
    policy = {"epochs": 1, "min_samples": 40, "drift_test": None}
    return ["worker", "--db-url", db_url, "--data-dir", str(data_dir), "--poll", str(POLL),
            "--lease-seconds", str(LEASE), "--policy-json", json.dumps(policy), "--gate-json",
            json.dumps(LENIENT), *extra]  # fmt: skip


def _seed(db_url: str, data_dir: Path) -> None:
    """A first champion (v1) trained on toy blobs: 4 classes, 8 features."""
    with Store(db_url, data_dir=data_dir) as store:
        bootstrap(store, Registry(store), toy_data(per_class=60).train, n_classes=4, epochs=2)


# --- 1. one worker per store -----------------------------------------------------------------------
def test_one_worker_holds_the_lease_and_a_standby_takes_over(
    db_url: str, tmp_path: Path, spawn: Callable[..., Proc]
) -> None:
    _seed(db_url, tmp_path)
    data = toy_data(per_class=60, seed=1).train
    args = _worker_args(db_url, tmp_path, "--policy", "scheduled-finetune", "--every", "40")
    a, b = spawn(args, "worker-a"), spawn(args, "worker-b")
    acquired, standby_line = "acquired the worker lease", "standby: waiting for the worker lease held by"
    _wait(lambda: acquired in a.output() + b.output() and standby_line in a.output() + b.output(), STARTUP,
          "one worker to take the lease and the other to stand by", a, b)  # fmt: skip
    holder, standby = (a, b) if acquired in a.output() else (b, a)
    assert acquired not in standby.output()
    with Store(db_url, data_dir=tmp_path) as store:
        registry = Registry(store)
        lease = store.lease("worker")
        assert lease is not None and f":{holder.pid}:" in lease.holder and lease.holder in standby.output()

        # Both alive, training triggered three times (the schedule and `lifelong train`): every version
        # continues the champion before it, so no two versions share a parent.
        for i in range(3):
            store.add_samples(data.x[80 * i : 80 * (i + 1)], data.y[80 * i : 80 * (i + 1)])
            assert main(["train", "--db-url", db_url, "--data-dir", str(tmp_path)]) == 0
            _wait(lambda i=i: len(store.events(EventKind.GATE)) > i, 60, f"training attempt {i + 1}", a, b)
        _wait(lambda: registry.alias("champion") == 4, 30, "the third version to be promoted", a, b)
        parents = [v.parent for v in registry.versions()]
        assert parents == [None, 1, 2, 3], parents
        assert acquired not in standby.output()  # the standby never took part

        holder.popen.send_signal(signal.SIGKILL)
        killed = time.time()
        holder.popen.wait(10)

        def taken() -> list[Any]:  # the worker logs first, then records the event
            return [e for e in store.events(EventKind.WORKER) if e.payload["state"] == "acquired"
                    and f":{standby.pid}:" in e.payload["holder"]]  # fmt: skip

        took = _wait(lambda: acquired in standby.output(), LEASE + 15, "the standby to take over", standby)
        _wait(taken, 10, "the takeover event", standby)
        (event,) = taken()
        takeover = event.ts - killed
        print(f"\n[{store.engine.dialect.name}] takeover after SIGKILL: {takeover:.2f}s "
              f"(lease {LEASE}s, poll {POLL}s; seen in the log after {took:.2f}s)")  # fmt: skip
        assert takeover <= LEASE + POLL + 1.0, takeover  # expiry, one poll, and slack for a loaded machine

        # the new holder trains from the current champion
        store.add_samples(data.x[:60] + 0.1, data.y[:60])
        _wait(lambda: registry.alias("champion") == 5, 60, "the new holder to train", standby)
        assert registry.get(5).parent == 4


@contextlib.contextmanager
def _leading_worker(tmp_path: Path) -> Iterator[tuple[Store, Registry, Worker]]:
    """A seeded store with labelled samples, and a manual worker holding the lease."""
    _seed(f"sqlite:///{tmp_path / 'lifelong.db'}", tmp_path)
    data = toy_data(per_class=60, seed=1).train
    with Store(data_dir=tmp_path) as store:
        registry = Registry(store)
        store.add_samples(data.x, data.y)
        worker = Worker(store, registry, Policy("manual", epochs=1, drift_test=None), Gate(**LENIENT))
        assert worker.holds_lease()
        yield store, registry, worker


def test_a_worker_that_lost_its_lease_publishes_nothing(tmp_path: Path) -> None:
    with _leading_worker(tmp_path) as (store, registry, worker):
        # it stalls past its lease (a long pause) and another worker takes the lease meanwhile
        assert store.acquire_lease("worker", "elsewhere:1:abc", 600, now=time.time() + 3600)
        assert worker.train(Decision(True, "requested by hand")) is None
        assert [v.version for v in registry.versions()] == [1] and registry.alias("champion") == 1
        # no gate event (it read as the other worker's verdict in /metrics, and answered its triggers)
        assert store.events(EventKind.GATE) == []
        (last,) = store.events(EventKind.TRAINING, limit=1)
        assert last.payload["state"] == "interrupted" and "lost its lease" in last.payload["by"]


def test_a_stalled_worker_does_not_replace_a_newer_champion(tmp_path: Path) -> None:
    """Worker A paused past its lease while B promoted v2 and stopped (its lease released): A took the
    free lease back and promoted its candidate, trained from v1, over v2."""
    with _leading_worker(tmp_path) as (store, registry, worker):
        renew = worker.holds_lease

        def meanwhile() -> bool:  # the other worker's promotion lands while this one trains
            if registry.alias("champion") == 1:
                with registry.publish(strategy="naive", parent=1) as draft:
                    shutil.copytree(registry.get(1).path, draft.path, dirs_exist_ok=True)
                registry.set_alias("champion", draft.version)
            return renew()

        worker.holds_lease = meanwhile  # type: ignore[method-assign]
        assert worker.train(Decision(True, "requested by hand")) is None
        assert registry.alias("champion") == 2 and [v.version for v in registry.versions()] == [1, 2]
        (last,) = store.events(EventKind.TRAINING, limit=1)
        assert "the champion moved from v1 to v2 during the training" in last.payload["by"]


# --- 2. supervision ------------------------------------------------------------------------------
def _worker_child(up: Proc) -> psutil.Process | None:
    """The running worker child of ``up`` (a killed one not yet reaped is a zombie: skipped)."""
    for child in psutil.Process(up.pid).children():
        with contextlib.suppress(psutil.Error):
            if "worker" in child.cmdline():
                return child
    return None


def _gone(proc: psutil.Process) -> bool:
    """Exited (a zombie nobody has reaped yet counts: it runs nothing)."""
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_up_restarts_a_killed_worker_and_takes_it_down_when_killed(
    tmp_path: Path, spawn: Callable[..., Proc]
) -> None:
    port, blobs = free_port(), tmp_path / "blobs.npz"  # a small bootstrap file (test_cli covers digits)
    data = toy_data(per_class=60).train
    np.savez(blobs, x=data.x.numpy(), y=data.y.numpy())
    up = spawn(["up", "--data-dir", str(tmp_path / "data"), "--port", str(port), "--bootstrap", str(blobs),
                "--no-auth", "--poll", str(POLL), "--lease-seconds", str(LEASE), "--policy", "manual"], "up")  # fmt: skip
    _wait(
        lambda: _live(port).get("champion") == 1, STARTUP, "the server to serve the bootstrapped champion", up
    )
    _wait(lambda: "acquired the worker lease" in up.output(), STARTUP, "the worker to take the lease", up)
    first = _worker_child(up)
    assert first is not None

    first.kill()  # SIGKILL
    killed = time.monotonic()
    _wait(lambda: (c := _worker_child(up)) is not None and c.pid != first.pid, 60, "a new worker", up)
    restarted = time.monotonic() - killed
    assert "lifelong up: worker exited with code -9; restarting in 1s" in up.output()
    _wait(
        lambda: up.output().count("acquired the worker lease") == 2, LEASE + 120, "the new worker to lead", up
    )
    leading = time.monotonic() - killed
    assert "standby" not in up.output()  # `up` freed the dead worker's lease: no wait for it to expire
    second = _worker_child(up)
    assert second is not None and _live(port).get("champion") == 1  # serving never stopped
    print(f"\nworker restarted {restarted:.2f}s after SIGKILL (backoff 1s), leading after {leading:.2f}s "
          f"(lease {LEASE}s)")  # fmt: skip

    killed = time.monotonic()
    up.popen.send_signal(signal.SIGKILL)
    up.popen.wait(10)
    try:
        _wait(lambda: _gone(second), 30, "the orphaned worker to exit")
    except AssertionError as e:  # say where it hangs
        dump = subprocess.run(
            [str(Path(sys.executable).parent / "py-spy"), "dump", "--pid", str(second.pid)],
            capture_output=True,
            text=True,
        )
        raise AssertionError(f"{e}\n--- up.log\n{up.output()[-3000:]}\n--- py-spy\n{dump.stdout}") from None
    print(f"worker exited {time.monotonic() - killed:.2f}s after its `up` was SIGKILLed")
    with Store(data_dir=tmp_path / "data") as store:  # it stopped cleanly: the lease was given back
        assert store.lease("worker") is None
        assert [e.payload["state"] for e in store.events(EventKind.WORKER)][-1] == "stopped"


# --- 3. corrupted champion -------------------------------------------------------------------------
@pytest.mark.parametrize("verify", [True, False])
def test_corrupted_champion_falls_back_to_the_newest_intact_version(tmp_path: Path, verify: bool) -> None:
    data = toy_data(per_class=30).train
    with Store(data_dir=tmp_path) as store:
        registry = Registry(store)
        for seed in (0, 1):  # v1, then v2 as champion
            bootstrap(store, registry, data, n_classes=4, epochs=1, seed=seed)
        assert registry.alias("champion") == 2
        (tensors,) = registry.get(2).path.glob("*.safetensors")
    original = tensors.read_bytes()
    raw = bytearray(original)
    raw[len(raw) // 2 :] = bytes(len(raw) - len(raw) // 2)  # zero the second half of the weights
    tensors.write_bytes(bytes(raw))

    with System(data_dir=tmp_path, auth=False, verify_artifacts=verify) as system:
        assert system.live_versions()["champion"][0] == 1
        assert system.predict(data.x[:2].numpy())[0]["version"] == 1
        assert system.degraded and "champion v2 cannot be loaded" in system.degraded[0], system.degraded
        (event,) = system.store.events(EventKind.SERVER)
        assert event.payload["state"] == "fallback" and (
            event.payload["version"],
            event.payload["serving"],
        ) == (2, 1)
        system._wanted = None  # a poll that re-reads the same aliases: one event per failure, not per poll
        system.reload()
        assert len(system.store.events(EventKind.SERVER)) == 1 and system.degraded

        tensors.write_bytes(original)  # the operator restores the artifact from a backup
        system._retry_at = 0.0  # the next try is due (every RETRY_CHAMPION_SECONDS while degraded)
        assert system.reload() and system.degraded == []
        assert system.live_versions()["champion"][0] == 2
        assert [e.payload["state"] for e in system.store.events(EventKind.SERVER)] == [
            "fallback",
            "recovered",
        ]

        system.registry.set_alias("champion", 1)  # the operator points the champion at a good version
        assert system.reload() and system.degraded == []
        assert system.live_versions()["champion"][0] == 1


def test_corrupted_champion_with_no_intact_version_refuses_to_serve(tmp_path: Path) -> None:
    with Store(data_dir=tmp_path) as store:
        registry = Registry(store)
        bootstrap(store, registry, toy_data(per_class=30).train, n_classes=4, epochs=1)
        (tensors,) = registry.get(1).path.glob("*.safetensors")
    tensors.write_bytes(b"garbage")
    with System(data_dir=tmp_path, auth=False) as system:
        assert not system.holder.ready
        assert system.degraded and "no earlier version is intact" in system.degraded[0]
        # a deployed champion that cannot load: 503 with the reason, not 404 "no champion is deployed"
        with pytest.raises(ChampionUnavailableError, match="v1 cannot be loaded .*promote an intact version"):
            system.predict(np.zeros((1, 8), dtype=np.float32))
        assert status_of(ChampionUnavailableError("x")) == 503


# --- 4. several replicas on PostgreSQL -------------------------------------------------------------
@pytest.mark.postgres
def test_two_replicas_follow_the_worker_and_the_canary_is_judged_once(
    pg_url: str, tmp_path: Path, spawn: Callable[..., Proc]
) -> None:
    _seed(pg_url, tmp_path)
    ports = [free_port(), free_port()]
    env = {"LIFELONG_POLL_SECONDS": str(POLL), "LIFELONG_TORCH_THREADS": "1"}
    servers = [spawn(["serve", "--db-url", pg_url, "--data-dir", str(tmp_path), "--port", str(p), "--no-auth"],
                     f"serve-{p}", env) for p in ports]  # fmt: skip
    worker = spawn(_worker_args(pg_url, tmp_path, "--policy", "manual"), "worker")
    procs = (*servers, worker)
    _wait(
        lambda: all(_live(p).get("champion") == 1 for p in ports),
        STARTUP,
        "both replicas to serve v1",
        *procs,
    )
    _wait(lambda: "acquired the worker lease" in worker.output(), STARTUP, "the worker to lead", *procs)
    data = toy_data(per_class=60, seed=1).train
    with Store(pg_url, data_dir=tmp_path) as store:
        registry = Registry(store)
        store.add_samples(data.x, data.y)
        assert main(["train", "--db-url", pg_url, "--data-dir", str(tmp_path)]) == 0
        _wait(lambda: registry.alias("champion") == 2, 60, "the worker to promote v2", *procs)
        promoted = store.events(EventKind.PROMOTION)[-1].ts
        _wait(
            lambda: all(_live(p).get("champion") == 2 for p in ports), 10, "both replicas to serve v2", *procs
        )
        lag = time.time() - promoted
        print(f"\nboth replicas served the worker's promotion {lag:.2f}s after it (server poll {POLL}s)")
        assert lag < 5.0

        # A canary (v1 on half the traffic) judged on feedback sent to both replicas: the labels say
        # the canary is always right and the champion always wrong, so the rule must promote it.
        registry.set_alias("canary", 1, share=0.5)
        _wait(
            lambda: all(_live(p).get("canary") == 1 for p in ports),
            10,
            "both replicas to route to the canary",
            *procs,
        )

        def decided() -> int:
            return len(store.events(EventKind.CANARY_PROMOTION)) + len(
                store.events(EventKind.CANARY_ROLLBACK)
            )

        deadline, sent = time.monotonic() + 60, 0
        with httpx.Client(timeout=10) as client:
            while not decided():
                assert time.monotonic() < deadline, f"no canary decision after {sent} labelled predictions"
                port = ports[sent % 2]
                start = (sent * 20) % (len(data) - 20)
                r = client.post(f"http://127.0.0.1:{port}/v1/predict",
                                json={"inputs": data.x[start : start + 20].tolist()})  # fmt: skip
                assert r.status_code == 200, r.text
                for p in r.json()["predictions"]:
                    label = p["label"] if p["variant"] == "canary" else (p["label"] + 1) % 4
                    f = client.post(f"http://127.0.0.1:{port}/v1/feedback",
                                    json={"prediction_id": p["id"], "label": label})  # fmt: skip
                    assert f.status_code == 204, f.text
                sent += 1
        _wait(
            lambda: all(_live(p) == {"champion": 1} for p in ports),
            10,
            "both replicas to serve the promoted canary",
            *procs,
        )
        time.sleep(5 * POLL)  # more polls of the worker and both servers: nobody decides again
        assert len(store.events(EventKind.CANARY_PROMOTION)) == 1 and not store.events(
            EventKind.CANARY_ROLLBACK
        )
        assert registry.alias("champion") == 1 and registry.alias("canary") is None


# --- 5. retention ------------------------------------------------------------------------------------
def _count(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(samples)).scalar_one())


def test_worker_applies_retention_and_collects_old_artifacts(
    tmp_path: Path, spawn: Callable[..., Proc]
) -> None:
    db_url = f"sqlite:///{tmp_path / 'lifelong.db'}"
    _seed(db_url, tmp_path)
    data = toy_data(per_class=60, seed=1).train
    with Store(db_url, data_dir=tmp_path) as store:
        registry = Registry(store)
        champion = registry.get(1)
        for parent in range(1, 7):  # v2..v7, each continuing the last; the champion stays v1
            with registry.publish(strategy="naive", parent=parent) as draft:
                for f in champion.path.iterdir():
                    (draft.path / f.name).write_bytes(f.read_bytes())
        worker = spawn(_worker_args(db_url, tmp_path, "--policy", "manual", "--keep-samples", "1000",
                                    "--keep-versions", "2", "--retention-every", "0.5"), "worker")  # fmt: skip
        _wait(lambda: "acquired the worker lease" in worker.output(), STARTUP, "the worker to lead", worker)
        counts = []
        for _ in range(30):  # 30 x 200 samples, faster than the worker deletes them at times
            store.add_samples(data.x[:200], data.y[:200])
            counts.append(_count(store))
            time.sleep(0.1)
        _wait(lambda: _count(store) <= 1000, 10, "retention to bring the store back to 1000 samples", worker)
        print(f"\nsamples after each write of 200 with --keep-samples 1000: {counts}")
        assert max(counts) < 3000, counts  # bounded while writing: ~6000 were written
        assert len(store.events(EventKind.RETENTION)) >= 2
        _wait(
            lambda: [v.version for v in registry.versions()] == [1, 6, 7], 10, "old artifacts to go", worker
        )
        assert not (registry.artifacts_dir / "v2").exists() and not (registry.artifacts_dir / "v5").exists()
        for v in (1, 6, 7):  # the champion and the last two stay loadable
            registry.verify(v)
