"""The worker as a real process: killed mid-training it loses nothing and the next run registers a version."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import sqlalchemy as sa
import torch

from lifelong.checks import toy_data
from lifelong.data.dataset import Dataset
from lifelong.learn.learner import Learner
from lifelong.system.app import create_app
from lifelong.system.contract import Contract
from lifelong.system.events import EventKind, describe
from lifelong.system.policy import Policy, preset
from lifelong.system.registry import Registry, model_versions
from lifelong.system.service import System
from lifelong.system.settings import Settings
from lifelong.system.store import Store, feedback, samples
from lifelong.system.trainer import Gate, bootstrap
from lifelong.system.worker import DATA_CURSOR, LEASE, Worker
from tests.system._serve import running

LENIENT = {"max_new_accuracy_drop": 1.0, "max_old_accuracy_drop": 1.0, "max_negative_flip_rate": 1.0}


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[tuple[Store, Registry, Dataset]]:
    split = toy_data(per_class=90)
    with Store(data_dir=tmp_path) as store:
        registry = Registry(store)
        bootstrap(store, registry, split.train, n_classes=4, epochs=2, lr=0.05, batch_size=16)
        yield store, registry, split.train


def _count(store: Store, table: sa.Table) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def _start(data_dir: Path, epochs: int, *extra: str) -> subprocess.Popen[bytes]:
    policy = json.dumps({"epochs": epochs, "min_samples": 50, "drift_window": 50})
    cmd = [sys.executable, "-m", "lifelong", "worker", "--data-dir", str(data_dir), "--poll", "0.1",
           "--policy", "scheduled-finetune", "--every", "100", "--policy-json", policy,
           "--gate-json", json.dumps(LENIENT), *extra]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait(predicate, timeout: float, what: str, proc: subprocess.Popen[bytes]) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(
                f"worker exited early waiting for {what}: {proc.stderr.read().decode()[-2000:]}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_sigkill_during_training_loses_nothing_and_restart_registers(
    seeded: tuple[Store, Registry, Dataset], tmp_path: Path
) -> None:
    store, registry, data = seeded
    store.add_samples(data.x, data.y)
    acked_samples, acked_feedback = _count(store, samples), 0  # the bootstrap data is kept too

    def acknowledge(n: int) -> None:  # a client whose writes were acknowledged while the worker runs
        nonlocal acked_samples, acked_feedback
        for i in range(n):
            j = (acked_samples + i) % len(data)
            (sid,) = store.add_samples(data.x[j : j + 1])
            pid = store.add_prediction(1, 0, sample_id=sid)
            store.add_feedback(pid, int(data.y[j]))
            acked_samples, acked_feedback = acked_samples + 1, acked_feedback + 1

    proc = _start(tmp_path, epochs=400)  # long enough to be killed in the middle
    try:
        _wait(lambda: acknowledge(2) or bool(store.events("training")), 60, "training to start", proc)
        acknowledge(20)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        acknowledge(10)
    finally:
        proc.kill()
    assert not registry.versions()[1:], "a killed training registered a version"
    proc = _start(tmp_path, epochs=2)
    try:
        _wait(
            lambda: any(g.payload["version"] for g in store.events("gate")), 90, "a registered version", proc
        )
        proc.send_signal(signal.SIGTERM)  # graceful: the loop ends and the process exits 0
        assert proc.wait(30) == 0
    finally:
        proc.kill()
    assert _count(store, samples) == acked_samples and _count(store, feedback) == acked_feedback
    with store.engine.connect() as conn:
        statuses = conn.execute(sa.select(model_versions.c.status)).scalars().all()
    assert set(statuses) == {"ready"} and registry.alias("champion") == 2
    registry.verify(2)
    leftovers = [p for p in (registry.artifacts_dir / ".staging").iterdir() if not p.name.endswith(".lock")]
    assert not leftovers and not os.path.exists(registry.artifacts_dir / "v3")


def test_a_worker_killed_outright_is_not_ready_once_its_lease_expires(
    seeded: tuple[Store, Registry, Dataset], tmp_path: Path
) -> None:
    """Was: with no standby, /readyz still said ready until the killed worker's heartbeat was
    LIFELONG_WORKER_STALE_SECONDS (30 s) old, although its lease (3 s here) had long expired."""
    store = seeded[0]
    lease_seconds, stale_seconds = 3.0, 30.0
    proc = _start(tmp_path, 1, "--lease-seconds", str(lease_seconds))
    app = create_app(Settings(data_dir=tmp_path, auth=False, worker_stale_seconds=stale_seconds))
    with running(app) as url:
        try:
            _wait(lambda: httpx.get(f"{url}/readyz", timeout=10).status_code == 200, 120, "ready", proc)
            lease = store.lease("worker")
            assert (
                lease is not None and "lifelong_worker_up 1" in httpx.get(f"{url}/metrics", timeout=10).text
            )
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            killed, deadline = time.monotonic(), time.monotonic() + stale_seconds - 5
            while (r := httpx.get(f"{url}/readyz", timeout=10)).status_code == 200:
                assert time.monotonic() < deadline, "the killed worker still counts as ready"
                time.sleep(0.1)
            gone = time.monotonic() - killed
            metrics = httpx.get(f"{url}/metrics", timeout=10).text
        finally:
            proc.kill()
    assert gone <= lease_seconds + 3, gone  # its lease ran out, not the heartbeat's 30 s
    assert r.status_code == 503 and len(r.json()["reasons"]) == 1, r.json()
    (reason,) = r.json()["reasons"]
    print(f"SIGKILL to /readyz 503: {gone:.1f} s (lease {lease_seconds:g} s)")
    assert f"the worker {lease.holder} is gone: its lease expired" in reason and "lifelong worker" in reason
    assert "lifelong_worker_up 0" in metrics


def test_bad_candidate_from_shuffled_labels_is_stopped(seeded: tuple[Store, Registry, Dataset]) -> None:
    store, registry, data = seeded
    store.add_samples(data.x, data.y)
    shuffle = lambda d: d.replace(y=d.y[torch.randperm(len(d), generator=torch.Generator().manual_seed(0))])  # noqa: E731
    policy = Policy("scheduled-finetune", every_samples=100, epochs=3, drift_test=None)
    attempts: list[dict] = []
    result = Worker(store, registry, policy, Gate(), prepare=shuffle, on_attempt=attempts.append).step()
    assert result is not None and result.trained and not result.passed, result
    assert [a["passed"] for a in attempts] == [False] and attempts[0]["parent"] == 1  # what MLflow gets
    assert registry.alias("champion") == 1 and len(registry.versions()) == 1
    assert store.events("gate")[-1].payload == attempts[0] == result.attempt  # the one record, as stored


def test_keep_versions_below_one_is_refused_when_the_worker_is_built(
    seeded: tuple[Store, Registry, Dataset],
) -> None:
    """0 was accepted and then raised in every housekeeping pass, a traceback a minute."""
    from lifelong.errors import ConfigError

    store, registry, _ = seeded
    with pytest.raises(ConfigError, match=r"keep_versions=0: keep at least 1"):
        Worker(store, registry, Policy("continual"), keep_versions=0)


def test_the_worker_keeps_working_once_retention_collected_old_versions(
    seeded: tuple[Store, Registry, Dataset],
) -> None:
    """Was: every poll failed on the champion's lineage (``no model version 1``) once v1's artifact went."""
    store, registry, data = seeded
    policy = Policy("scheduled-finetune", every_samples=100, epochs=1, drift_test=None)
    worker = Worker(store, registry, policy, Gate(**LENIENT), keep_versions=1, housekeeping_seconds=0)
    for _ in range(3):  # v2, v3, v4, each trained from the last and promoted
        store.add_samples(data.x[:150], data.y[:150])
        assert worker.step().passed
    assert registry.alias("champion") == 4
    assert [v.version for v in registry.versions(collected=True) if v.collected] == [1, 2, 3]
    store.add_samples(data.x[:150], data.y[:150])
    result = worker.step()  # the lineage walk reads the collected versions' records
    assert result is not None and result.trained and worker.expected_accuracy(5 if result.passed else 4)


@pytest.mark.parametrize("kind", ["scheduled-retrain", "scheduled-finetune"])
def test_a_schedule_counts_labels_after_the_last_window_not_its_holdout_again(
    seeded: tuple[Store, Registry, Dataset], kind: str
) -> None:
    """Was: the count of new labels started after the training part, so the holdout (the newest fifth,
    trained on next time) counted as new: with every_samples at most its size the worker retrained
    every poll on no new labels (v4, v5, v6 on one window), and any schedule fired that much early."""
    store, registry, data = seeded
    policy = Policy(kind, every_samples=30, min_samples=1, epochs=1, drift_test=None)
    worker = Worker(store, registry, policy, Gate(**LENIENT))
    store.add_samples(data.x[:200], data.y[:200])
    first = worker.step()
    assert first is not None and first.trained and first.figures["n_holdout"] >= 30
    assert worker.step() is None and worker.step() is None  # no new labels: nothing to train
    assert len(store.events(EventKind.GATE)) == 1
    assert worker.decide().reason == "no new labelled samples"
    store.add_samples(data.x[:29], data.y[:29])
    assert worker.step() is None and worker.decide().reason == "nothing triggered"  # 29 < 30
    store.add_samples(data.x[29:30], data.y[29:30])
    again = worker.step()
    assert again is not None and again.trained and again.attempt["reason"].startswith("schedule: 30 new")
    if kind == "scheduled-finetune":  # the earlier holdout is still trained on, once
        assert again.figures["n_train"] + again.figures["n_holdout"] == first.figures["n_holdout"] + 30


def test_an_ab_worker_refuses_to_take_over_a_live_canary_at_share_1(
    seeded: tuple[Store, Registry, Dataset],
) -> None:
    """Was: a canary deployed at share 1 under the threshold rule stayed live when a worker with the
    A/B test took the lease, and waited unjudged for ever (the champion's arm is empty)."""
    from lifelong.errors import ConfigError
    from lifelong.system.policy import CanaryRule
    from lifelong.system.worker import LEASE

    store, registry, data = seeded
    with registry.publish(strategy="naive", parent=1) as draft:
        Learner.load(registry.get(1).path).save(draft.path)
    registry.set_alias("canary", 2, share=1.0)  # allowed: the threshold rule judges it
    before = registry.aliases()
    worker = Worker(store, registry, preset("continual"), canary=CanaryRule(test="ab"))
    with pytest.raises(ConfigError, match=r"the live canary v2 at share 1 takes all traffic") as err:
        worker.holds_lease()
    assert "lifelong promote 2 --alias canary --share 0.5" in str(err.value)
    assert "lifelong undeploy canary" in str(err.value)
    assert "\n" not in str(err.value)
    assert store.lease(LEASE) is None and registry.aliases() == before  # nothing held, nothing moved
    assert not store.events(EventKind.WORKER)  # no rule recorded that cannot judge the canary
    assert Worker(store, registry, preset("continual")).holds_lease()  # the threshold rule takes it


def test_a_failing_training_backs_off_instead_of_running_every_poll(
    seeded: tuple[Store, Registry, Dataset],
) -> None:
    """Was: a request whose training raised was tried again at every poll (55 failures in 30 s)."""
    store, registry, data = seeded
    store.add_samples(data.x, data.y)
    broken = True

    def prepare(d: Dataset) -> Dataset:
        if broken:
            raise RuntimeError("the plugin's forward failed")
        return d

    worker = Worker(store, registry, preset("manual"), Gate(**LENIENT), prepare=prepare)
    store.add_event(EventKind.TRAIN_REQUEST, {"reason": "by hand"})
    failed = lambda: [e.payload for e in store.events("training") if e.payload["state"] == "failed"]  # noqa: E731
    for expected in ([1], [1]):  # the second poll comes within the back-off: nothing runs
        with contextlib.suppress(RuntimeError):
            worker.step()
        assert [p["failures"] for p in failed()] == expected and failed()[-1]["retry_in"] == 5.0
    worker._retry_at = 0.0  # 5 s later
    with pytest.raises(RuntimeError):
        worker.step()
    assert [(p["failures"], p["retry_in"]) for p in failed()] == [(1, 5.0), (2, 10.0)]  # doubling
    broken, worker._retry_at = False, 0.0
    result = worker.step()
    assert result is not None and result.trained and worker._failures == 0


def test_the_cpu_of_failed_trainings_counts_against_the_daily_budget(
    seeded: tuple[Store, Registry, Dataset],
) -> None:
    """Only gate events were summed: a training failing inside its ranks was retried at every back-off
    with no limit from cpu_budget_per_day, and /metrics showed no CPU for it."""
    store, registry, data = seeded
    store.add_samples(data.x, data.y)

    def prepare(d: Dataset) -> Dataset:
        sum(i * i for i in range(300_000))  # some CPU, then the failure
        raise RuntimeError("the plugin's forward failed")

    policy = preset("scheduled-finetune", every_samples=50, cpu_budget_per_day=1e-6, drift_test=None)
    worker = Worker(store, registry, policy, Gate(**LENIENT), prepare=prepare)
    with pytest.raises(RuntimeError):
        worker.step()
    (failed,) = [e for e in store.events(EventKind.TRAINING) if e.payload["state"] == "failed"]
    assert failed.payload["train_cpu_seconds"] > 0
    assert worker.state().cpu_seconds_today == pytest.approx(failed.payload["train_cpu_seconds"])
    worker._retry_at = 0.0
    decision = worker.decide()
    assert not decision.train and decision.reason.startswith("budget"), decision


def test_a_worker_that_lost_its_lease_in_a_step_leaves_the_canary_and_retention_alone(
    seeded: tuple[Store, Registry, Dataset], monkeypatch: pytest.MonkeyPatch
) -> None:
    """After 'training interrupted: lost its lease' it went on to apply the canary rule and delete samples
    by its own retention settings while the new holder trained."""
    store, registry, data = seeded
    store.add_samples(data.x, data.y)
    worker = Worker(store, registry, preset("manual"), Gate(**LENIENT))
    assert worker.holds_lease()
    store.add_event(EventKind.TRAIN_REQUEST, {"reason": "by hand"})
    assert store.acquire_lease("worker", "elsewhere:1:abc", 600, now=time.time() + 3600)  # taken meanwhile
    called = []
    monkeypatch.setattr(worker, "housekeeping", lambda: called.append("housekeeping"))
    worker._last_housekeeping = 0.0
    assert worker.step() is None and called == []


def test_a_request_without_new_labels_is_answered_by_an_attempt_saying_so(
    seeded: tuple[Store, Registry, Dataset],
) -> None:
    """Was: `lifelong train` said the worker would start at its next poll, and nothing ever happened."""
    store, registry, _ = seeded
    worker = Worker(store, registry, preset("manual"), Gate(**LENIENT))
    store.add_event(EventKind.TRAIN_REQUEST, {"reason": "by hand"})
    result = worker.step()
    assert result is not None and not result.trained and "send labels first" in result.reasons[0]
    assert worker.step() is None  # answered once, not retried every poll
    assert len(store.events(EventKind.GATE)) == 1 and registry.alias("champion") == 1


def test_a_request_sent_while_a_training_runs_is_answered_by_the_next_one(
    seeded: tuple[Store, Registry, Dataset],
) -> None:
    """The gate event closed every request older than itself, one sent during the training included:
    `lifelong train` said the worker would start it, and nothing ever did."""
    store, registry, data = seeded
    store.add_samples(data.x, data.y)

    def prepare(d: Dataset) -> Dataset:  # while the candidate trains: new labels, and a request
        if len(store.events(EventKind.TRAIN_REQUEST)) == 1:
            store.add_samples(data.x[:40], data.y[:40])
            store.add_event(EventKind.TRAIN_REQUEST, {"reason": "again"})
        return d

    worker = Worker(store, registry, preset("manual"), Gate(**LENIENT), prepare=prepare)
    store.add_event(EventKind.TRAIN_REQUEST, {"reason": "by hand"})
    assert worker.step() is not None
    assert worker.decide().train, "the second request went unanswered"
    assert worker.step() is not None and not worker.decide().train  # answered, once
    assert len(store.events(EventKind.GATE)) == 2


def test_a_worker_asked_to_stop_mid_training_publishes_nothing(
    seeded: tuple[Store, Registry, Dataset],
) -> None:
    """Was: SIGTERM (or the death of its `up`) stopped the worker only after the whole training, which
    then published and promoted a version with no server running."""
    store, registry, data = seeded
    store.add_samples(data.x, data.y)
    worker: Worker

    def prepare(d: Dataset) -> Dataset:
        worker.stop.set()  # the signal arrives while the candidate trains
        return d

    worker = Worker(store, registry, preset("manual"), Gate(**LENIENT), prepare=prepare)
    store.add_event(EventKind.TRAIN_REQUEST, {"reason": "by hand"})
    assert worker.step() is None
    states = [e.payload["state"] for e in store.events(EventKind.TRAINING)]
    assert states == ["started", "interrupted"] and worker._failures == 0  # not a failure to back off from
    assert store.events(EventKind.GATE) == [] and registry.alias("champion") == 1
    assert [r.version for r in registry.versions()] == [1]


def test_a_training_whose_worker_was_killed_is_recorded_as_interrupted_by_the_next(
    seeded: tuple[Store, Registry, Dataset],
) -> None:
    """Was: `lifelong events` showed `training started` with no outcome after a kill -9, forever."""
    store, registry, _ = seeded
    store.add_event(EventKind.TRAINING, {"state": "started", "reason": "by hand", "mode": "finetune"})
    worker = Worker(store, registry, preset("manual"), Gate(**LENIENT))
    assert worker.holds_lease()
    last = store.events(EventKind.TRAINING)[-1].payload
    assert last["state"] == "interrupted" and "before it finished" in last["by"]
    assert worker.holds_lease() and len(store.events(EventKind.TRAINING)) == 2  # recorded once


def test_a_step_that_takes_the_lease_mid_training_does_not_call_its_own_training_interrupted(
    seeded: tuple[Store, Registry, Dataset], caplog: pytest.LogCaptureFixture
) -> None:
    """README's one-process cycle (``Worker(...).step()`` with no ``run()``): the lease is first taken
    before publishing, after this worker wrote ``training started``. Was: taking it closed that event as
    'interrupted ... nothing was published from it' (an event and a warning) and then published v2."""
    store, registry, data = seeded
    store.add_samples(data.x, data.y)
    store.add_event(EventKind.TRAIN_REQUEST, {"reason": "by hand"})
    worker = Worker(store, registry, preset("manual"), Gate(**LENIENT))
    with caplog.at_level(logging.WARNING, logger="lifelong"):
        assert worker.step() is not None
    assert [e.payload["state"] for e in store.events(EventKind.TRAINING)] == ["started"]
    assert registry.alias("champion") == 2 and "never finished" not in caplog.text


def test_a_lease_retaken_while_the_started_event_is_written_does_not_close_it(
    seeded: tuple[Store, Registry, Dataset], caplog: pytest.LogCaptureFixture
) -> None:
    """The heartbeat thread re-takes a lost lease (and closes dangling trainings) whenever it runs: between
    the ``started`` event's write and the worker learning its id, it took that event for a dead worker's."""
    store, registry, data = seeded
    store.add_samples(data.x, data.y)
    store.add_event(EventKind.TRAIN_REQUEST, {"reason": "by hand"})
    worker = Worker(store, registry, preset("manual"), Gate(**LENIENT))
    real_add = store.add_event
    retaken = []

    def add_event(kind: EventKind, payload: dict[str, Any]) -> int:
        event = real_add(kind, payload)
        if kind == EventKind.TRAINING and payload.get("state") == "started":
            worker._close_dangling_training()  # the heartbeat, inside the window
            retaken.append(event)
        return event

    store.add_event = add_event  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="lifelong"):
        assert worker.step() is not None
    assert retaken and [e.payload["state"] for e in store.events(EventKind.TRAINING)] == ["started"]
    assert registry.alias("champion") == 2 and "never finished" not in caplog.text
    assert worker._training_event is None


