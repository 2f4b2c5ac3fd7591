"""Performance drift: change detection over the stream of prediction errors (1 wrong, 0 right).

The detectors are River's; this module only gives them one name-based constructor and the
bookkeeping a policy needs (how many errors were seen, where drift was detected, the error
rate since the last detection).

- ``"adwin"``: adaptive windowing (Bifet & Gavaldà, 2007), river.drift.ADWIN.
- ``"ddm"``: drift detection method (Gama et al., 2004), river.drift.binary.DDM.
- ``"page-hinkley"``: Page-Hinkley test (Page, 1954), river.drift.PageHinkley; defaults to
  ``mode="up"`` here, since only a rise of the error rate is a problem.

:func:`locate_change` dates a change after the fact (the policy's live-accuracy floor uses it).

>>> import random
>>> rng = random.Random(0)
>>> monitor = PerformanceMonitor("adwin")
>>> for i in range(2000):
...     monitor.update(rng.random() < (0.1 if i < 1000 else 0.5))
>>> [i for i in monitor.detections if i >= 1000][0] < 1100
True
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lifelong.errors import ConfigError, DataError
from lifelong.monitor.data_drift import DriftReport

DETECTORS = ("adwin", "ddm", "page-hinkley")
RECENT = 50  # latest outcomes behind a report's recent error rate
_DEFAULTS: dict[str, dict[str, Any]] = {"page-hinkley": {"mode": "up"}}


class PerformanceMonitor:
    """Watch a stream of errors with one of River's drift detectors.

    Parameters
    ----------
    detector
        ``"adwin"``, ``"ddm"`` or ``"page-hinkley"``.
    **params
        Passed to the River detector (for example ``delta=0.002`` for ADWIN).
    """

    def __init__(self, detector: str = "adwin", **params: Any) -> None:
        self.detector = detector
        self.params = params
        self.detector_ = _make(detector, params)
        self.n_seen_ = 0
        self.detections_: list[int] = []
        self._errors_since = 0.0  # sum of errors since the last detection
        self._n_since = 0
        self._recent: deque[float] = deque(maxlen=RECENT)  # what an alarm is about: the latest errors
        self._detected = False  # the latest update signalled a rise of the error rate

    def update(self, error: bool | float) -> None:
        """Feed one outcome: ``True``/1 for a wrong prediction, ``False``/0 for a right one."""
        if isinstance(error, bool):
            value = float(error)
        else:
            try:
                value = float(error)
            except (TypeError, ValueError) as e:
                raise DataError(f"PerformanceMonitor.update: expected a bool or number, got {error!r}") from e
            if not 0.0 <= value <= 1.0:
                raise DataError(f"PerformanceMonitor.update: an error must lie in [0, 1], got {value}")
        # DDM is a binary detector and wants a bool; the others take the value itself.
        before = getattr(self.detector_, "estimation", 0.0)
        self.detector_.update(value >= 0.5 if self.detector == "ddm" else value)
        self.n_seen_ += 1
        self._recent.append(value)
        # ADWIN cuts its window at any change of the mean: a falling error rate is no performance drift
        # (the policy retrained on an improvement and emptied the memory); DDM and Page-Hinkley watch rises
        self._detected = bool(self.detector_.drift_detected) and not (
            self.detector == "adwin" and self.detector_.estimation < before
        )
        if self._detected:
            self.detections_.append(self.n_seen_ - 1)
            self._errors_since, self._n_since = 0.0, 0
        else:
            self._errors_since += value
            self._n_since += 1

    def clone(self) -> PerformanceMonitor:
        """A fresh monitor with the same configuration."""
        return PerformanceMonitor(self.detector, **self.params)

    @property
    def drift_detected(self) -> bool:
        """Whether the latest update signalled a drift: a rise of the error rate."""
        return self._detected

    @property
    def warning_detected(self) -> bool:
        """DDM's warning zone after the latest update (always False for the other detectors)."""
        return bool(getattr(self.detector_, "warning_detected", False))

    @property
    def n_seen(self) -> int:
        return self.n_seen_

    @property
    def detections(self) -> list[int]:
        """0-based indices (into the updates) at which drift was signalled."""
        return list(self.detections_)

    @property
    def error_rate(self) -> float | None:
        """Mean error since the last detection (or the start); None before any update after it."""
        return self._errors_since / self._n_since if self._n_since else None

    def report(self, since: int = 0) -> DriftReport:
        """Summarise the state; ``drift`` says whether a detection happened at an index >= ``since``.

        A policy that polls passes the ``n_seen`` of its previous poll, so no detection is missed.
        """
        recent = [i for i in self.detections_ if i >= since]
        latest = sum(self._recent) / len(self._recent) if self._recent else None
        # an alarm restarts the error since the last detection at nothing: its score is the error rate
        # of the latest outcomes that set it off (was 0.0 at an 0.84 error rate)
        score = latest if recent and latest is not None else self.error_rate
        return DriftReport(
            monitor=f"performance/{self.detector}",
            score=score if score is not None else 0.0,
            threshold=None,
            drift=bool(recent),
            details={
                "detector": self.detector,
                "params": {**_DEFAULTS.get(self.detector, {}), **self.params},
                "n_seen": self.n_seen_,
                "n_since_detection": self._n_since,
                "detections": recent[-100:],
                "n_detections": len(self.detections_),
                "warning": self.warning_detected,
                # the error since the last detection restarts at an alarm: this says what set it off
                "recent_error_rate": sum(self._recent) / len(self._recent) if self._recent else None,
                "recent_n": len(self._recent),
            },
        )


