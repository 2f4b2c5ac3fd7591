"""Elastic Weight Consolidation: pull weights towards their values after earlier experiences.

Kirkpatrick et al. (2017), "Overcoming catastrophic forgetting in neural networks"; the
online variant keeps one running Fisher and one anchor (Schwarz et al., 2018, "Progress &
Compress"), so its cost does not grow with the number of experiences.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor

from lifelong.data.dataset import Batch
from lifelong.learn.strategy import Strategy
from lifelong.strategies._importance import empirical_fisher, quadratic_penalty, trainable

if TYPE_CHECKING:
    from lifelong.data.scenarios import Experience
    from lifelong.learn.learner import Learner


class EWC(Strategy):
    """Penalty ``lam/2 * sum_k sum_i F_k,i (theta_i - theta*_k,i)^2`` with diagonal empirical Fisher ``F``.

    Parameters
    ----------
    lam : penalty strength.
    online : keep one decayed running Fisher and the latest anchor instead of one per experience.
    decay : the online variant's gamma: how much of the old Fisher is kept at each boundary.
    fisher_samples : samples of the experience used to estimate the Fisher (None: all).
    """

    name = "ewc"
    supports = frozenset({"class", "task", "domain"})

    def __init__(self, lam: float = 100.0, online: bool = False, decay: float = 1.0,
                 fisher_samples: int | None = None) -> None:  # fmt: skip
        self.lam, self.online, self.decay, self.fisher_samples = lam, online, decay, fisher_samples
        self.anchors_: list[dict[str, Tensor]] = []
        self.fishers_: list[dict[str, Tensor]] = []

    def penalty(self, learner: Learner, batch: Batch, logits: Tensor) -> Tensor | None:
        if not self.anchors_:
            return None
        total = sum(quadratic_penalty(learner, a, f) for a, f in zip(self.anchors_, self.fishers_))
        return 0.5 * self.lam * total

    def after_experience(self, learner: Learner, experience: Experience) -> None:
        if len(experience.train) == 0:
            return
        fisher = empirical_fisher(learner, experience.train, self.fisher_samples)
        anchor = {n: p.detach().clone() for n, p in trainable(learner).items()}
        if self.online and self.fishers_:
            old = self.fishers_[0]
            fisher = {k: self.decay * old[k] + v if k in old else v for k, v in fisher.items()}
            self.anchors_, self.fishers_ = [anchor], [fisher]
        else:
            self.anchors_.append(anchor)
            self.fishers_.append(fisher)

    def extra_parameters(self) -> int:
        return sum(t.numel() for d in self.anchors_ + self.fishers_ for t in d.values())


class OnlineEWC(EWC):
    """Online EWC: ``EWC(online=True)`` under its own name, for the CLI and tables."""

    name = "online-ewc"

    def __init__(self, lam: float = 100.0, online: bool = True, decay: float = 0.9,
                 fisher_samples: int | None = None) -> None:  # fmt: skip
        super().__init__(lam, online, decay, fisher_samples)
