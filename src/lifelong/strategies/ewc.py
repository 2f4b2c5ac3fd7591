"""Elastic Weight Consolidation: pull weights towards their values after earlier experiences.

Kirkpatrick et al. (2017), "Overcoming catastrophic forgetting in neural networks"; the
online variant keeps one running Fisher and one anchor (Schwarz et al., 2018, "Progress &
Compress"), so its cost does not grow with the number of experiences.

Separate penalties (the paper's) pull every weight towards the ``F``-weighted mean of all anchors,
which undoes part of what each later task learned against the earlier penalties; Huszár (2018, "Note
on the quadratic penalties in elastic weight consolidation") shows the recursive posterior keeps one
anchor, the latest, with the summed Fisher: ``online=True, decay=1`` (mammoth's permuted-MNIST
``ewc_on``, gamma 1). Measured on permuted Fashion-MNIST, separate penalties at ``lam`` 100 kept the
first task and lost the middle ones (0.74 -> 0.61); the validation search picks the form per family.

Fisher: the default ``true`` takes the expectation over the model's own predictions, as the
definition and van de Ven's reference code (``--fisher-labels all``) do; ``sampled`` draws one
label per input from the model (the original TensorFlow EWC demos); ``empirical`` uses the data's
labels (Avalanche, Mammoth), which measured 0.11-0.13x the true Fisher on split Fashion-MNIST.
Per-sample gradients by default, or Avalanche's cheaper squared mini-batch gradients
(``fisher_batch_size > 1``). The separate-mode penalty ``sum_k F_k (theta - a_k)^2`` is folded at
each boundary into one quadratic ``S (theta - a)^2 + c`` (``S = sum_k F_k``, ``a`` the
``F``-weighted anchor mean): the same value and gradient, one fused expression per step.

``penalty_step="proximal"`` applies the penalty as its exact implicit step after the optimizer's
step on the task loss (``theta <- a + (theta - a) / (1 + lr lam S)``) instead of through the loss's
gradient. Why: with plain SGD the gradient step diverges once ``lr * lam * S_i > 2`` for any single
weight, and the diagonal Fisher spans ~4 orders of magnitude (measured on permuted Fashion-MNIST
after one task: classifier weights up to 1.1, median weight 3e-4), so a search over ``lam`` at
lr 0.03 diverged from ``lam`` 100 on. The references avoid this with Adam (van de Ven) or weak
penalties (mammoth: ``lam`` 0.7 at lr 0.1; its SI clips every gradient at 1). Same objective and
fixed points; different only where the gradient step would oscillate or diverge. It makes every
strength searchable; on permuted Fashion-MNIST the first validation search (separate penalties)
still chose a small one (``lam`` 3, stable either way); the domain family's values now are the
online form with the proximal step, ``lam`` 10 at lr 0.1 (``hparams/ewc.json``). Exact for plain SGD (the step uses the optimizer's current lr);
with momentum or Adam it is the same pull taken outside the optimizer's state.

The default ``penalty_step="auto"`` takes the proximal step under SGD (the learner's default
optimizer), where it is exact, and the gradient step under Adam and other adaptive optimizers, whose
rescaled steps a pull at the raw lr would not match. Why: with the gradient step, ``EWC()`` diverged
on split digits at lr 0.05 and 0.1 (seeds 0-2, every run) and on a batch-norm CNN at the learner's
default lr 0.03, while the proximal step gave the same accuracies wherever the gradient step did not
diverge (task-incremental digits, lr 0.01-0.1: equal to three decimals on 8 of 9 runs). The tuned
class-incremental values keep the gradient step they were measured with (``hparams/ewc.json``); a
diverged run's warning and ``Result`` say what to change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from lifelong.data.dataset import Batch
from lifelong.errors import ConfigError
from lifelong.learn.distributed import all_reduce_mean
from lifelong.learn.params import check_choice, check_param
from lifelong.learn.strategy import Strategy
from lifelong.strategies._importance import (
    FISHERS,
    PENALTY_STEPS,
    fisher_diagonal,
    gradient_step_hint,
    proximal_now,
    step_size,
    trainable,
)

if TYPE_CHECKING:
    from lifelong.data.scenarios import Experience
    from lifelong.learn.learner import Learner


class EWC(Strategy):
    """Penalty ``lam/2 * sum_k sum_i F_k,i (theta_i - theta*_k,i)^2`` with the diagonal Fisher ``F``.

    Parameters
    ----------
    lam : penalty strength.
    online : keep one decayed running Fisher and the latest anchor instead of one per experience.
    decay : the online variant's gamma: how much of the old Fisher is kept at each boundary.
    fisher_samples : samples of the experience used to estimate the Fisher (None: all).
    fisher : ``true``, ``sampled`` or ``empirical`` (see the module docstring). ``true`` costs one
        per-sample gradient pass per class with any probability (up to C times the one pass of
        ``sampled`` or ``empirical``: a user's small 10-class CNN spent most of its time at the
        boundaries); ``fisher_samples`` bounds the cost.
    fisher_batch_size : 1 for per-sample gradients; more for squared mini-batch gradients.
    penalty_step : ``auto`` (default: ``proximal`` under SGD, ``gradient`` under Adam and others),
        ``gradient`` (the penalty joins the loss) or ``proximal`` (its exact step after the
        optimizer's; stable for any ``lam``, see the module docstring).
    """

    name = "ewc"
    float32_only = True
    supports = frozenset({"class", "task", "domain"})
    anchors = True

    def __init__(self, lam: float = 100.0, online: bool = False, decay: float = 1.0,
                 fisher_samples: int | None = None, fisher: str = "true", fisher_batch_size: int = 1,
                 penalty_step: str = "auto") -> None:  # fmt: skip
        check_param(self, "lam", lam, low=0)
        check_param(self, "online", online, bool)
        check_param(self, "decay", decay, low=0, high=1)
        check_param(self, "fisher_samples", fisher_samples, int, low=1, none="every sample")
        check_choice(self, "fisher", fisher, FISHERS)
        check_param(self, "fisher_batch_size", fisher_batch_size, int, low=1)
        check_choice(self, "penalty_step", penalty_step, PENALTY_STEPS)
        if fisher == "true" and fisher_batch_size > 1:
            raise ConfigError(
                f"{type(self).__name__}: fisher='true' needs per-sample gradients: use fisher_batch_size=1 or "
                "fisher='sampled'"
            )
        self.lam, self.online, self.decay, self.fisher_samples = lam, online, decay, fisher_samples
        self.fisher, self.fisher_batch_size, self.penalty_step = fisher, fisher_batch_size, penalty_step
        self.anchors_: list[dict[str, Tensor]] = []
        self.fishers_: list[dict[str, Tensor]] = []
        self._fused: tuple[list[str], Tensor, Tensor, Tensor] | None = None
        self._step = "gradient" if penalty_step == "auto" else penalty_step  # the step last taken

    def penalty(self, learner: Learner, batch: Batch, logits: Tensor) -> Tensor | None:
        if not self.anchors_ or proximal_now(self, learner):
            return None
        params = trainable(learner)
        names, weight, anchor, const = self._current(params)
        if not names:
            return None
        theta = torch.cat([params[n].reshape(-1) for n in names])  # [P]
        return 0.5 * self.lam * (torch.dot(weight, (theta - anchor).square()) + const)

    @torch.no_grad()
    def after_step(self, learner: Learner) -> None:
        if not self.anchors_ or not proximal_now(self, learner):
            return
        params = trainable(learner)
        names, weight, anchor, _ = self._current(params)
        shrink = 1.0 / (1.0 + step_size(learner) * self.lam * weight)  # [P]
        i = 0
        for n in names:
            p = params[n]
            k = p.numel()
            a = anchor[i : i + k].view_as(p)
            p.sub_(a).mul_(shrink[i : i + k].view_as(p)).add_(a)
            i += k

    def _current(self, params: Mapping[str, Tensor]) -> tuple[list[str], Tensor, Tensor, Tensor]:
        fused = self._fused
        if (
            fused is None
            or any(n not in params for n in fused[0])
            or (sum(params[n].numel() for n in fused[0]) != len(fused[1]))
        ):  # after a boundary, a load, a grown head (padded anchors and Fishers) or frozen parameters
            self._fused = fused = self._fuse(params)
        return fused

    def _fuse(self, params: Mapping[str, Tensor]) -> tuple[list[str], Tensor, Tensor, Tensor]:
        """``(names, S, a, c)`` flat over ``names``: ``sum_k F_k (x - a_k)^2 == S (x - a)^2 + c``.

        ``names``: the trainable parameters every anchor has, at their shape; a method that adds
        parameters per task (HAT's embeddings, adapters) or freezes old ones (PNN) changes the set."""
        names = [n for n in self.anchors_[0] if n in params and all(
            n in a and n in f and a[n].shape == params[n].shape for a, f in zip(self.anchors_, self.fishers_)
        )]  # fmt: skip
        if not names:  # every anchored parameter is frozen now (PNN, one model per experience)
            empty = torch.zeros(0)
            return names, empty, empty, empty.sum()
        flat = [(torch.cat([f[n].reshape(-1) for n in names]), torch.cat([a[n].reshape(-1) for n in names]))
                for f, a in zip(self.fishers_, self.anchors_)]  # fmt: skip
        weight = torch.stack([f for f, _ in flat]).sum(0)
        anchor = torch.stack([f * a for f, a in flat]).sum(0) / weight.clamp_min(1e-30)
        const = sum((f * (a - anchor).square()).sum() for f, a in flat)
        return names, weight, anchor, torch.as_tensor(const)

    def after_experience(self, learner: Learner, experience: Experience) -> None:
        if len(experience.train) == 0:
            return
        fisher = fisher_diagonal(
            learner, experience.train, self.fisher, self.fisher_samples, self.fisher_batch_size
        )
        fisher = all_reduce_mean(learner, fisher)  # under torch.distributed: the mean over ranks' shards
        anchor = {n: p.detach().clone() for n, p in trainable(learner).items()}
        if self.online and self.fishers_:
            old = self.fishers_[0]
            fisher = {k: self.decay * old[k] + v if k in old else v for k, v in fisher.items()}
            self.anchors_, self.fishers_ = [anchor], [fisher]
        else:
            self.anchors_.append(anchor)
            self.fishers_.append(fisher)
        self._fused = None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._fused = None

    def extra_parameters(self) -> int:
        return sum(t.numel() for d in self.anchors_ + self.fishers_ for t in d.values())

    def divergence_hint(self) -> str | None:
        return gradient_step_hint(self, self._step, "lam")


class OnlineEWC(EWC):
    """Online EWC: ``EWC(online=True)`` under its own name, for the CLI and tables."""

    name = "online-ewc"

    def __init__(self, lam: float = 100.0, online: bool = True, decay: float = 0.9,
                 fisher_samples: int | None = None, fisher: str = "true", fisher_batch_size: int = 1,
                 penalty_step: str = "auto") -> None:  # fmt: skip
        super().__init__(lam, online, decay, fisher_samples, fisher, fisher_batch_size, penalty_step)
