"""Learning without Forgetting: distil the previous model's outputs on old classes.

Li & Hoiem (2017), "Learning without Forgetting". Needs no stored data: the old model,
frozen at the last boundary, labels the current inputs with soft targets.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lifelong.data.dataset import Batch
from lifelong.learn.strategy import Strategy

if TYPE_CHECKING:
    from lifelong.data.scenarios import Experience
    from lifelong.learn.learner import Learner


class LwF(Strategy):
    """Add ``alpha * T^2 * KL(old || new)`` on the classes seen before the current experience.

    Parameters
    ----------
    alpha : weight of the distillation term.
    temperature : softens both distributions so small logits carry information.
    """

    name = "lwf"
    supports = frozenset({"class", "task", "domain"})

    def __init__(self, alpha: float = 1.0, temperature: float = 2.0) -> None:
        self.alpha, self.temperature = alpha, temperature
        self.old_state_: dict[str, Tensor] | None = None
        self.old_classes_: list[int] = []
        self._old_model: nn.Module | None = None

    def _teacher(self, learner: Learner) -> nn.Module:
        if self._old_model is None:  # built lazily so the state stays plain tensors
            self._old_model = copy.deepcopy(learner.model).eval().requires_grad_(False)
            self._old_model.load_state_dict(self.old_state_)
        return self._old_model

    def penalty(self, learner: Learner, batch: Batch, logits: Tensor) -> Tensor | None:
        if self.old_state_ is None or not self.old_classes_:
            return None
        with torch.no_grad():
            old = self._teacher(learner)(batch.x)[:, self.old_classes_]
        new = logits[:, self.old_classes_]
        t = self.temperature
        kd = F.kl_div(
            F.log_softmax(new / t, 1), F.log_softmax(old / t, 1), reduction="batchmean", log_target=True
        )
        return self.alpha * t * t * kd

    def after_experience(self, learner: Learner, experience: Experience) -> None:
        self.old_state_ = {k: v.detach().clone() for k, v in learner.model.state_dict().items()}
        self.old_classes_ = list(learner.classes_seen)
        self._old_model = None

    def extra_parameters(self) -> int:
        return sum(v.numel() for v in self.old_state_.values()) if self.old_state_ else 0
