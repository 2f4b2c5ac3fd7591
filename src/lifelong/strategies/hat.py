"""Hard Attention to the Task: per-task gates on hidden units, learned almost binary.

Serra et al. (2018), "Overcoming Catastrophic Forgetting with Hard Attention to the Task".
Task ``t`` gates hidden layer ``l`` with ``sigmoid(s * e_l^t)``; ``s`` is annealed from
``1/s_max`` to ``s_max`` over each epoch, with the embedding gradients compensated for it.
Weights between units used by earlier tasks get no gradient, and a penalty keeps the new task
from taking more units than it needs. At inference the gates are binarised (``e > 0``, the
limit ``s -> inf``), and weights used by earlier tasks are held exactly, so an earlier task's
outputs are bit-identical after later tasks train.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from lifelong.data.dataset import Batch
from lifelong.learn.params import check_param
from lifelong.learn.strategy import Strategy
from lifelong.strategies._arch import gated_forward, mlp_linears, part, route
from lifelong.strategies._masks import FrozenEntries

if TYPE_CHECKING:
    from lifelong.data.scenarios import Experience
    from lifelong.learn.learner import Learner


class HAT(Strategy):
    """Task-gated hidden units of an MLP, embeddings in ``model.hat_embeddings[task][layer]``.

    Parameters
    ----------
    s_max : final gate slope; training anneals ``s`` to it within each epoch.
    c : weight of the attention penalty (fraction of free units the task uses).
    clamp : embeddings are clamped to ``[-clamp, clamp]`` after each step.
    """

    name = "hat"
    owns = frozenset({"parameters"})
    supports = frozenset({"task"})
    needs = frozenset({"task_labels"})

    def __init__(self, s_max: float = 400.0, c: float = 0.75, clamp: float = 6.0) -> None:
        check_param(self, "s_max", s_max, low=1)
        check_param(self, "c", c, low=0)
        check_param(self, "clamp", clamp, low=0, low_open=True)
        self.s_max, self.c, self.clamp = s_max, c, clamp
        self.tasks_: list[int] = []
        self.used_: list[Tensor] = []  # per hidden layer: bool [units], used by an earlier task
        self._frozen = FrozenEntries()
        self._gates: list[Tensor] = []
        self.start_step_ = 0  # the learner step the current experience began at (the slope anneals from it)

    def attach(self, learner: Learner) -> None:
        lins = mlp_linears(learner.model, "HAT")
        if not hasattr(learner.model, "hat_embeddings"):
            learner.model.hat_embeddings = nn.ModuleList()
        embeddings = part(learner.model, "hat_embeddings", nn.ModuleList)
        grew = len(embeddings) < len(self.tasks_)
        while len(embeddings) < len(self.tasks_):
            embeddings.append(nn.ParameterList(torch.randn(m.out_features) for m in lins[:-1]))
        embeddings.to(lins[0].weight.device)
        if grew:
            for i, e in enumerate(embeddings):  # only the newest task's embedding trains
                e.requires_grad_(i == len(embeddings) - 1)
            learner.reset_optimizer()
        self._freeze(learner)

    def _freeze(self, learner: Learner) -> None:
        """Weights whose both ends are units used by an earlier task; classifier rows of earlier tasks."""
        if not self.used_:
            return self._frozen.set({})
        lins, names = (
            mlp_linears(learner.model, "HAT"),
            {id(p): n for n, p in learner.model.named_parameters()},
        )
        masks = {}
        for l, lin in enumerate(lins[:-1]):
            rows = self.used_[l]
            cols = self.used_[l - 1] if l > 0 else torch.ones(lin.in_features, dtype=torch.bool)
            masks[names[id(lin.weight)]] = rows[:, None] & cols[None, :]  # [out, in]
            masks[names[id(lin.bias)]] = rows.clone()
        old = torch.zeros(lins[-1].out_features, dtype=torch.bool)
        current = self.tasks_[-1] if learner.experience is not None else None
        for task, cls in learner.task_classes.items():
            if task in self.tasks_ and task != current:
                old[list(cls)] = True
        masks[names[id(lins[-1].weight)]] = old[:, None].expand_as(lins[-1].weight).clone()
        masks[names[id(lins[-1].bias)]] = old
        self._frozen.set(masks)

    def before_experience(self, learner: Learner, experience: Experience) -> None:
        if not self.tasks_ or self.tasks_[-1] != experience.task_id:
            self.tasks_.append(experience.task_id)
        self.attach(learner)
        self.start_step_ = learner.step
        learner.reset_optimizer()

    def _slope(self, learner: Learner) -> float:
        n = learner.state.steps_in_epoch
        if n <= 1:
            return self.s_max
        b = (learner.step - self.start_step_) % n  # batch index within the epoch
        return 1 / self.s_max + (self.s_max - 1 / self.s_max) * b / (n - 1)

    def forward(self, learner: Learner, x: Tensor, t: Tensor | None) -> Tensor | None:
        if not self.tasks_:
            return None
        model, training, embeddings = learner.model, learner.model.training, _embeddings(learner.model)
        current = self.tasks_[-1] if learner.experience is not None else None

        def gated(xs: Tensor, task: int | None) -> Tensor:
            if task not in self.tasks_:
                return gated_forward(model, xs, [None] * len(embeddings[0]))
            e = embeddings[len(self.tasks_) - 1 - self.tasks_[::-1].index(task)]
            if training and task == current:
                s = self._slope(learner)
                self._gates = [torch.sigmoid(s * v) for v in e]  # [units] per layer
                return gated_forward(model, xs, self._gates)
            return gated_forward(model, xs, [(v > 0).to(v.dtype) for v in e])  # hard, binary

        return route(x, t, gated)  # the learner masks a forward hook's logits to the task

    def penalty(self, learner: Learner, batch: Batch, logits: Tensor) -> Tensor | None:
        if not self._gates or self.c == 0:
            return None
        free: list[Tensor | None] = [~u.to(g.device) for u, g in zip(self.used_, self._gates)]
        free = free or [None] * len(self._gates)
        zero = self._gates[0].new_zeros(())
        num = sum(((g if f is None else g * f).sum() for g, f in zip(self._gates, free)), zero)
        den = sum(len(g) if f is None else int(f.sum()) for g, f in zip(self._gates, free))
        return self.c * num / max(den, 1)

    def after_backward(self, learner: Learner) -> None:
        self._frozen.after_backward(learner)
        s = self._slope(learner)
        for e in _embeddings(learner.model)[-1]:  # compensate the annealed slope (paper's code)
            if e.grad is not None:
                with torch.no_grad():
                    num = torch.cosh(torch.clamp(s * e, -50, 50)) + 1
                    e.grad.mul_(self.s_max / s * num / (torch.cosh(e) + 1))

    def after_step(self, learner: Learner) -> None:
        self._frozen.after_step(learner)
        with torch.no_grad():
            for e in _embeddings(learner.model)[-1]:
                e.clamp_(-self.clamp, self.clamp)
        self._gates = []

    def after_experience(self, learner: Learner, experience: Experience) -> None:
        now = [(e.detach() > 0).cpu() for e in _embeddings(learner.model)[-1]]
        self.used_ = [u | n for u, n in zip(self.used_, now)] if self.used_ else now


def _embeddings(model: nn.Module) -> list[nn.ParameterList]:
    """The task embeddings ``HAT.attach`` put on the model: per task, one ``[units]`` vector per hidden layer."""
    return [e for e in part(model, "hat_embeddings", nn.ModuleList) if isinstance(e, nn.ParameterList)]
