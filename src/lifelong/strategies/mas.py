"""Memory Aware Synapses: keep weights the network's output is most sensitive to, without labels.

Aljundi, Babiloni, Elhoseiny, Rohrbach & Tuytelaars (2018), "Memory Aware Synapses: Learning
what (not) to forget".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor

from lifelong.data.dataset import Batch
from lifelong.learn.distributed import all_reduce_mean
from lifelong.learn.params import check_choice, check_param
from lifelong.learn.strategy import Strategy
from lifelong.strategies._importance import (
    PENALTY_STEPS,
    gradient_step_hint,
    mean_abs_gradient,
    proximal_now,
    proximal_pull,
    quadratic_penalty,
    trainable,
)

if TYPE_CHECKING:
    from lifelong.data.scenarios import Experience
    from lifelong.learn.learner import Learner


def _squared_output_norm(logits: Tensor, y: Tensor, mask: Tensor) -> Tensor:
    """``||f(x)||_2^2`` over the outputs of the sample's task; the label is not used."""
    return logits.masked_fill(~mask, 0.0).pow(2).sum()


class MAS(Strategy):
    """Penalty ``lam * sum_i Omega_i (theta_i - theta*_i)^2``, ``Omega = mean_x |d ||f(x)||^2 / d theta|``.

    Importances are estimated at each boundary on the experience's inputs (no labels needed) and
    summed over experiences; the anchor is the latest boundary's weights.

    Parameters
    ----------
    lam : penalty strength. ``Omega`` scales with the size of the outputs, so the right strength
        depends on the model and data: tune it. The default is not the paper's 1, which diverged with
        the gradient step under SGD at lr 0.1 on large logits (stable needs ``lr * 2 lam * max Omega
        < 2``); with the proximal step (the default under SGD) 1 is stable but held too hard on
        permuted digits (3 epochs, lr 0.1, seeds 0-2: ACC 0.550 ± 0.031 against 0.665 ± 0.070 at
        0.01; naive 0.524), while on split digits' tasks the two were level (0.962, 0.978).
    samples : inputs of the experience used to estimate ``Omega`` (None: all).
    penalty_step : ``auto`` (default: ``proximal`` under SGD, ``gradient`` under Adam and others),
        ``gradient`` (the penalty joins the loss) or ``proximal``: its exact step
        ``theta <- a + (theta - a) / (1 + 2 lr lam Omega)`` after the optimizer's, stable for any
        ``lam`` (see :mod:`lifelong.strategies.ewc`).
    """

    name = "mas"
    float32_only = True
    supports = frozenset({"class", "task", "domain"})
    anchors = True

    def __init__(self, lam: float = 0.01, samples: int | None = None, penalty_step: str = "auto") -> None:
        check_param(self, "lam", lam, low=0)
        check_param(self, "samples", samples, int, low=1, none="every sample")
        check_choice(self, "penalty_step", penalty_step, PENALTY_STEPS)
        self.lam, self.samples, self.penalty_step = lam, samples, penalty_step
        self._step = "gradient" if penalty_step == "auto" else penalty_step  # the step last taken
        self.omega_: dict[str, Tensor] = {}
        self.anchor_: dict[str, Tensor] = {}

    def penalty(self, learner: Learner, batch: Batch, logits: Tensor) -> Tensor | None:
        if not self.omega_ or proximal_now(self, learner):
            return None
        return self.lam * quadratic_penalty(learner, self.anchor_, self.omega_)

    def after_step(self, learner: Learner) -> None:
        if self.omega_ and proximal_now(self, learner):
            proximal_pull(learner, self.anchor_, {n: 2 * self.lam * w for n, w in self.omega_.items()})

    def after_experience(self, learner: Learner, experience: Experience) -> None:
        if len(experience.train) == 0:
            return
        omega = all_reduce_mean(
            learner, mean_abs_gradient(learner, experience.train, _squared_output_norm, self.samples)
        )
        self.omega_ = {n: self.omega_[n] + v if n in self.omega_ else v for n, v in omega.items()}
        self.anchor_ = {n: p.detach().clone() for n, p in trainable(learner).items() if n in self.omega_}

    def extra_parameters(self) -> int:
        return sum(t.numel() for d in (self.omega_, self.anchor_) for t in d.values())

    def divergence_hint(self) -> str | None:
        return gradient_step_hint(self, self._step, "lam")
