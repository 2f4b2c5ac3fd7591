"""Drift monitors: data drift between windows of inputs, performance drift over the error stream."""

from lifelong.monitor.data_drift import (
    DRIFT_TESTS,
    DataDriftMonitor,
    DriftReport,
    KSDrift,
    MMDDrift,
    PSIDrift,
    TokenDrift,
)
from lifelong.monitor.performance import DETECTORS, PerformanceMonitor

__all__ = [
    "DETECTORS",
    "DRIFT_TESTS",
    "DataDriftMonitor",
    "DriftReport",
    "KSDrift",
    "MMDDrift",
    "PSIDrift",
    "PerformanceMonitor",
    "TokenDrift",
]
