"""Progressive Neural Networks: a new column per experience, laterally connected to the old ones.

Rusu et al. (2016), "Progressive Neural Networks". Column ``k`` is a fresh copy of the MLP;
its layer ``l`` reads its own previous layer and, through lateral weights, the previous layer
of every earlier column (eq. 1 of the paper; the non-linear "adapter" laterals are left out).
Earlier columns are frozen, so earlier tasks' outputs never change; transfer flows forward only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from lifelong.learn.strategy import Strategy
from lifelong.strategies._arch import mlp_linears, part, route, widened

if TYPE_CHECKING:
    from lifelong.data.scenarios import Experience
    from lifelong.learn.learner import Learner


class PNN(Strategy):
    """Grow a column per experience in ``model.pnn_columns``; predict with the task's column (MLP only).

    The model itself is column 0. Column ``k >= 1`` holds ``layers`` (the MLP's Linear layers,
    fresh) and ``laterals[l - 1][j]``: ``Linear(dims[l], dims[l + 1], bias=False)`` from column
    ``j < k``'s hidden layer ``l - 1`` into its own layer ``l``.
    """

    name = "pnn"
    float32_only = True
    owns = frozenset({"parameters"})
    supports = frozenset({"task"})
    needs = frozenset({"task_labels"})

    def __init__(self) -> None:
        self.columns_: list[int] = []  # task id of each column, in order

    def attach(self, learner: Learner) -> None:
        mlp_linears(
            learner.model, "PNN", bias=False
        )  # a clear error for other architectures, before training
        if not hasattr(learner.model, "pnn_columns"):
            learner.model.pnn_columns = nn.ModuleList()
        if len(_pnn_columns(learner.model)) < len(self.columns_) - 1:
            self._grow(learner)

    def _grow(self, learner: Learner) -> None:
        model, base = learner.model, mlp_linears(learner.model, "PNN", bias=False)
        dims = [base[0].in_features, *(m.out_features for m in base)]
        device, columns = base[0].weight.device, _pnn_columns(model)
        while len(columns) < len(self.columns_) - 1:
            k = len(columns) + 1
            layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
            laterals = nn.ModuleList(
                nn.ModuleList(nn.Linear(dims[l], dims[l + 1], bias=False) for _ in range(k))
                for l in range(1, len(base))
            )
            columns.append(nn.ModuleDict({"layers": layers, "laterals": laterals}).to(device))
        for c, column in enumerate(self._columns(learner)):  # only the newest column trains
            for layer in column:
                layer.requires_grad_(c == len(self.columns_) - 1)
        learner.reset_optimizer()

    def _columns(self, learner: Learner) -> list[list[nn.Module]]:
        """Per column, every module it owns (its layers and laterals)."""
        cols: list[list[nn.Module]] = [list(mlp_linears(learner.model, "PNN", bias=False))]
        for column in _pnn_columns(learner.model):
            cols.append([*part(column, "layers", nn.ModuleList), *part(column, "laterals", nn.ModuleList)])
        return cols

    def before_experience(self, learner: Learner, experience: Experience) -> None:
        if self.columns_ and self.columns_[-1] == experience.task_id:
            return  # the same task goes on: keep training its column
        self.columns_.append(experience.task_id)
        if len(self.columns_) > 1:
            self._grow(learner)

    def _column_forward(self, learner: Learner, x: Tensor, c: int) -> Tensor:
        model = learner.model
        columns = _pnn_columns(model)
        layers = [mlp_linears(model, "PNN", bias=False)] + [
            list(part(col, "layers", nn.ModuleList)) for col in columns[:c]
        ]
        hs = [x.flatten(1)] * (c + 1)  # each column's input to the current layer
        for l in range(len(layers[0])):
            new = []
            for j in range(c + 1):
                h = layers[j][l](hs[j])
                if l > 0 and j > 0:  # lateral inputs from earlier columns' previous hidden layer
                    into_l = part(columns[j - 1], "laterals", nn.ModuleList)[l - 1]
                    for i, lateral in enumerate(into_l.children()):
                        h = h + lateral(hs[i])
                new.append(torch.relu(h) if l < len(layers[0]) - 1 else h)
            hs = new
        return hs[c]  # [B, n_classes]

    def forward(self, learner: Learner, x: Tensor, t: Tensor | None) -> Tensor | None:
        if len(self.columns_) < 2:
            return None  # a single column is the model itself

        def by_task(xs: Tensor, task: int | None) -> Tensor:
            last = len(self.columns_) - 1
            c = last - self.columns_[::-1].index(task) if task in self.columns_ else last
            return widened(self._column_forward(learner, xs, c), learner)

        return route(x, t, by_task)  # the learner masks a forward hook's logits to the task


def _pnn_columns(model: nn.Module) -> nn.ModuleList:
    """The columns ``PNN.attach`` put on the model: one ``ModuleDict(layers=..., laterals=...)`` each."""
    return part(model, "pnn_columns", nn.ModuleList)
