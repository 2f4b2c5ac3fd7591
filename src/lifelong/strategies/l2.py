"""L2: pull every weight towards its value at the last boundary, all weights equally important.

The baseline that importance-weighted penalties (EWC, SI, MAS) improve on; studied as such by
Kirkpatrick et al. (2017) and Hsu et al. (2018), "Re-evaluating Continual Learning Scenarios".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from lifelong.data.dataset import Batch
from lifelong.learn.params import check_param
from lifelong.learn.strategy import Strategy
from lifelong.strategies._importance import trainable

if TYPE_CHECKING:
    from lifelong.data.scenarios import Experience
    from lifelong.learn.learner import Learner


class L2(Strategy):
    """Penalty ``lam/2 * sum_i (theta_i - theta*_i)^2`` to the weights ``theta*`` after the last experience.

    Parameters
    ----------
    lam : penalty strength (the same for every weight).

    ``rows_`` keeps each anchored parameter's leading size: a head grown for new classes
    (``allow_new_classes``) pads the anchors with zero rows, which must pull nothing (they were
    never trained), so the penalty covers the anchored rows only.
    """

    name = "l2"
    supports = frozenset({"class", "task", "domain"})
    anchors = True

    def __init__(self, lam: float = 1.0) -> None:
        check_param(self, "lam", lam, low=0)
        self.lam = lam
        self.anchor_: dict[str, Tensor] = {}
        self.rows_: dict[str, int] = {}

    def penalty(self, learner: Learner, batch: Batch, logits: Tensor) -> Tensor | None:
        if not self.anchor_:
            return None
        total = torch.zeros((), device=learner.device)
        for name, p in trainable(learner).items():
            if name in self.anchor_:
                a = self.anchor_[name]
                if p.dim() and name in self.rows_:
                    p, a = p[: self.rows_[name]], a[: self.rows_[name]]
                total = total + (p - a).pow(2).sum()
        return 0.5 * self.lam * total

    def after_experience(self, learner: Learner, experience: Experience) -> None:
        self.anchor_ = {n: p.detach().clone() for n, p in trainable(learner).items()}
        self.rows_ = {n: a.shape[0] for n, a in self.anchor_.items() if a.dim()}

    def extra_parameters(self) -> int:
        return sum(t.numel() for t in self.anchor_.values())