def test_a_store_outage_is_waited_out_in_one_log_line_not_a_crash(
    seeded: tuple[Store, Registry, Dataset], caplog: pytest.LogCaptureFixture
) -> None:
    """Was: the standby lookup after a failed lease renewal raised out of the loop, so the worker
    died (and was restarted by `up`) with a traceback every poll while the database was down."""
    store, registry, _ = seeded
    down = threading.Event()
    down.set()
    real_acquire = store.acquire_lease
    steps: list[int] = []

    def acquire(*args: Any, **kwargs: Any) -> bool:
        if down.is_set():
            raise sa.exc.OperationalError("SELECT", {}, Exception("connection refused"))
        return real_acquire(*args, **kwargs)

    real_lease = store.lease

    def lease(*args: Any, **kwargs: Any) -> Any:
        if down.is_set():
            raise sa.exc.OperationalError("SELECT", {}, Exception("connection refused"))
        return real_lease(*args, **kwargs)

    store.acquire_lease, store.lease = acquire, lease  # type: ignore[method-assign]
    worker = Worker(store, registry, preset("manual"), poll_seconds=0.01)
    worker.step = lambda: steps.append(1)  # type: ignore[method-assign]
    thread = threading.Thread(target=worker.run)
    with caplog.at_level(logging.INFO, logger="lifelong.system.worker"):
        thread.start()
        time.sleep(0.3)  # about 30 polls with the store down
        assert thread.is_alive() and not steps
        down.clear()
        deadline = time.monotonic() + 10
        while not steps and time.monotonic() < deadline:
            time.sleep(0.01)
        worker.stop.set()
        thread.join(10)
    assert steps and not thread.is_alive()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("the store is unreachable" in m for m in messages) == 1  # once per outage
    assert "the store is reachable again" in messages and not any(r.exc_info for r in caplog.records)


