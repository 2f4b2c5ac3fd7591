"""One separate model per experience: the upper bound of parameter isolation, and its cost.

Each experience trains a fresh copy of the architecture (the model itself serves the first);
earlier copies are frozen, so nothing is forgotten and nothing is transferred. Task ids pick
the model at inference; without them (class- or domain-incremental) every model scores the
sample and the one with the highest softmax confidence answers, a common expert-selection
heuristic (e.g. Aljundi et al., 2017, "Expert Gate", which learns the gate instead).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from lifelong.errors import StrategyMismatchError
from lifelong.learn.strategy import Strategy
from lifelong.strategies._arch import fresh_copy, part, route, task_masked, widened

if TYPE_CHECKING:
    from lifelong.data.scenarios import Experience
    from lifelong.learn.learner import Learner


class PerExperienceModels(Strategy):
    """A fresh model per experience in ``model.experience_models``; inference by task id or max confidence.

    The learner counts the copies as model growth, so ``extra_parameters()`` is
    ``(n_experiences - 1) * model size``.
    """

    name = "per-experience"
    owns = frozenset({"parameters"})
    supports = frozenset({"class", "task", "domain"})

    def __init__(self) -> None:
        self.tasks_: list[int] = []  # task id of each experience's model, in order

    def attach(self, learner: Learner) -> None:
        if isinstance(learner.model, nn.Sequential):  # its forward would run the copies kept on it as layers
            raise StrategyMismatchError(
                "PerExperienceModels keeps the experience models on model.experience_models, and an "
                "nn.Sequential runs every submodule it holds: wrap it in an nn.Module whose forward calls "
                "the Sequential (e.g. self.net = nn.Sequential(...); forward returns self.net(x))"
            )
        if self._build(learner, max(len(self.tasks_) - 1, 0)):
            learner.reset_optimizer()

    def _build(self, learner: Learner, n_copies: int) -> bool:
        model = learner.model
        if not hasattr(model, "experience_models"):
            model.experience_models = nn.ModuleList()
        copies = part(model, "experience_models", nn.ModuleList)
        grew = len(copies) < n_copies
        while len(copies) < n_copies:
            copies.append(fresh_copy(model, drop=["experience_models"]))
        if copies:
            for i, m in enumerate(self._models(learner)):  # only the newest model trains
                m.requires_grad_(i == n_copies)
        return grew

    def _models(self, learner: Learner) -> list[nn.Module]:
        return [learner.model, *part(learner.model, "experience_models", nn.ModuleList)]

    def _run(self, learner: Learner, i: int, x: Tensor) -> Tensor:
        return widened(self._models(learner)[i](x), learner)  # the model's forward never calls the copies

    def before_experience(self, learner: Learner, experience: Experience) -> None:
        self.tasks_.append(experience.task_id)
        self._build(learner, len(self.tasks_) - 1)
        learner.reset_optimizer()

    def forward(self, learner: Learner, x: Tensor, t: Tensor | None) -> Tensor | None:
        if not self.tasks_:
            return None
        if not learner.model.training:  # inference: choose a model per sample
            return self.predict(learner, x, t)
        return self._run(
            learner, len(self.tasks_) - 1, x
        )  # the learner masks a forward hook's logits to the task

    def predict(self, learner: Learner, x: Tensor, t: Tensor | None) -> Tensor | None:
        if not self.tasks_:
            return None
        if t is not None:

            def by_task(xs: Tensor, task: int | None) -> Tensor:
                i = len(self.tasks_) - 1 - self.tasks_[::-1].index(task) if task in self.tasks_ else 0
                return self._run(learner, i, xs)

            return task_masked(learner, route(x, t, by_task), t)
        outs = torch.stack([self._run(learner, i, x) for i in range(len(self.tasks_))])  # [M, B, C]
        best = outs.softmax(-1).amax(-1).argmax(0)  # [B]: the most confident model per sample
        return outs[best, torch.arange(len(x), device=x.device)]
