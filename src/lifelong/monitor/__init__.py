"""Drift monitors: data drift between windows of inputs, performance drift over the error stream."""

from lifelong.monitor.data_drift import DataDriftMonitor, DriftReport, KSDrift, MMDDrift, PSIDrift
from lifelong.monitor.performance import DETECTORS, PerformanceMonitor

__all__ = [
    "DETECTORS",
    "DataDriftMonitor",
    "DriftReport",
    "KSDrift",
    "MMDDrift",
    "PSIDrift",
    "PerformanceMonitor",
]