def test_failed_trainings_are_counted_in_metrics(
    seeded: tuple[Store, Registry, Dataset], tmp_path: Path
) -> None:
    """Was: /metrics showed only the latest outcome, so failures between two scrapes went unseen."""
    store, registry, data = seeded
    store.add_samples(data.x, data.y)

    def prepare(d: Dataset) -> Dataset:
        raise RuntimeError("the plugin's forward failed")

    worker = Worker(store, registry, preset("manual"), Gate(**LENIENT), prepare=prepare)
    store.add_event(EventKind.TRAIN_REQUEST, {"reason": "by hand"})
    with running(create_app(Settings(data_dir=tmp_path, auth=False))) as url:

        def failures() -> int:
            text = httpx.get(f"{url}/metrics", timeout=10).text
            assert "# HELP lifelong_training_failures_total " in text
            assert "# TYPE lifelong_training_failures_total counter" in text
            return int(
                next(
                    ln for ln in text.splitlines() if ln.startswith("lifelong_training_failures_total ")
                ).split()[1]
            )

        assert failures() == 0
        for expected in (1, 2):
            worker._retry_at = 0.0  # past the back-off
            with pytest.raises(RuntimeError):
                worker.step()
            assert failures() == expected


def test_monitors_write_drift_events_and_continual_trains_on_them(
    seeded: tuple[Store, Registry, Dataset],
) -> None:
    store, registry, data = seeded
    policy = Policy("continual", min_samples=50, drift_window=100, strategy_params={"buffer_size": 50})
    worker = Worker(store, registry, policy, Gate(**LENIENT))
    store.add_samples(data.x[:100], data.y[:100])
    assert worker.step() is None  # like the champion's training data: nothing fired
    first = store.add_samples(data.x[100:200] + 4.0, data.y[100:200])[0]  # a covariate shift
    assert worker.step() is None  # one drifting block is not enough (persistence 2)
    store.add_samples(data.x[200:300] + 4.0, data.y[200:300])
    result = worker.step()
    (event,) = store.events("data_drift")
    assert event.payload["drift"] and event.payload["first"] == first
    assert result is not None and result.passed and registry.alias("champion") == 2
    assert registry.get(2).window[0] >= first  # trained after the change point, not before it
    assert worker.state().drift is False  # consumed by that training


