"""Metrics derived from the accuracy matrix ``R`` (``R[i][j]``: accuracy on experience j after training i).

Definitions follow Lopez-Paz & Ranzato (2017, GEM: ACC, BWT, FWT) and Chaudhry et al. (2018,
RWalk: forgetting, intransigence), forgetting with one departure (its best accuracy is taken from
when an experience was learned on: :func:`forgetting`). The negative flip rate follows Yan et al.
(2021, "Positive-congruent training"): regressions a user notices after an update. Average
incremental accuracy follows Rebuffi et al. (2017, iCaRL). What needs two experiences (BWT, FWT,
forgetting, the flip rate) is NaN for one: undefined, not zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

Matrix = Sequence[Sequence[float]]


def _r(matrix: Matrix) -> np.ndarray:
    r = np.asarray(matrix, dtype=float)
    if r.ndim != 2 or r.shape[0] == 0:
        raise ValueError("accuracy matrix must be 2-D and non-empty")
    return r


def fraction_correct(correct: Any) -> float:
    """The share of True in a boolean tensor or array, as an exact double (NaN when empty): a float32
    mean put 1e-8 of noise on every accuracy (0.5367499887943268 for 0.53675), so figures could not be
    checked by count, and a floor of 0.935 - 0.1 read 0.835000002, above a live 0.835."""
    n = len(correct)
    return int(correct.sum()) / n if n else math.nan


def acc(matrix: Matrix) -> float:
    """Average accuracy after the last experience trained, over the experiences trained (Lopez-Paz &
    Ranzato, 2017): a matrix with columns for experiences not yet trained (a run stopped early) does
    not average them in, as BWT and forgetting do not."""
    r = _r(matrix)
    return float(r[-1, : min(r.shape)].mean())


def bwt(matrix: Matrix) -> float:
    """Backward transfer: mean change on earlier experiences from just-after-learning to the end (< 0 is forgetting)."""
    r = _r(matrix)
    t = min(r.shape)
    if t < 2:
        return math.nan
    return float(np.mean([r[-1, j] - r[j, j] for j in range(t - 1)]))


def fwt(matrix: Matrix, untrained: Sequence[float]) -> float:
    """Forward transfer: accuracy on experience j before training on it, minus the untrained model's."""
    r = _r(matrix)
    t = min(r.shape)
    if t < 2 or len(untrained) < t:
        return math.nan
    return float(np.mean([r[j - 1, j] - untrained[j] for j in range(1, t)]))


def forgetting(matrix: Matrix) -> float:
    """Average forgetting: best accuracy reached on an earlier experience, from when it was learned up
    to the row before the last, minus the final one (Chaudhry et al., 2018). Rows before experience j
    was learned are not knowledge it could forget: a zero-shot accuracy above the learned one, as
    GDumb's on a coming domain, is left out (it counted as forgetting once). A method that improves
    on an old experience at the end scores negative forgetting, as in the paper; Mammoth's
    ``utils/metrics.forgetting`` takes its max over the last row too, so its value is never below 0,
    and Avalanche's subtracts from the accuracy just after learning rather than the best.

    An unmeasured cell (NaN, as a null read from JSON) is no candidate for the best; a column with
    none measured gives NaN."""
    r = _r(matrix)
    t = min(r.shape)
    if t < 2:
        return math.nan
    measured = [r[j : r.shape[0] - 1, j] for j in range(t - 1)]
    measured = [c[~np.isnan(c)] for c in measured]
    return float(np.mean([c.max() - r[-1, j] if len(c) else np.nan for j, c in enumerate(measured)]))


def intransigence(matrix: Matrix, reference: Sequence[float]) -> float:
    """Inability to learn new experiences: reference (joint) accuracy minus accuracy just after
    learning, averaged over experiences. Chaudhry et al. (2018) define it per experience, ``I_k``, and
    their tables give the last one: :func:`intransigence_per_experience`."""
    return float(np.mean(intransigence_per_experience(matrix, reference)))


def average_incremental_accuracy(matrix: Matrix) -> float:
    """Mean over the experiences trained of the accuracy on those seen so far (Rebuffi et al., 2017,
    iCaRL): the area under the ACC curve, which rewards a method that is good all along, not only at
    the end. Each step's accuracy averages its experiences, as ACC does (equal to pooling their test
    samples when the test sets are of one size).

    >>> average_incremental_accuracy([[0.9, 0.0], [0.5, 0.8]])
    0.775
    """
    r = _r(matrix)
    return float(np.mean([r[i, : i + 1].mean() for i in range(min(r.shape))]))


def intransigence_per_experience(matrix: Matrix, reference: Sequence[float]) -> list[float]:
    """``I_k = a*_k - a_{k,k}`` for every experience k trained (Chaudhry et al., 2018).

    >>> [round(i, 3) for i in intransigence_per_experience([[0.9, 0.0], [0.8, 0.6]], [0.95, 0.9])]
    [0.05, 0.3]
    """
    r = _r(matrix)
    if len(reference) < min(r.shape):
        raise ValueError(
            f"reference accuracy has {len(reference)} values for {min(r.shape)} experiences trained; give one "
            "per experience (a Cumulative run's Result.just_learned)"
        )
    return [float(reference[j] - r[j, j]) for j in range(min(r.shape))]


def plasticity(matrix: Matrix) -> float:
    """Mean accuracy on each experience right after learning it."""
    r = _r(matrix)
    return float(np.mean([r[j, j] for j in range(min(r.shape))]))


def negative_flip_rate(flips: Sequence[float]) -> float:
    """Mean over updates of the share of earlier samples that were right before and wrong after (NaN
    with no update after the first experience: nothing could flip)."""
    return float(np.mean(flips)) if len(flips) else math.nan
