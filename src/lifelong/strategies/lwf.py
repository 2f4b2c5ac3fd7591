"""Learning without Forgetting: distil the previous model's outputs on old classes.

Li & Hoiem (2017), "Learning without Forgetting". Needs no stored data: the old model,
frozen at the last boundary, labels the current inputs with soft targets.

Compared with the reference implementations (FACIL's ``lwf.py``; van de Ven, Tuytelaars &
Tolias's ``continual-learning``): in task-incremental scenarios each old task is distilled on
its own, unmasked outputs under its own softmax and the terms are averaged over tasks (van de
Ven; FACIL concatenates the old heads under one softmax). The KD term is the KL divergence,
which differs from the papers' cross-entropy by the teacher's entropy, a constant.
Class- and domain-incremental: one softmax over every class seen before the experience.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import Tensor, nn

from lifelong.data.dataset import Batch
from lifelong.learn.params import check_param
from lifelong.learn.strategy import Strategy
from lifelong.strategies import _distill

if TYPE_CHECKING:
    from lifelong.data.scenarios import Experience
    from lifelong.learn.learner import Learner


class LwF(Strategy):
    """Add ``alpha * T^2 * KL(old || new)`` on the outputs of the classes (or tasks) seen before.

    The teacher is a copy of the whole model at the last boundary (grown heads included), run
    through the strategies' forward hooks, so ``[MultiHead(), LwF()]`` distils each old head.

    Parameters
    ----------
    alpha : weight of the distillation term.
    temperature : softens both distributions so small logits carry information.
    """

    name = "lwf"
    keeps_teacher = True
    supports = frozenset({"class", "task", "domain"})

    def __init__(self, alpha: float = 1.0, temperature: float = 2.0) -> None:
        check_param(self, "alpha", alpha, low=0)
        check_param(self, "temperature", temperature, low=0, low_open=True)
        self.alpha, self.temperature = alpha, temperature
        self.old_state_: dict[str, Tensor] | None = None
        self.old_classes_: list[int] = []
        self.old_tasks_: dict[int, list[int]] = {}
        self._old_model: nn.Module | None = None
        self._groups: dict[
            bool, list[_distill.Group]
        ] = {}  # by "samples carry task ids": built once per experience

    def penalty(self, learner: Learner, batch: Batch, logits: Tensor) -> Tensor | None:
        if self.old_state_ is None:
            return None
        groups = self._groups.get(batch.t is not None)
        if groups is None:
            groups = _distill.groups(learner, self.old_tasks_, self.old_classes_, batch.t)
            self._groups[batch.t is not None] = groups
        if not groups:
            return None
        if self._old_model is None:  # after loading a checkpoint
            self._old_model = _distill.restore(learner, self.old_state_)
        old = _distill.teacher_logits(learner, self._old_model, batch.x, groups)
        new = _distill.group_logits(learner, batch.x, groups, logits)
        return _distill.kd(new, old, self.temperature, self.alpha)

    def after_experience(self, learner: Learner, experience: Experience) -> None:
        self._old_model = _distill.snapshot(learner.model)
        self.old_state_ = dict(self._old_model.state_dict())
        self.old_classes_ = list(learner.classes_seen)
        self.old_tasks_ = {int(k): list(v) for k, v in learner.task_classes.items()}
        self._groups = {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._groups = {}

    def extra_parameters(self) -> int:
        return sum(v.numel() for v in self.old_state_.values()) if self.old_state_ else 0