def test_auto_drift_test_compares_token_frequencies_for_a_model_that_takes_token_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: KS per position read token ids as quantities (on rows of one corpus it reported drift in
    14.5% of window pairs at alpha 0.05). ``drift_test="auto"`` gives a token model the token test,
    without its padding id, and a feature model KS."""
    from torch import nn

    from lifelong.learn import models
    from lifelong.learn.models import register_model
    from lifelong.monitor import KSDrift

    class Words(nn.Module):
        def __init__(self, n_classes: int) -> None:
            super().__init__()
            self.features = nn.Sequential(nn.Embedding(300, 8, padding_idx=0), nn.Flatten())
            self.classifier = nn.Linear(8 * 12, n_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.classifier(self.features(x))

    monkeypatch.setattr(models, "MODELS", dict(models.MODELS))
    register_model("words")(Words)
    rng = np.random.default_rng(0)

    def documents(n: int, words: np.ndarray) -> torch.Tensor:  # 4-12 words, then padding (id 0)
        rows = np.zeros((n, 12))
        for i in range(n):
            k = rng.integers(4, 13)
            rows[i, :k] = words[np.minimum(rng.zipf(1.5, size=k), len(words)) - 1]
        return torch.as_tensor(rows, dtype=torch.float32)

    old, new = np.arange(1, 150), np.arange(150, 300)  # the stream's vocabulary changes
    data = Dataset(documents(200, old), torch.as_tensor(rng.integers(0, 2, 200)), None, 1.0, "words")
    with Store(data_dir=tmp_path / "words") as store:
        registry = Registry(store)
        bootstrap(store, registry, data, model="words", n_classes=2, epochs=1)
        policy = Policy("continual", drift_window=100, min_samples=10**6)
        worker = Worker(store, registry, policy, Gate(**LENIENT))
        store.add_samples(documents(100, old), None)
        worker.step()
        assert worker._drift_test is not None and worker._drift_test().pad_id == 0  # type: ignore[attr-defined]
        assert store.events("data_drift") == []
        for _ in range(2):
            store.add_samples(documents(100, new), None)
            worker.step()
        (event,) = store.events("data_drift")
        assert event.payload["monitor"] == "tokens"
        assert {1, 150} <= set(event.payload["details"]["tokens"])  # the commonest word gone, and come
        assert "token shares moved by" in describe(EventKind.DATA_DRIFT, event.payload)
    with Store(data_dir=tmp_path / "features") as store:
        registry = Registry(store)
        bootstrap(store, registry, toy_data(per_class=90).train, n_classes=4, epochs=1)
        worker = Worker(store, registry, Policy("continual"), Gate(**LENIENT))
        worker.step()
        assert worker._drift_test is not None and type(worker._drift_test()) is KSDrift


def test_data_drift_events_name_the_drifted_features_of_a_named_schema(tmp_path: Path) -> None:
    split = toy_data(per_class=90)
    names = [f"sensor_{i}" for i in range(8)]
    with Store(data_dir=tmp_path) as store:
        registry = Registry(store)
        bootstrap(store, registry, split.train, n_classes=4, epochs=1, feature_names=names)
        worker = Worker(
            store, registry, Policy("continual", drift_window=100, min_samples=10**6), Gate(**LENIENT)
        )
        shift = torch.zeros(8)
        shift[[2, 5]] = 4.0  # two sensors recalibrated
        store.add_samples(split.train.x[:100], split.train.y[:100])
        worker.step()
        for part in (slice(100, 200), slice(200, 300)):
            store.add_samples(split.train.x[part] + shift, split.train.y[part])
            worker.step()
        (event,) = store.events("data_drift")
        details = event.payload["details"]
        assert details["drifted_feature_names"] == [names[i] for i in details["drifted_features"]]
        assert {"sensor_2", "sensor_5"} <= set(details["drifted_feature_names"])


def test_the_floor_dates_the_change_and_the_training_starts_there(tmp_path: Path) -> None:
    """Live accuracy under the floor: the worker locates where the champion's errors rose and reports
    a performance drift from that sample, so the next window begins at the change."""
    data = toy_data(per_class=150).train  # the rule the champion learned, until sample 251
    with Store(data_dir=tmp_path) as store:
        bootstrap(store, Registry(store), toy_data(per_class=60).train, n_classes=4, epochs=3)
    with System(data_dir=tmp_path, auth=False) as system:
        policy = preset("continual", floor_window=100, min_samples=10_000, drift_test=None)  # monitors only
        worker = Worker(system.store, system.registry, policy, Gate())
        x, y = data.x[:400].numpy(), data.y[:400].numpy()
        y[250:] = (y[250:] + 1) % 4  # the rule changes at the 251st sample
        ids = []
        for start in range(0, 400, 50):
            for p, label in zip(system.predict(x[start : start + 50]), y[start : start + 50]):
                system.feedback(p["id"], int(label))
                ids.append(p["id"])
            worker.step()
        drifts = system.store.events("performance_drift")  # Page-Hinkley's, late, and the floor's
        (event,) = [e for e in drifts if e.payload.get("detector") == "floor"]  # once per champion
        changed = system.store.prediction_samples()[ids[250]]
        assert event.payload["detector"] == "floor" and abs(event.payload["first"] - changed) <= 10, (
            event.payload
        )
        assert event.payload["error_after"] > 0.8 > 0.3 > event.payload["error_before"]
        assert event.payload["score"] == event.payload["error_after"]  # an error rate, as the detectors'
        latest = [e for e in drifts if e.id == max(d.id for d in drifts)][0].payload["score"]
        assert system.health_metrics()["drift_score"]["performance_drift"] == latest  # was never shown
        assert worker.change_point() == event.payload["first"] - 1
        state = worker.state()
        assert state.performance_drop and state.new_samples == 400 - 250 + (event.payload["first"] - changed)
        decision = preset("continual", min_samples=100).decide(state)
        assert decision.train and decision.forget and decision.reason == "performance drop detected"


def test_an_alarm_raised_against_one_champion_does_not_date_the_next_champions_window(
    seeded: tuple[Store, Registry, Dataset],
) -> None:
    """Was: a performance-drift alarm raised while v1 was champion, not yet answered by a training when
    v2 replaced it (a canary promoted, or by hand), still counted as a drift and dated the start of
    v2's next training window (observed: a window from sample 2557, dated by the old champion's alarm).
    The monitors re-arm against each champion: only the alarms raised against it apply."""
    store, registry, data = seeded
    policy = Policy("continual", min_samples=1000, drift_window=50, epochs=1, drift_test=None)
    worker = Worker(store, registry, policy, Gate(**LENIENT))
    ids = store.add_samples(data.x[:200], data.y[:200])
    page_hinkley = {"detector": "page-hinkley", "drift": True, "at": int(ids[150]), "version": 1}
    store.add_event(EventKind.PERFORMANCE_DRIFT, page_hinkley)
    floor = {"detector": "floor", "drift": True, "first": int(ids[120]), "at": int(ids[199]), "version": 1}
    store.add_event(EventKind.PERFORMANCE_DRIFT, floor)
    assert worker.change_point() == ids[120] - 1 and worker.state().performance_drop  # against v1: applies
    assert worker.step() is None  # waiting for data (min_samples): no training answers the alarms
    assert worker.decide().reason.startswith("drift detected, waiting for labelled data")  # said apart
    with registry.publish(strategy="naive", parent=1) as draft:  # v2, as a canary would be
        for f in registry.get(1).path.iterdir():
            (draft.path / f.name).write_bytes(f.read_bytes())
    registry.set_alias("champion", 2)  # v1 replaced before a training answered its alarms
    assert worker.change_point() is None and not worker.state().performance_drop
    assert worker.decide().reason.startswith("waiting for data")
    store.add_event(EventKind.TRAIN_REQUEST, {"reason": "test"})
    result = worker.step()  # re-arms against v2; the request trains on the labels since the last window
    assert result is not None and result.trained, result
    (started,) = [e.payload for e in store.events(EventKind.TRAINING) if e.payload["state"] == "started"]
    assert started["since"] is None, started
    assert result.attempt["window"][0] == ids[0], result.attempt["window"]
    # an alarm raised against the new champion dates its next window, as before
    store.add_samples(data.x[:100], data.y[:100])
    store.add_event(EventKind.PERFORMANCE_DRIFT, {**page_hinkley, "version": registry.alias("champion")})
    assert worker.change_point() == ids[150] - policy.drift_window and worker.state().performance_drop


def _concept(seed: int, n: int, weights: np.ndarray, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """30 features; the class is the argmax of three linear scores (the concept is ``weights``)."""
    x = np.random.default_rng(seed).normal(size=(n, 30)).astype(np.float32) + shift
    return x, ((x - shift) @ weights.T).argmax(1)


def _stream_through(
    system: System, worker: Worker, x: np.ndarray, y: np.ndarray, delay: int = 100
) -> list[bool]:
    """Predict in chunks of 50, label each prediction ``delay`` samples later, let the worker poll."""
    correct: list[bool] = []
    pending: list[tuple[str, int]] = []
    for start in range(0, len(x), 50):
        preds = system.predict(x[start : start + 50])
        for p, label in zip(preds, y[start : start + 50]):
            correct.append(p["label"] == int(label))
            pending.append((p["id"], int(label)))
        while len(pending) > delay:
            system.feedback(*pending.pop(0))
        worker.step()
        system.reload()
    return correct


@pytest.mark.parametrize("drift", [True, False])
def test_default_continual_policy_recovers_from_concept_drift_and_ignores_stationary_data(
    tmp_path: Path, drift: bool
) -> None:
    """The stall of issue 7: after a concept drift (new rule + covariate shift) the default continual
    policy must keep training until the champion is good again; stationary data must not train."""
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    old_w, new_w = rng.normal(size=(3, 30)), rng.normal(size=(3, 30))
    x0, y0 = _concept(1, 1500, old_w, 0.0)
    x1, y1 = _concept(2, 1000, old_w, 0.0)  # live, before the change
    x2, y2 = _concept(3, 2200, new_w, 1.0) if drift else _concept(3, 2200, old_w, 0.0)
    xt, yt = _concept(4, 1000, new_w, 1.0) if drift else _concept(4, 1000, old_w, 0.0)
    with Store(data_dir=tmp_path) as store:
        registry = Registry(store)
        bootstrap(store, registry, Dataset(torch.from_numpy(x0), torch.from_numpy(y0), None, 1.0, "tab"),
                  strategies=["replay"], strategy_params={"buffer_size": 1000}, epochs=10)  # fmt: skip
    with System(data_dir=tmp_path, auth=False) as system:
        worker = Worker(system.store, system.registry, preset("continual"), Gate())
        correct = _stream_through(system, worker, np.concatenate([x1, x2]), np.concatenate([y1, y2]))
        gates = system.store.events("gate")
        if not drift:
            assert gates == [], [g.payload["reason"] for g in gates]
            return
        final = Learner.load(system.registry.get(system.registry.alias("champion")).path)
        contract = Contract.load(system.registry.get(system.registry.alias("champion")).path)
        acc = float(
            (final.predict(torch.from_numpy(contract.transform(xt))) == torch.from_numpy(yt)).float().mean()
        )
        late = float(np.mean(correct[-500:]))
        assert acc >= 0.8 and late >= 0.75, (acc, late, [g.payload["reason"] for g in gates])
        waived = [g.payload for g in gates if g.payload.get("passed") and "judged on new data alone"
                  in " ".join(g.payload.get("warnings", []))]  # fmt: skip
        assert waived, "the new rule passed only with the old data's budgets, which it must break"


def test_a_request_with_too_few_labels_is_answered_once_not_retried_every_poll(
    seeded: tuple[Store, Registry, Dataset],
) -> None:
    store, registry, data = seeded
    worker = Worker(store, registry, Policy("manual", drift_test=None), Gate())
    store.add_samples(data.x[:3], data.y[:3])
    assert worker.step() is None  # manual: nothing without a request
    store.add_event("train_request", {"reason": "test"})
    result = worker.step()
    assert result is not None and not result.trained and "window too small" in result.reasons[0]
    assert worker.step() is None and len(store.events("gate")) == 1  # answered once
    store.add_samples(data.x[:200], data.y[:200])
    store.add_event("train_request", {"reason": "again"})
    assert worker.step().trained  # enough labels now: it trains


def test_a_too_small_window_waits_for_new_labels_instead_of_an_attempt_every_poll(tmp_path: Path) -> None:
    """Was: an unmeasured champion (or a schedule) with min_samples under the gate's min_holdout logged a
    'window too small' gate event at every poll; the labels it saw now count as seen, and the next
    attempt, min_samples labels later, trains on all of them."""
    split = toy_data(per_class=90)
    with Store(data_dir=tmp_path) as store:
        registry = Registry(store)
        bootstrap(store, registry, None, n_classes=4, input_shape=(8,))
        worker = Worker(
            store, registry, preset("continual", min_samples=10, drift_test=None), Gate(**LENIENT)
        )
        store.add_samples(split.train.x[:15], split.train.y[:15])
        result = worker.step()
        assert result is not None and "window too small" in result.reasons[0]
        assert [worker.step() for _ in range(3)] == [None] * 3 and len(store.events(EventKind.GATE)) == 1
        store.add_samples(split.train.x[15:40], split.train.y[15:40])
        result = worker.step()
        assert result is not None and result.trained and result.attempt["window"][0] == 1  # all 40


def test_a_takeover_records_whose_lease_expired_and_the_old_holder_records_its_loss(
    seeded: tuple[Store, Registry, Dataset],
) -> None:
    """Was: after the holder was SIGKILLed (or its lease ran out during a store outage) the events showed
    only the standby's 'state acquired', nothing of whom it replaced, and no 'lost' event ever, although
    the `worker` events are documented as 'lease taken or lost'."""
    store, registry, _ = seeded
    first = Worker(store, registry, preset("manual"), Gate(**LENIENT), lease_seconds=0.2)
    second = Worker(store, registry, preset("manual"), Gate(**LENIENT), lease_seconds=0.2)
    assert first.holds_lease() and not second.holds_lease()
    time.sleep(0.3)  # the first stops renewing (killed, or cut off from the store): its lease expires
    assert second.holds_lease()
    acquired = store.events(EventKind.WORKER)[-1].payload
    assert acquired["holder"] == second.holder and acquired["took_over_from"] == first.holder
    assert not first.holds_lease()  # alive again: it finds the lease taken
    lost = store.events(EventKind.WORKER)[-1].payload
    assert lost == {"state": "lost", "holder": first.holder, "to": second.holder}


def test_an_untrained_champion_is_trained_on_the_first_labels_and_measured_by_that_gate(
    tmp_path: Path,
) -> None:
    """`up --bootstrap none` (or System.bootstrap without figures): continual had no floor and trained
    only at its 5,000-label safety net; now the first min_samples labels train it, and the gate's
    measurement of the champion is the figure the floor holds later versions to."""
    split = toy_data(per_class=90)
    with Store(data_dir=tmp_path) as store:
        registry = Registry(store)
        bootstrap(store, registry, None, n_classes=4, input_shape=(8,))
        store.add_samples(split.train.x[:200], split.train.y[:200])
        worker = Worker(store, registry, preset("continual", min_samples=100, epochs=2), Gate(**LENIENT))
        assert worker.expected_accuracy(1) is None
        decision = worker.decide()
        assert decision.train and "no measured accuracy" in decision.reason
        worker.step()
        gate = store.events(EventKind.GATE, limit=1)[0].payload
        assert gate["reason"] == decision.reason and gate["passed"]
        champion = registry.alias("champion")
        assert champion == 2 and worker.expected_accuracy(2) == registry.get(2).metrics["new_accuracy"]
        assert not worker.decide().train  # measured now: nothing triggers


def test_a_refused_candidate_still_measures_the_unmeasured_champion(tmp_path: Path) -> None:
    with Store(data_dir=tmp_path) as store:
        registry = Registry(store)
        bootstrap(store, registry, None, n_classes=4, input_shape=(8,))
        worker = Worker(store, registry, preset("continual"), Gate())
        assert worker.expected_accuracy(1) is None and worker.state().unmeasured
        store.add_event(
            EventKind.GATE, {"passed": False, "parent": 1, "figures": {"champion_new_accuracy": 0.42}}
        )
        assert worker.expected_accuracy(1) == 0.42 and not worker.state().unmeasured


def test_a_bare_ancestor_measured_by_a_gate_holds_its_weak_successor_to_that_figure(
    seeded: tuple[Store, Registry, Dataset],
) -> None:
    """A champion bootstrapped without figures was measured at 0.85 by the gate of its successor, which
    passed at 0.20 on a harder stretch: the floor became 0.10, and 1,000 labels at 0.1-0.3 trained nothing."""
    store, registry, _ = seeded
    with registry.publish(strategy="naive", parent=None, params={}) as draft:  # bare: no metrics
        Learner.load(registry.get(1).path).save(draft.path)
    bare = draft.version
    store.add_event(
        EventKind.GATE, {"passed": True, "parent": bare, "figures": {"champion_new_accuracy": 0.85}}
    )
    with registry.publish(strategy="naive", parent=bare, params={}, metrics={"new_accuracy": 0.2}) as draft:
        Learner.load(registry.get(1).path).save(draft.path)
    worker = Worker(store, registry, preset("continual"), Gate(**LENIENT))
    assert worker.expected_accuracy(draft.version) == 0.85


def test_why_it_does_not_train_is_logged_once_per_kind_of_reason(
    seeded: tuple[Store, Registry, Dataset], caplog: pytest.LogCaptureFixture
) -> None:
    """A budget spent (or a cooldown) held every training back without a word in the log or the events."""
    import logging

    store, registry, data = seeded
    store.add_samples(data.x[:30], data.y[:30])
    worker = Worker(store, registry, Policy("scheduled-finetune", every_samples=100, drift_test=None), Gate())
    with caplog.at_level(logging.INFO, logger="lifelong.system.worker"):
        assert worker.step() is None
        for n in (10, 20):  # more labels, the same kind of reason: logged once
            store.add_samples(data.x[:n], data.y[:n])
            assert worker.step() is None
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("not training")]
    assert said == ["not training: waiting for data: 30 < 100"]


def test_a_drift_whose_training_was_refused_is_reported_again_while_it_persists(
    seeded: tuple[Store, Registry, Dataset],
) -> None:
    """A drift was acted on once per champion: its first candidate, judged on a holdout of a few dozen
    labels, was refused by one sample, and the drift was never reported or tried again."""
    store, registry, data = seeded
    policy = Policy("continual", min_samples=50, drift_window=100, strategy_params={"buffer_size": 50})
    worker = Worker(
        store, registry, policy, Gate(**{**LENIENT, "max_size_mb": 1e-9})
    )  # refuses every candidate
    store.add_samples(data.x[:100], data.y[:100])
    worker.step()
    for part in (slice(100, 200), slice(200, 300)):
        store.add_samples(data.x[part] + 4.0, data.y[part])
        result = worker.step()
    assert result is not None and result.trained and not result.passed
    assert len(store.events("data_drift")) == 1
    for part in (slice(0, 100), slice(100, 200)):  # (the toy set holds 288 samples)
        store.add_samples(data.x[part] + 4.0, data.y[part])
        result = worker.step()
    assert len(store.events("data_drift")) == 2  # still drifting: reported again, and tried again
    assert result is not None and result.attempt["reason"] == "data drift detected"


def test_a_champion_fine_tuned_on_a_short_window_keeps_its_lineages_data_as_the_drift_reference(
    seeded: tuple[Store, Registry, Dataset],
) -> None:
    """Was: v2 fine-tuned on 40 samples (under drift_window) had no reference, so its first block of
    shifted inputs became the normal and the shift was never reported (a user trial: 600 inputs with
    a token forced out of its range, no data_drift event)."""
    store, registry, data = seeded
    policy = Policy("continual", min_samples=10_000, drift_window=100, strategy_params={"buffer_size": 50})
    short = store.add_samples(data.x[:40], data.y[:40])
    with registry.publish(strategy="naive", parent=1, params={"mode": "finetune"}) as draft:
        Learner.load(registry.get(1).path).save(draft.path)
    store.mark_trained(short, 2)
    registry.set_alias("champion", 2)
    worker = Worker(store, registry, policy, Gate(**LENIENT))
    worker.step()
    assert worker._reference is not None and len(worker._reference) == 100  # its 40, then 60 of v1's
    for start in (40, 140):
        store.add_samples(data.x[start : start + 100] + 4.0, data.y[start : start + 100])
        worker.step()
    (event,) = store.events("data_drift")
    assert event.payload["version"] == 2


def test_a_lineage_shorter_than_a_block_still_gives_the_drift_reference(
    seeded: tuple[Store, Registry, Dataset],
) -> None:
    """Was: a champion bootstrapped from Python stores no samples, so its first fine-tuning on 160 samples
    (under drift_window=200) left no reference, the first block of shifted inputs became the normal,
    and a contrast shift every per-feature KS test flags was never reported (a trial)."""
    store, registry, data = seeded
    policy = Policy("continual", min_samples=10_000, drift_window=100, strategy_params={"buffer_size": 50})
    short = store.add_samples(data.x[:40], data.y[:40])
    with registry.publish(
        strategy="naive", parent=None, params={"mode": "finetune"}
    ) as draft:  # no ancestors
        Learner.load(registry.get(1).path).save(draft.path)
    store.mark_trained(short, 2)
    registry.set_alias("champion", 2)
    worker = Worker(store, registry, policy, Gate(**LENIENT))
    worker.step()
    assert worker._reference is not None and len(worker._reference) == 40
    for start in (40, 140):
        store.add_samples(data.x[start : start + 100] * 0.6 + 0.3, data.y[start : start + 100])
        worker.step()
    (event,) = store.events("data_drift")
    assert event.payload["version"] == 2


def test_every_judged_block_is_kept_as_the_drift_history(seeded: tuple[Store, Registry, Dataset]) -> None:
    """Only reports were stored, once per champion after two drifting blocks: no way to see that the test
    ran, nor its scores over time, as a drift library's reports show them (a trial)."""
    store, registry, data = seeded
    worker = Worker(
        store, registry, Policy("continual", min_samples=10_000, drift_window=80), Gate(**LENIENT)
    )
    worker.step()
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))  # the classes mixed
    for start, shift in ((0, 0.0), (80, 0.0), (160, 4.0), (240, 4.0)):
        rows = order[start : start + 80]
        store.add_samples(data.x[rows] + shift, data.y[rows])
        worker.step()
    checks = store.drift_checks()
    assert [c.drift for c in checks] == [False, False, True, True] and {c.version for c in checks} == {1}
    assert all(c.monitor == "ks" and c.last_id - c.first_id == 79 for c in checks)
    assert checks[2].drifted is not None and checks[2].drifted > 0 and checks[0].score is not None
    assert len(store.events("data_drift")) == 1  # the report, after two drifting blocks in a row
    assert [c.id for c in store.drift_checks(after_id=checks[1].id)] == [checks[2].id, checks[3].id]


