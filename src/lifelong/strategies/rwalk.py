"""Riemannian Walk: an online Fisher plus a path score normalised by the loss's curvature.

Chaudhry, Dokania, Ajanthan & Torr (2018), "Riemannian Walk for Incremental Learning:
Understanding Forgetting and Intransigence" (RWalk = EWC++ + a KL-normalised SI score).

As in the authors' code (facebookresearch/agem, ``model/model.py``, ``RWALK``): the Fisher and
the score are updated every ``interval`` steps (``fisher_update_after = 10``), the damping is
``xi = 1e-3``, and at a boundary both the Fisher and the score are min-max normalised over all
parameters together before being added. Differences, both where the code departs from the
paper: the squared gradients are reset after each interval (the authors' RWALK branch never
resets them, unlike their EWC branch), and the score is averaged with the previous one,
``s <- (s + s_new) / 2``, as the paper and the code's comment say (the code assigns
``s + (s + s_new) / 2``). A partial last interval is discarded, as in the code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor

from lifelong.data.dataset import Batch
from lifelong.learn.params import check_param
from lifelong.strategies._importance import quadratic_penalty, trainable
from lifelong.strategies._path import PathIntegral

if TYPE_CHECKING:
    from lifelong.data.scenarios import Experience
    from lifelong.learn.learner import Learner


def minmax(d: dict[str, Tensor]) -> dict[str, Tensor]:
    """``(v - min) / (max - min)`` with min and max over every tensor of ``d`` together."""
    lo = min(float(v.min()) for v in d.values())
    hi = max(float(v.max()) for v in d.values())
    return {k: (v - lo) / (hi - lo + 1e-32) for k, v in d.items()}


class RWalk(PathIntegral):
    """Penalty ``lam * sum_i (F~_i + s~_i) (theta_i - theta*_i)^2`` (``~``: min-max normalised).

    Each step adds ``g^2`` to the interval's sum and ``-g * delta_theta`` to the path ``w`` (``g``:
    the task loss's gradient). Every ``interval`` steps the interval's score
    ``max(w, 0) / (xi + F * (theta - theta_interval_start)^2)`` is added to the experience's score
    (the loss decrease per unit of KL divergence travelled, with ``F`` the Fisher before the
    interval), then ``F <- alpha * mean_interval(g^2) + (1 - alpha) * F`` and ``w`` restarts.

    Parameters
    ----------
    lam : penalty strength (importances lie in [0, 2] after normalisation).
    alpha : weight of the newest interval in the Fisher's moving average (0.9 as the authors).
    eps : ``xi``, damping of the score's denominator.
    interval : optimizer steps between updates of the Fisher and the score.
    """

    name = "rwalk"
    supports = frozenset({"class", "task", "domain"})
    anchors = True

    def __init__(self, lam: float = 1.0, alpha: float = 0.9, eps: float = 1e-3, interval: int = 10) -> None:
        check_param(self, "lam", lam, low=0)
        check_param(self, "alpha", alpha, low=0, high=1, low_open=True)
        check_param(self, "eps", eps, low=0, low_open=True)
        check_param(self, "interval", interval, int, low=1)
        self.lam, self.alpha, self.eps, self.interval = lam, alpha, eps, interval
        self.fisher_: dict[str, Tensor] = {}  # running (EMA over intervals)
        self.squares_: dict[str, Tensor] = {}  # sum of g^2 over the current interval
        self.riemann_: dict[str, Tensor] = {}  # this experience's score, summed over its intervals
        self.score_: dict[str, Tensor] = {}  # averaged over experiences
        self.importance_: dict[str, Tensor] = {}  # F~ + s~ at the last boundary: what the penalty uses
        self.anchor_: dict[str, Tensor] = {}
        self.start_: dict[str, Tensor] = {}  # weights when the current interval began
        self.path_: dict[str, Tensor] = {}

    def penalty(self, learner: Learner, batch: Batch, logits: Tensor) -> Tensor | None:
        if not self.importance_:
            return None
        return self.lam * quadratic_penalty(learner, self.anchor_, self.importance_)

    def _penalty_terms(self) -> tuple[float, dict[str, Tensor], dict[str, Tensor]]:
        return self.lam, self.importance_, self.anchor_

    def _observe(self, name: str, grad: Tensor) -> None:
        s = self.squares_.get(name)
        self.squares_[name] = grad.square() if s is None else s.add_(grad.square())

    def before_experience(self, learner: Learner, experience: Experience) -> None:
        super().before_experience(learner, experience)
        self.riemann_, self.squares_ = {}, {}

    def after_step(self, learner: Learner) -> None:
        super().after_step(learner)
        if (learner.step + 1) % self.interval == 0:  # the learner counts steps; this one is not yet counted
            self._close_interval(learner)

    def _close_interval(self, learner: Learner) -> None:
        for n, p in trainable(learner).items():
            if n not in self.path_ or n not in self.squares_:
                continue
            f = self.fisher_.get(n)
            f = p.detach().new_zeros(p.shape) if f is None else f  # the authors' running Fisher starts at 0
            score = (self.path_[n] / (self.eps + f * (p.detach() - self.start_[n]).square())).clamp_(min=0)
            self.riemann_[n] = self.riemann_[n] + score if n in self.riemann_ else score
            self.fisher_[n] = self.alpha * self.squares_[n] / self.interval + (1 - self.alpha) * f
            self.start_[n], self.path_[n] = p.detach().clone(), self.path_[n].zero_()
        self.squares_ = {}

    def after_experience(self, learner: Learner, experience: Experience) -> None:
        for n, r in self.riemann_.items():
            self.score_[n] = 0.5 * (self.score_[n] + r) if n in self.score_ else r
        if self.fisher_ and self.score_:
            f, s = minmax(self.fisher_), minmax(self.score_)
            self.importance_ = {n: f[n] + s[n] for n in f if n in s}
        self.anchor_ = {n: p.detach().clone() for n, p in trainable(learner).items() if n in self.importance_}
        self.path_, self.start_, self.squares_, self.riemann_ = {}, {}, {}, {}

    def extra_parameters(self) -> int:
        states = (
            self.fisher_,
            self.squares_,
            self.score_,
            self.importance_,
            self.anchor_,
            self.start_,
            self.path_,
        )
        return sum(t.numel() for d in states for t in d.values())
