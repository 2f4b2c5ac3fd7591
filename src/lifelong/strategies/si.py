"""Synaptic Intelligence: weights that reduced the loss most along their path are kept closest.

Zenke, Poole & Ganguli (2017), "Continual Learning Through Synaptic Intelligence".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor

from lifelong.data.dataset import Batch
from lifelong.learn.distributed import all_reduce_mean
from lifelong.learn.params import check_choice, check_param
from lifelong.strategies._importance import (
    PENALTY_STEPS,
    gradient_step_hint,
    proximal_now,
    proximal_pull,
    quadratic_penalty,
    trainable,
)
from lifelong.strategies._path import PathIntegral

if TYPE_CHECKING:
    from lifelong.data.scenarios import Experience
    from lifelong.learn.learner import Learner


class SI(PathIntegral):
    """Penalty ``c * sum_i omega_i (theta_i - theta*_i)^2`` with importances from the path integral.

    Each step adds ``w_i += -g_i * delta_theta_i`` (``g``: the gradient before the step, less this
    method's own penalty, as in the authors' code). At a boundary ``omega_i += max(w_i, 0) /
    (Delta_i^2 + xi)``, ``Delta`` being how far the weight moved over the experience; the clamp
    drops negative contributions (possible with momentum) so the penalty stays convex.

    Parameters
    ----------
    c : penalty strength.
    xi : damping: keeps ``omega`` finite for weights that barely moved. The paper's 1e-3 (with Adam)
        lets ``omega`` reach hundreds, which makes plain SGD diverge once ``lr * 2c * omega > 2``;
        0.1 keeps SGD at lr 0.1 stable.
    penalty_step : ``auto`` (default: ``proximal`` under SGD, ``gradient`` under Adam and others),
        ``gradient`` (the penalty joins the loss) or ``proximal``: its exact step
        ``theta <- a + (theta - a) / (1 + 2 lr c omega)`` after the optimizer's, stable for any ``c``
        (see :mod:`lifelong.strategies.ewc`; mammoth's SGD version clips every gradient at 1 instead).
        The path integral then counts the pull in the weights' movement, as mammoth's does.
    """

    name = "si"
    supports = frozenset({"class", "task", "domain"})
    anchors = True

    def __init__(self, c: float = 1.0, xi: float = 0.1, penalty_step: str = "auto") -> None:
        check_param(self, "c", c, low=0)
        check_param(self, "xi", xi, low=0, low_open=True)
        check_choice(self, "penalty_step", penalty_step, PENALTY_STEPS)
        self.c, self.xi, self.penalty_step = c, xi, penalty_step
        self._step = "gradient" if penalty_step == "auto" else penalty_step  # the step last taken
        self.omega_: dict[str, Tensor] = {}
        self.anchor_: dict[str, Tensor] = {}
        self.start_: dict[str, Tensor] = {}  # weights when the current experience began
        self.path_: dict[str, Tensor] = {}  # running path integral w over the current experience

    def penalty(self, learner: Learner, batch: Batch, logits: Tensor) -> Tensor | None:
        if not self.omega_ or proximal_now(self, learner):
            return None
        return self.c * quadratic_penalty(learner, self.anchor_, self.omega_)

    def after_step(self, learner: Learner) -> None:
        if self.omega_ and proximal_now(self, learner):  # before the path integral reads the movement
            proximal_pull(learner, self.anchor_, {n: 2 * self.c * w for n, w in self.omega_.items()})
        super().after_step(learner)

    def _penalty_terms(self) -> tuple[float, dict[str, Tensor], dict[str, Tensor]]:
        # proximal: the gradient holds the task loss alone already
        return (0.0 if self._step == "proximal" else self.c), self.omega_, self.anchor_

    def after_experience(self, learner: Learner, experience: Experience) -> None:
        for n, p in trainable(learner).items():
            if n not in self.path_:
                continue
            delta = p.detach() - self.start_[n]
            omega = self.path_[n].clamp(min=0) / (delta.pow(2) + self.xi)
            self.omega_[n] = self.omega_[n] + omega if n in self.omega_ else omega
        # under DDP every rank already holds the same omega (averaged gradients); the mean keeps them bit-equal
        self.omega_ = all_reduce_mean(learner, self.omega_)
        self.anchor_ = {n: p.detach().clone() for n, p in trainable(learner).items() if n in self.omega_}
        self.path_, self.start_ = {}, {}

    def extra_parameters(self) -> int:
        states = (self.omega_, self.anchor_, self.start_, self.path_)
        return sum(t.numel() for d in states for t in d.values())

    def divergence_hint(self) -> str | None:
        return gradient_step_hint(self, self._step, "c")