def test_the_policys_drift_params_build_the_workers_test(seeded: tuple[Store, Registry, Dataset]) -> None:
    store, registry, _ = seeded
    worker = Worker(store, registry, Policy("continual", drift_params={"alpha": 0.01}), Gate(**LENIENT))
    worker.step()
    assert worker._drift_test is not None and worker._drift_test().alpha == 0.01


def test_a_rollback_withdraws_the_train_requests_before_it(seeded: tuple[Store, Registry, Dataset]) -> None:
    """Was: a rollback during a training asked for by hand interrupted it, and the request, still
    pending, trained again from the rolled-back champion and promoted over it 2.5 s later (a trial)."""
    store, registry, data = seeded
    with registry.publish(strategy="naive", parent=1, params={"mode": "finetune"}) as draft:
        Learner.load(registry.get(1).path).save(draft.path)
    registry.set_alias("champion", 2)
    store.add_samples(data.x, data.y)
    store.add_event(EventKind.TRAIN_REQUEST, {"reason": "by hand"})
    worker = Worker(store, registry, preset("manual"), Gate(**LENIENT))
    assert worker.state().requested
    registry.rollback("champion")
    assert registry.alias("champion") == 1 and not worker.state().requested
    store.add_event(EventKind.TRAIN_REQUEST, {"reason": "by hand, after the rollback"})
    assert worker.state().requested


