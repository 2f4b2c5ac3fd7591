"""Riemannian Walk: an online Fisher plus a path score normalised by the loss's curvature.

Chaudhry, Dokania, Ajanthan & Torr (2018), "Riemannian Walk for Incremental Learning:
Understanding Forgetting and Intransigence" (RWalk = EWC++ + a KL-normalised SI score).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor

from lifelong.data.dataset import Batch
from lifelong.strategies._importance import quadratic_penalty, trainable
from lifelong.strategies._path import PathIntegral

if TYPE_CHECKING:
    from lifelong.data.scenarios import Experience
    from lifelong.learn.learner import Learner


class RWalk(PathIntegral):
    """Penalty ``lam * sum_i (F_i + s_i) (theta_i - theta*_i)^2``.

    ``F`` is the online Fisher (EWC++): each step ``F <- alpha F + (1 - alpha) g^2`` with ``g``
    the mini-batch gradient of the task loss. Each step also adds ``w_i += -g_i * delta_theta_i``;
    at a boundary the experience's score is ``max(w_i, 0) / (F_i Delta_i^2 / 2 + eps)`` (the loss
    decrease per unit of KL divergence travelled, ``Delta`` the move over the experience), averaged
    with the previous score: ``s <- (s + s_new) / 2``. ``F + s`` is frozen at the boundary.

    Parameters
    ----------
    lam : penalty strength.
    alpha : decay of the online Fisher's moving average.
    eps : damping of the score's denominator.
    """

    name = "rwalk"
    supports = frozenset({"class", "task", "domain"})

    def __init__(self, lam: float = 1.0, alpha: float = 0.9, eps: float = 0.1) -> None:
        self.lam, self.alpha, self.eps = lam, alpha, eps
        self.fisher_: dict[str, Tensor] = {}  # running, updated every step
        self.score_: dict[str, Tensor] = {}
        self.importance_: dict[str, Tensor] = {}  # F + s at the last boundary: what the penalty uses
        self.anchor_: dict[str, Tensor] = {}
        self.start_: dict[str, Tensor] = {}
        self.path_: dict[str, Tensor] = {}

    def penalty(self, learner: Learner, batch: Batch, logits: Tensor) -> Tensor | None:
        if not self.importance_:
            return None
        return self.lam * quadratic_penalty(learner, self.anchor_, self.importance_)

    def _penalty_terms(self) -> tuple[float, dict[str, Tensor], dict[str, Tensor]]:
        return self.lam, self.importance_, self.anchor_

    def _observe(self, name: str, grad: Tensor) -> None:
        f = self.fisher_.get(name)  # running (EMA) empirical Fisher, updated every step
        self.fisher_[name] = grad.pow(2) if f is None else self.alpha * f + (1 - self.alpha) * grad.pow(2)

    def after_experience(self, learner: Learner, experience: Experience) -> None:
        for n, p in trainable(learner).items():
            if n not in self.path_ or n not in self.fisher_:
                continue
            delta = p.detach() - self.start_[n]
            score = self.path_[n].clamp(min=0) / (0.5 * self.fisher_[n] * delta.pow(2) + self.eps)
            self.score_[n] = 0.5 * (self.score_[n] + score) if n in self.score_ else score
            self.importance_[n] = self.fisher_[n] + self.score_[n]
        self.anchor_ = {n: p.detach().clone() for n, p in trainable(learner).items() if n in self.importance_}
        self.path_, self.start_ = {}, {}

    def extra_parameters(self) -> int:
        states = (self.fisher_, self.score_, self.importance_, self.anchor_, self.start_, self.path_)
        return sum(t.numel() for d in states for t in d.values())
