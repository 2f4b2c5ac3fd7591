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
    """

    name = "l2"
    supports = frozenset({"class", "task", "domain"})
    anchors = True

    def __init__(self, lam: float = 1.0) -> None:
        check_param(self, "lam", lam, low=0)
        self.lam = lam
        self.anchor_: dict[str, Tensor] = {}

    def penalty(self, learner: Learner, batch: Batch, logits: Tensor) -> Tensor | None:
        if not self.anchor_:
            return None
        total = torch.zeros((), device=learner.device)
        for name, p in trainable(learner).items():
            if name in self.anchor_:
                total = total + (p - self.anchor_[name]).pow(2).sum()
        return 0.5 * self.lam * total

    def after_experience(self, learner: Learner, experience: Experience) -> None:
        self.anchor_ = {n: p.detach().clone() for n, p in trainable(learner).items()}

    def extra_parameters(self) -> int:
        return sum(t.numel() for t in self.anchor_.values())