def _requested_by_hand(seeded: tuple[Store, Registry, Dataset]) -> Worker:
    """A manual worker holding the lease, the store's samples labelled and a training requested."""
    store, registry, data = seeded
    store.add_samples(data.x, data.y)
    store.add_event(EventKind.TRAIN_REQUEST, {"reason": "by hand"})
    worker = Worker(store, registry, preset("manual"), Gate(**LENIENT))
    assert worker.holds_lease()
    return worker


def test_a_training_interrupted_while_the_store_is_down_is_recorded_when_it_returns(
    seeded: tuple[Store, Registry, Dataset],
) -> None:
    """Was: the `interrupted` event was written while the database was down, failed, and was lost: the
    log read as a training still running, and the worker that kept the lease never closed it."""
    store, registry, _ = seeded
    worker = _requested_by_hand(seeded)
    down = threading.Event()
    real_add, real_events = store.add_event, store.events

    def add_event(*args: Any, **kwargs: Any) -> int:
        if down.is_set():
            raise sa.exc.OperationalError("INSERT", {}, Exception("connection refused"))
        return real_add(*args, **kwargs)

    def events(*args: Any, **kwargs: Any) -> Any:
        if down.is_set():
            raise sa.exc.OperationalError("SELECT", {}, Exception("connection refused"))
        return real_events(*args, **kwargs)

    store.add_event, store.events = add_event, events  # type: ignore[method-assign]

    def prepare(d: Dataset) -> Dataset:
        worker.stop.set()  # SIGTERM, and the database goes away
        down.set()
        return d

    worker.prepare = prepare
    assert worker.train(worker.decide()) is None
    assert [e.payload["state"] for e in real_events(EventKind.TRAINING)] == ["started"]
    down.clear()
    assert worker.holds_lease()
    ended = [e.payload for e in store.events(EventKind.TRAINING)]
    assert [p["state"] for p in ended] == ["started", "interrupted"] and "asked to stop" in ended[1]["by"]
    assert worker.holds_lease() and len(store.events(EventKind.TRAINING)) == 2  # recorded once


