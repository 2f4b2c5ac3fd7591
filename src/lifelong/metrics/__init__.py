"""Continual-learning metrics: the accuracy matrix and what derives from it, plus costs."""

from lifelong.metrics.accuracy import (
    acc,
    average_incremental_accuracy,
    bwt,
    forgetting,
    fraction_correct,
    fwt,
    intransigence,
    intransigence_per_experience,
    negative_flip_rate,
    plasticity,
)
from lifelong.metrics.costs import peak_rss_mb, reset_peak_rss
from lifelong.metrics.result import Result

__all__ = [
    "Result",
    "acc",
    "average_incremental_accuracy",
    "bwt",
    "forgetting",
    "fraction_correct",
    "fwt",
    "intransigence",
    "intransigence_per_experience",
    "negative_flip_rate",
    "peak_rss_mb",
    "plasticity",
    "reset_peak_rss",
]