#: each detector's settings and their ranges (kind, low, high, low_open, high_open): River takes a
#: Page-Hinkley delta of -1 or threshold of 0 and alarms on stationary errors (38 and 60 alarms in 2,000
#: samples at a 10% error rate against none), and a live worker retrained on each (a trial)
_RANGES: dict[str, dict[str, tuple[type, float | None, float | None, bool, bool]]] = {
    "adwin": {"delta": (float, 0, 1, True, True), "clock": (int, 1, None, False, False),
              "max_buckets": (int, 1, None, False, False), "min_window_length": (int, 1, None, False, False),
              "grace_period": (int, 1, None, False, False)},
    "ddm": {"warm_start": (int, 1, None, False, False), "warning_threshold": (float, 0, None, True, False),
            "drift_threshold": (float, 0, None, True, False)},
    "page-hinkley": {"min_instances": (int, 1, None, False, False), "delta": (float, 0, None, False, False),
                     "threshold": (float, 0, None, True, False), "alpha": (float, 0, 1, True, False)},
}  # fmt: skip


def _check_params(name: str, params: dict[str, Any]) -> None:
    """Refuse, naming it, a setting out of its range (River's own checks pass most of them)."""
    from lifelong.learn.params import check_param  # here: lifelong.learn imports torch

    for key, value in params.items():
        if key in _RANGES[name]:
            kind, low, high, low_open, high_open = _RANGES[name][key]
            check_param(f"the {name} detector", key, value, kind, low=low, high=high, low_open=low_open,
                        high_open=high_open)  # fmt: skip
    if name == "page-hinkley" and params.get("mode", "up") not in ("up", "down", "both"):
        raise ConfigError(f"the {name} detector: mode must be up, down or both, got {params['mode']!r}")


def _make(name: str, params: dict[str, Any]) -> Any:
    """Build River's detector ``name`` with ``params`` over this module's defaults."""
    if name not in DETECTORS:
        raise ConfigError(f"unknown drift detector {name!r}; choose one of {', '.join(DETECTORS)}")
    _check_params(name, params)
    try:
        from river import drift
    except ImportError as e:
        raise ConfigError("performance monitors need River: pip install 'lifelong[system]'") from e
    cls = {"adwin": drift.ADWIN, "ddm": drift.binary.DDM, "page-hinkley": drift.PageHinkley}[name]
    try:
        return cls(**{**_DEFAULTS.get(name, {}), **params})
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{name}: invalid parameters {params}: {e}") from e


@dataclass(frozen=True)
class ChangePoint:
    """Where a 0/1 error sequence's rate rose: ``index`` is the first position of the new regime."""

    index: int
    before: float
    after: float
    statistic: float  # 2 log likelihood ratio of one change against none


def locate_change(
    errors: Sequence[bool] | np.ndarray, min_segment: int = 20, threshold: float = 15.0
) -> ChangePoint | None:
    """The single change point of a Bernoulli sequence, after the fact: the split maximising the
    likelihood ratio (the maximum-likelihood change point, Hinkley 1970), kept when the error rate
    rose and ``2 log LR`` reaches ``threshold``; else None.

    The online detectors above say *that* accuracy fell, late and from the champion's errors only;
    a policy that trains after a drop needs *where* the change began, so the window starts there.

    >>> locate_change([0] * 150 + [1, 0] * 50).index
    150
    >>> locate_change([0, 1] * 100) is None
    True
    """
    e = np.asarray(errors, dtype=float)
    n = len(e)
    if n < 2 * min_segment:
        return None
    k = np.arange(min_segment, n - min_segment + 1)  # e[:k] before, e[k:] after
    total = np.cumsum(e)
    s1, m1 = total[k - 1], k.astype(float)
    s2, m2 = total[-1] - s1, n - m1
    stat = 2 * (
        _bernoulli_ll(s1, m1)
        + _bernoulli_ll(s2, m2)
        - _bernoulli_ll(np.array([total[-1]]), np.array([float(n)]))
    )
    stat[s2 / m2 <= s1 / m1] = -np.inf  # only a rise of the error rate is a drift
    best = int(np.argmax(stat))
    if not stat[best] >= threshold:
        return None
    return ChangePoint(
        int(k[best]), float(s1[best] / m1[best]), float(s2[best] / m2[best]), float(stat[best])
    )


def _bernoulli_ll(s: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Maximised log likelihood of ``s`` successes in ``m`` trials (0 log 0 = 0)."""
    p = s / m
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.nan_to_num(s * np.log(p)) + np.nan_to_num((m - s) * np.log1p(-p))