def test_a_worker_whose_lease_was_taken_mid_training_stops_and_does_not_close_it_twice(
    seeded: tuple[Store, Registry, Dataset],
) -> None:
    """Two workers and a database outage longer than the lease: the standby took over and closed the
    training as dangling, while its worker trained on for minutes and then closed it a second time."""
    store, registry, data = seeded
    store.add_samples(data.x, data.y)
    store.add_event(EventKind.TRAIN_REQUEST, {"reason": "by hand"})
    first = Worker(store, registry, preset("manual", epochs=50), Gate(**LENIENT), lease_seconds=0.2)
    second = Worker(store, registry, preset("manual"), Gate(**LENIENT), lease_seconds=0.2)
    assert first.holds_lease()

    def prepare(d: Dataset) -> Dataset:  # cut off past its lease: the standby takes over meanwhile
        time.sleep(0.3)
        assert second.holds_lease()
        assert not first.holds_lease()  # its heartbeat learns it (events 'lost')
        return d

    first.prepare = prepare
    assert first.train(first.decide()) is None
    ended = [e.payload for e in store.events(EventKind.TRAINING)]
    assert [p["state"] for p in ended] == ["started", "interrupted"]  # closed once, by the new holder
    assert "lost its lease" in ended[1]["by"] and registry.alias("champion") == 1
    assert first._failures == 0 and store.events(EventKind.GATE) == []


