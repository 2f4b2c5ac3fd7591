"""The worker: the process that keeps the deployed model learning, next to (never inside) the server.

Each poll it (1) tests the inputs that arrived for data drift, (2) feeds the champion's judged
predictions to a performance-drift detector, (3) measures the world into a
:class:`~lifelong.system.policy.PolicyState` and (4) runs the trainer when the policy says so.
Monitors write ``data_drift`` / ``performance_drift`` events; the trainer writes ``gate`` events.

Everything it must remember lives in the store (cursors, events), so a worker killed at any moment
restarts where it stopped: drift windows resume at their cursor and a half-finished training is
simply done again. SIGTERM stops it gracefully after the current step.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sqlalchemy as sa

from lifelong.data.dataset import Dataset
from lifelong.monitor.data_drift import DataDriftMonitor, KSDrift, MMDDrift, PSIDrift
from lifelong.monitor.performance import PerformanceMonitor
from lifelong.system.policy import Decision, Policy, PolicyState, preset
from lifelong.system.registry import Registry
from lifelong.system.store import Store, feedback, predictions
from lifelong.system.trainer import CURSOR, Gate, TrainResult, train_once

log = logging.getLogger(__name__)
DATA_CURSOR = "monitor-data"  # last sample id tested for data drift
FEEDBACK_CURSOR = "monitor-feedback-us"  # feedback timestamp (microseconds) fed to the detector
DRIFT_TESTS: dict[str, Callable[[], DataDriftMonitor]] = {"ks": KSDrift, "psi": PSIDrift, "mmd": MMDDrift}


@dataclass
class Worker:
    """One poll at a time (:meth:`step`); :meth:`run` loops until ``stop`` is set."""

    store: Store
    registry: Registry
    policy: Policy
    gate: Gate = field(default_factory=Gate)
    poll_seconds: float = 1.0
    prepare: Callable[[Dataset], Dataset] | None = None  # passed to the trainer (tests corrupt labels)
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._reference: np.ndarray | None = None
        self._detector = PerformanceMonitor(self.policy.detector, **self.policy.detector_params)
        self._champion = self.registry.alias("champion")

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.step()
            except Exception:  # a failing step (database hiccup, bad window) must not end the loop
                log.exception("worker step failed; retrying at the next poll")
            self.stop.wait(self.poll_seconds)

    def step(self) -> TrainResult | None:
        """Monitor, decide, maybe train; return what the trainer did, or None if it did not run."""
        self.check_data_drift()
        self.check_performance()
        decision = self.decide()
        if not decision.train:
            return None
        log.info("training (%s, %s)", decision.reason, decision.mode)
        self.store.add_event(
            "training", {"state": "started", "reason": decision.reason, "mode": decision.mode}
        )
        result = train_once(self.store, self.registry, self.policy, self.gate, reason=decision.reason,
                            mode=decision.mode, prepare=self.prepare)  # fmt: skip
        log.info(
            "gate %s: version %s %s", "passed" if result.passed else "failed", result.version, result.reasons
        )
        return result

    # -- monitors --------------------------------------------------------------------------
    def check_data_drift(self) -> None:
        """Test each full block of ``drift_window`` new inputs against the reference block."""
        if self.policy.drift_test is None:
            return
        n = self.policy.drift_window
        while True:
            s = self.store.samples(since_id=self.store.cursor(DATA_CURSOR), limit=n)
            if len(s.ids) < n:
                return
            block = s.x.reshape(len(s.x), -1).float().numpy()
            if self._reference is not None:
                report = DRIFT_TESTS[self.policy.drift_test]().fit(self._reference).test(block)
                if report.drift:
                    first, last = int(s.ids[0]), int(s.ids[-1])
                    self.store.add_event("data_drift", {**report.to_event(), "first": first, "at": last})
                    self._reference = block  # the new normal: detect the next change, not this one again
            else:
                self._reference = block
            self.store.advance_cursor(DATA_CURSOR, int(s.ids[-1]))

    def check_performance(self) -> None:
        """Feed the champion's errors, in feedback order, to the detector; reset it on a new champion."""
        champion = self.registry.alias("champion")
        if champion != self._champion:
            self._detector = self._detector.clone()
            self._champion = champion
        since = (self.store.cursor(FEEDBACK_CURSOR) or 0) / 1e6  # stored one microsecond past the last row
        p, f = predictions, feedback
        q = (
            sa.select(p.c.label, f.c.label.label("truth"), p.c.sample_id, f.c.ts)
            .join(f, f.c.prediction_id == p.c.id)
            .where(f.c.ts >= since, p.c.variant == "champion")
            .order_by(f.c.ts)
        )
        with self.store.engine.connect() as conn:
            rows = conn.execute(q).all()
        for r in rows:
            self._detector.update(r.label != r.truth)
            if self._detector.drift_detected:
                report = self._detector.report(self._detector.n_seen - 1).to_event()
                self.store.add_event("performance_drift", {**report, "at": r.sample_id, "version": champion})
        if rows:
            self.store.advance_cursor(FEEDBACK_CURSOR, math.floor(rows[-1].ts * 1e6) + 1)

    # -- policy ------------------------------------------------------------------------------
    def state(self, now: float | None = None) -> PolicyState:
        """Measure what the policy reads, from the store alone (so a restarted worker sees the same)."""
        now = time.time() if now is None else now
        gates = self.store.events("gate", limit=200)
        last = gates[-1] if gates else None
        after = last.id if last else None
        day = [g for g in gates if g.ts >= now - 86400]

        def fired(kind: str) -> bool:
            return bool(self.store.events(kind, after_id=after, limit=1))

        return PolicyState(
            new_samples=self.store.count_samples(self.store.cursor(CURSOR), labelled_only=True),
            seconds_since_training=None if last is None else now - last.ts,
            cpu_seconds_today=sum(float(g.payload.get("train_cpu_seconds", 0.0)) for g in day),
            drift=fired("data_drift"),
            performance_drop=fired("performance_drift"),
            requested=fired("train_request"),
        )

    def decide(self) -> Decision:
        return self.policy.decide(self.state())


# --- process entry point --------------------------------------------------------------------------
def stop_process(process: subprocess.Popen[Any], timeout: float) -> None:
    """SIGTERM a worker process (it ends after its current step); SIGKILL it if it outlives ``timeout``."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def policy_from_args(args: argparse.Namespace) -> tuple[Policy, Gate]:
    overrides: dict[str, Any] = json.loads(args.policy_json) if args.policy_json else {}
    if args.strategy:
        overrides["strategy"] = args.strategy
    if args.every:
        overrides["every_samples"] = args.every
    gate = Gate(**json.loads(args.gate_json)) if args.gate_json else Gate()
    return preset(args.policy, **overrides), gate


def serve_forever(args: argparse.Namespace) -> int:
    """Run a worker until SIGTERM or SIGINT; the current step finishes first."""
    import torch

    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s %(message)s")
    policy, gate = policy_from_args(args)
    with Store(args.db_url, data_dir=args.data_dir) as store:
        worker = Worker(store, Registry(store), policy, gate, poll_seconds=args.poll)
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: worker.stop.set())
        store.add_event("worker", {"state": "started", "pid": os.getpid(), "policy": policy.kind})
        log.info("worker started: policy %s, data %s", policy.kind, store)
        worker.run()
    log.info("worker stopped")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from lifelong.system.cli import worker_arguments

    parser = argparse.ArgumentParser(prog="python -m lifelong.system.worker", description=__doc__)
    worker_arguments(parser)
    return serve_forever(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
