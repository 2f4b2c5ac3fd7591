"""Readiness from facts (a pure function) and telling a full store from other failures."""

from __future__ import annotations

import errno
import sqlite3

import pytest
import sqlalchemy as sa

from lifelong.system.health import Facts, WriteHealth, is_storage_full, readiness_reasons, worker_alive
from lifelong.system.store import Lease

HOLDER = "host:41:abc123"
LIVE = Lease("worker", HOLDER, acquired=900.0, heartbeat=995.0, expires=1010.0)  # renewed 5 s ago, 15 s lease
READY = Facts(now=1000.0, champion_loaded=True, store_error=None, write_failure=None, unlogged_predictions=0,
              worker_lease=LIVE, worker_stale_seconds=30.0, failed_training=None)  # fmt: skip


def test_ready_only_when_every_fact_is_good() -> None:
    assert readiness_reasons(READY) == []
    cases = {
        "no champion": {"champion_loaded": False},
        "not writable": {"store_error": "disk I/O error"},
        "writes are failing": {"write_failure": "database or disk is full", "unlogged_predictions": 7},
        "no worker holds the lease": {"worker_lease": None},
        "heartbeat is 31 s old": {"worker_lease": LIVE._replace(heartbeat=969.0, expires=1060.0)},  # stuck
        "training attempt failed: boom": {"failed_training": "boom"},
        "fell back to v2": {"degraded": ("fell back to v2",)},
    }
    for expected, change in cases.items():
        reasons = readiness_reasons(Facts(**{**READY.__dict__, **change}))
        assert len(reasons) == 1 and expected in reasons[0], (expected, reasons)
    everything = Facts(**{**READY.__dict__, **{k: v for c in cases.values() for k, v in c.items()}})
    # one worker reason (the stale heartbeat); the degraded reason explains the unloaded champion
    assert len(readiness_reasons(everything)) == 5
    unloadable = {"champion_loaded": False, "degraded": ("champion v1 cannot be loaded (unknown model)",)}
    assert readiness_reasons(Facts(**{**READY.__dict__, **unloadable})) == list(unloadable["degraded"])
    # a load balancer's question: the worker and its trainings do not take serving replicas out
    loop_down = Facts(**{**READY.__dict__, "worker_lease": None, "failed_training": "boom"})
    assert len(readiness_reasons(loop_down)) == 2 and readiness_reasons(loop_down, serving_only=True) == []
    # the store is shared by every replica, which still answers from its loaded champion: a database
    # restart must not take them all out of rotation (was: store and writes counted here too)
    assert readiness_reasons(everything, serving_only=True) == ["fell back to v2"]


def test_a_killed_worker_is_gone_once_its_lease_expires_not_when_its_heartbeat_is_stale() -> None:
    """Was: a worker killed with SIGKILL (its lease never released) stayed "ready" until its heartbeat
    was LIFELONG_WORKER_STALE_SECONDS (30 s) old, although its 6-15 s lease had expired long before."""
    killed = LIVE._replace(heartbeat=990.0, expires=996.0)  # a 6 s lease, last renewed 10 s ago
    reasons = readiness_reasons(Facts(**{**READY.__dict__, "worker_lease": killed}))
    assert len(reasons) == 1, reasons
    assert f"the worker {HOLDER} is gone: its lease expired 4 s ago" in reasons[0]
    assert "1970-01-01 00:16:36 UTC" in reasons[0] and "start `lifelong worker`" in reasons[0]
    assert readiness_reasons(Facts(**{**READY.__dict__, "worker_lease": killed}), serving_only=True) == []
    # the lease decides, as lifelong_worker_up does: alive up to its expiry, gone right after
    assert worker_alive(killed, 996.0) and not worker_alive(killed, 996.01) and not worker_alive(None, 0.0)
    at_expiry = Facts(**{**READY.__dict__, "worker_lease": killed, "now": 996.0})
    assert readiness_reasons(at_expiry) == []
    # a long lease (60 s) renewed 40 s ago is still held: the heartbeat limit says the worker is stuck
    stuck = LIVE._replace(heartbeat=960.0, expires=1020.0)
    reasons = readiness_reasons(Facts(**{**READY.__dict__, "worker_lease": stuck}))
    assert len(reasons) == 1 and "the worker's last heartbeat is 40 s old" in reasons[0], reasons


class _PgDiskFull(Exception):
    sqlstate = "53100"


@pytest.mark.parametrize(
    ("err", "full"),
    [
        (sqlite3.OperationalError("database or disk is full"), True),
        (sa.exc.OperationalError("INSERT", {}, sqlite3.OperationalError("database or disk is full")), True),
        (OSError(errno.ENOSPC, "No space left on device"), True),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), True),
        (_PgDiskFull("could not extend file"), True),
        (sqlite3.OperationalError("database is locked"), False),
        (OSError(errno.EACCES, "Permission denied"), False),
        (ValueError("bad"), False),
    ],
)
def test_is_storage_full(err: BaseException, full: bool) -> None:
    assert is_storage_full(err) is full


def test_write_health_clears_only_after_the_failures_settle(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr("lifelong.system.health.time.time", lambda: clock[0])
    health = WriteHealth()
    health.failed(sqlite3.OperationalError("database or disk is full"), unlogged=3)
    health.succeeded()  # one small write that still fitted
    assert health.last_error == "database or disk is full" and health.unlogged_predictions == 3
    clock[0] += WriteHealth.settle_seconds + 1
    health.succeeded()
    assert health.last_error is None and health.failed_since is None and health.unlogged_predictions == 3


def test_an_error_line_keeps_lifelong_advice_whole_and_cuts_a_driver_at_a_word() -> None:
    """A restore's advice was cut mid-word at 200 characters in the worker log ("a later copy of t")."""
    from lifelong.errors import RegistryError
    from lifelong.system.health import one_line

    advice = "artifacts holds v6, which the store never registered: " + "move them out " * 30
    assert one_line(RegistryError(advice)) == advice
    driver = one_line(RuntimeError("connection refused " * 40))
    assert (
        driver.endswith(" ...")
        and driver[:-4].split()[-1] in ("connection", "refused")
        and len(driver) <= 304
    )