def test_a_training_cut_off_by_an_outage_after_its_fit_is_closed_when_the_store_returns(
    seeded: tuple[Store, Registry, Dataset], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gate's read of old data failed with the database down, then so did the `failed` event: the
    training was never closed, and its failure never counted (one worker, outage past the fit)."""
    from lifelong.system import trainer

    store, registry, _ = seeded
    worker = _requested_by_hand(seeded)
    down = threading.Event()
    refused = sa.exc.OperationalError("SELECT", {}, Exception("connection refused"))
    real_add, real_events = store.add_event, store.events

    def gone(real: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            if down.is_set():
                raise refused
            return real(*args, **kwargs)

        return call

    def old_data(*args: Any, **kwargs: Any) -> Any:
        down.set()  # the database goes away after the fit, as the gate reads old data
        raise refused

    store.add_event, store.events = gone(real_add), gone(real_events)  # type: ignore[method-assign]
    monkeypatch.setattr(trainer, "_old_data", old_data)
    with pytest.raises(sa.exc.OperationalError):
        worker.train(worker.decide())
    assert worker._failures == 0 and [e.payload["state"] for e in real_events(EventKind.TRAINING)] == [
        "started"
    ]
    down.clear()
    assert worker.holds_lease()
    ended = store.events(EventKind.TRAINING)[-1].payload
    assert (
        ended["state"] == "interrupted" and "the store became unreachable during the training" in ended["by"]
    )
    assert ended["started"] == store.events(EventKind.TRAINING)[0].id


def test_a_change_the_champion_has_not_learned_dates_the_window_after_a_rejected_attempt(
    seeded: tuple[Store, Registry, Dataset],
) -> None:
    """A rejected attempt re-armed the drift test, which reported the same shift again from a later block;
    the next window started there, skipping the labels between (each retry got fewer, not more)."""
    store, registry, _ = seeded
    worker = Worker(store, registry, preset("continual"), Gate(**LENIENT))
    champion = registry.alias("champion")
    store.add_event(EventKind.DATA_DRIFT, {"drift": True, "first": 2801, "version": champion})
    store.add_event(EventKind.GATE, {"passed": False, "parent": champion, "window": [2801, 2869]})
    store.add_event(EventKind.DATA_DRIFT, {"drift": True, "first": 2978, "version": champion})
    assert worker.change_point() == 2977  # what the triggers since the last attempt say
    assert worker.change_point(worker._unlearned_changes()) == 2800  # where the window starts
    store.add_event(EventKind.DATA_DRIFT, {"drift": True, "first": 100, "version": champion + 7})
    assert worker.change_point(worker._unlearned_changes()) == 2800  # another version's drift: not this one's


def test_the_state_carries_the_refused_window_until_the_champion_changes(
    seeded: tuple[Store, Registry, Dataset],
) -> None:
    store, registry, _ = seeded
    worker = Worker(store, registry, preset("continual"), Gate(**LENIENT))
    champion = registry.alias("champion")
    refused = {
        "passed": False,
        "parent": champion,
        "window": [2801, 3040],
        "figures": {"n_train": 240, "n_holdout": 60},
    }
    store.add_event(EventKind.GATE, refused)
    assert worker.state().refused_window == 300
    store.add_event(EventKind.DATA_DRIFT, {"drift": True, "first": 2701, "version": champion})
    assert worker.state().refused_window == 300  # the change it was trained for: the window is retried
    store.add_event(EventKind.GATE, {**refused, "parent": champion + 1})
    assert worker.state().refused_window == 0  # trained from another champion: not this one's window
    store.add_event(EventKind.GATE, {**refused, "passed": True})
    assert worker.state().refused_window == 0
    store.add_event(EventKind.GATE, {**refused, "window": [2600, 2700]})
    assert worker.state().refused_window == 0  # the next window starts at the change, after this one


def test_a_champion_with_a_full_window_of_its_own_is_its_own_drift_reference(
    seeded: tuple[Store, Registry, Dataset],
) -> None:
    """Its ancestors' older inputs mixed in made a shift it had learned read as drift again: the same
    f0/f1 shift was reported and trained on 3 times while the stream stood still."""
    store, registry, data = seeded
    policy = Policy("continual", min_samples=10_000, drift_window=50, strategy_params={"buffer_size": 50})
    store.advance_cursor(DATA_CURSOR, len(data))  # the bootstrap inputs were tested when they came
    order = torch.randperm(
        len(data), generator=torch.Generator().manual_seed(0)
    )  # classes mixed in each block
    first, later = order[0::2], order[1::2]
    shifted = store.add_samples(data.x[first] + 4.0, data.y[first])  # the shift v2 was trained on
    with registry.publish(strategy="naive", parent=1, params={"mode": "finetune"}) as draft:
        Learner.load(registry.get(1).path).save(draft.path)
    store.mark_trained(shifted, 2)
    store.advance_cursor(DATA_CURSOR, int(shifted[-1]))
    registry.set_alias("champion", 2)
    worker = Worker(store, registry, policy, Gate(**LENIENT))
    worker.step()
    assert worker._reference is not None and len(worker._reference) == len(shifted)
    store.add_samples(data.x[later] + 4.0, data.y[later])  # more of the shifted inputs it learned
    worker.step()
    assert store.events("data_drift") == []


def test_one_worker_per_step_trains_every_time_and_a_running_one_keeps_the_lease(
    seeded: tuple[Store, Registry, Dataset],
) -> None:
    """The README's `Worker(...).step()` worked once: the first worker kept the lease, and every later one
    trained in full, then discarded its candidate as having "lost its lease"."""
    store, registry, data = seeded
    for round_ in range(2):
        store.add_samples(data.x[:60] + 0.01 * round_, data.y[:60])
        store.add_event(EventKind.TRAIN_REQUEST, {"reason": "by hand"})
        result = Worker(store, registry, preset("manual"), Gate(**LENIENT)).step()
        assert result is not None and result.passed, round_
        assert store.lease(LEASE) is None  # given back
    assert registry.alias("champion") == 3
    running = Worker(store, registry, preset("manual"), Gate(**LENIENT), lease_seconds=30)
    assert running.holds_lease()  # another worker holds the lease: a step on its own does nothing
    store.add_event(EventKind.TRAIN_REQUEST, {"reason": "by hand"})
    assert Worker(store, registry, preset("manual"), Gate(**LENIENT)).step() is None
    assert registry.alias("champion") == 3 and store.lease(LEASE).holder == running.holder


def test_a_version_whose_samples_a_later_training_took_finds_its_reference_by_its_window(
    seeded: tuple[Store, Registry, Dataset],
) -> None:
    """A sample keeps its latest trainer only: after a retraining over the same rows, a rollback to the
    earlier version found "trained on 0 samples", and the next block of inputs became the reference."""
    store, registry, data = seeded
    ids = store.add_samples(data.x[:120] + 3.0, data.y[:120])
    with registry.publish(strategy="naive", parent=1, params={"mode": "finetune"},
                          window=(int(ids[0]), int(ids[-1]))) as draft:  # fmt: skip
        Learner.load(registry.get(1).path).save(draft.path)
    with registry.publish(strategy="naive", parent=None, params={"mode": "scratch"}) as later:
        Learner.load(registry.get(1).path).save(later.path)
    store.mark_trained(ids, later.version)  # the later training took the rows
    worker = Worker(store, registry, preset("continual", drift_window=50), Gate(**LENIENT))
    reference = worker._lineage_samples(draft.version)
    assert reference is not None and len(reference) == 120  # the newest 4 * drift_window of its window
    assert np.allclose(reference, data.x[:120].reshape(120, -1).numpy() + 3.0)


def test_a_standby_of_another_policy_says_it_applies_only_once_the_active_worker_stops(
    seeded: tuple[Store, Registry, Dataset], caplog: pytest.LogCaptureFixture
) -> None:
    """A second `up --policy continual` on a live directory only logged "standby": the change looked applied."""
    store, registry, _ = seeded
    active = Worker(
        store, registry, preset("scheduled-finetune", every_samples=100), Gate(**LENIENT), lease_seconds=30
    )
    assert active.holds_lease()
    standby = Worker(store, registry, preset("continual"), Gate(**LENIENT))
    with caplog.at_level("WARNING"):
        assert not standby.holds_lease()
    assert (
        "which runs the scheduled-finetune policy: this continual one applies only once that worker stops"
        in caplog.text
    )
