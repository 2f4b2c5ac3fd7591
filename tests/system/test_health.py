"""Readiness from facts (a pure function) and telling a full store from other failures."""

from __future__ import annotations

import errno
import sqlite3

import pytest
import sqlalchemy as sa

from lifelong.system.health import Facts, WriteHealth, is_storage_full, readiness_reasons

READY = Facts(now=1000.0, champion_loaded=True, store_error=None, write_failure=None, unlogged_predictions=0,
              worker_heartbeat=995.0, worker_stale_seconds=30.0, failed_training=None)  # fmt: skip


def test_ready_only_when_every_fact_is_good() -> None:
    assert readiness_reasons(READY) == []
    cases = {
        "no champion": {"champion_loaded": False},
        "not writable": {"store_error": "disk I/O error"},
        "writes are failing": {"write_failure": "database or disk is full", "unlogged_predictions": 7},
        "no worker holds the lease": {"worker_heartbeat": None},
        "heartbeat is 31 s old": {"worker_heartbeat": 969.0},
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
    loop_down = Facts(**{**READY.__dict__, "worker_heartbeat": None, "failed_training": "boom"})
    assert len(readiness_reasons(loop_down)) == 2 and readiness_reasons(loop_down, serving_only=True) == []
    assert len(readiness_reasons(everything, serving_only=True)) == 3  # store, writes, degraded


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
