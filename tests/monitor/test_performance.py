import json
import random

import pytest

from lifelong.errors import ConfigError, DataError
from lifelong.monitor import DETECTORS, PerformanceMonitor

CHANGE = 3000


def errors(seed: int, before: float, after: float, n: int = 6000):
    rng = random.Random(seed)
    return [rng.random() < (before if i < CHANGE else after) for i in range(n)]


@pytest.mark.parametrize("detector", DETECTORS)
def test_detects_abrupt_jump_within_bounded_delay(detector):
    monitor = PerformanceMonitor(detector)
    for e in errors(seed=0, before=0.1, after=0.4):
        monitor.update(e)
    after = [i for i in monitor.detections if i >= CHANGE]
    assert after and after[0] - CHANGE < 300
    assert monitor.error_rate == pytest.approx(0.4, abs=0.05)
    report = monitor.report(since=CHANGE)
    assert report.drift and report.monitor == f"performance/{detector}"
    assert json.loads(json.dumps(report.to_event())) == report.to_event()


@pytest.mark.parametrize("detector", DETECTORS)
def test_quiet_on_stationary_stream(detector):
    # DDM raises early alarms while its error estimate is still noisy; a longer warm start tames it.
    monitor = PerformanceMonitor(detector, **({"warm_start": 300} if detector == "ddm" else {}))
    for e in errors(seed=1, before=0.1, after=0.1):
        monitor.update(e)
    assert monitor.detections == [] and not monitor.drift_detected
    assert monitor.n_seen == 6000
    assert not monitor.report().drift


def test_state_and_properties():
    monitor = PerformanceMonitor("page-hinkley", threshold=10.0)
    assert monitor.error_rate is None and monitor.n_seen == 0
    assert monitor.update(0.0) is None
    monitor.update(True)
    assert monitor.error_rate == 0.5
    assert monitor.report().details["params"] == {"mode": "up", "threshold": 10.0}
    clone = monitor.clone()
    assert clone.n_seen == 0 and clone.params == {"threshold": 10.0}


def test_bad_names_params_and_values_raise():
    with pytest.raises(ConfigError, match="adwin, ddm, page-hinkley"):
        PerformanceMonitor("cusum")
    with pytest.raises(ConfigError, match="ddm"):
        PerformanceMonitor("ddm", delta=0.1)
    # River takes these and alarms on a stationary stream (a live worker retrained on each, a trial)
    for name, params, said in [
        ("page-hinkley", {"delta": -1}, "delta must be"),
        ("page-hinkley", {"threshold": 0}, "threshold must be"),
        ("page-hinkley", {"alpha": 1.5}, "alpha must be"),
        ("page-hinkley", {"mode": "sideways"}, "mode must be up, down or both"),
        ("adwin", {"delta": 0}, "delta must be"),
        ("ddm", {"drift_threshold": -3.0}, "drift_threshold must be"),
        ("ddm", {"warm_start": 2.5}, "warm_start must be"),
    ]:
        with pytest.raises(ConfigError, match=f"the {name} detector.*{said}"):
            PerformanceMonitor(name, **params)
    assert PerformanceMonitor("page-hinkley", delta=0, threshold=20).detector == "page-hinkley"
    monitor = PerformanceMonitor()
    for bad in (2.0, -1, "x", None):
        with pytest.raises(DataError):
            monitor.update(bad)


def test_a_report_after_an_alarm_says_what_set_it_off() -> None:
    """The error since the last detection restarts at an alarm (0 right after one): the report also
    carries the recent error rate, which an operator reads in `lifelong events`."""
    monitor = PerformanceMonitor("page-hinkley")
    for i in range(2000):
        monitor.update(i >= 1000)  # right, then wrong
        if monitor.drift_detected:
            break
    assert monitor.drift_detected
    report = monitor.report()
    details = report.details
    assert details["recent_error_rate"] > 0.5 and details["recent_n"] == 50
    # and the score (the drift gauge, the dashboard's chart) is that rate, not the restarted 0.0
    assert report.drift and report.score == details["recent_error_rate"]


def test_adwin_does_not_call_a_falling_error_rate_a_drift() -> None:
    """ADWIN cuts its window at any change of the mean: an improvement (error 0.30 -> 0.05) was a
    'performance drop detected', retraining and emptying the replay memory."""
    rng = random.Random(0)
    for first, then, detected in ((0.30, 0.05, False), (0.05, 0.30, True)):
        monitor = PerformanceMonitor("adwin")
        for rate in (first, then):
            for _ in range(2000):
                monitor.update(rng.random() < rate)
        assert bool(monitor.detections_) is detected, (first, then, monitor.detections_)
