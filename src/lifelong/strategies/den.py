"""Dynamically Expandable Networks (simplified): grow hidden units when the loss stays high, split drifted units.

Yoon et al. (2018), "Lifelong Learning with Dynamically Expandable Networks". After training an
experience: (1) *split*: a hidden unit whose incoming weights drifted by more than
``split_threshold`` (L2) is duplicated; the copy keeps the new weights and serves this and
later experiences, the original gets its old weights back and serves earlier ones; (2)
*expand*: if the training loss is still above ``loss_threshold``, every hidden layer gets
``grow_units`` new units, trained for ``expand_epochs`` with all other weights held fixed.
Units carry timestamps (born, died); the network for experience ``e`` gates off the others.

Simplified against the paper: no selective retraining with L1 sparsity, no group-sparsity
pruning of the new units, and a split unit's outgoing weights are shared (not restored).
Against the authors' code (jaehong31/DEN), which trains the first task only, measures drift on
incoming weights and does the same here, also: every experience after the first splits its
drifted units (theirs split only after an expansion, at most ``ex_k`` = 10 units per layer, then
retrain with an L2 pull to the old weights: without selective retraining, an unsplit drifted unit
here would be forgetting); the loss test reads the mean cross-entropy on the whole training set
after training (theirs the last minibatch's); defaults are smaller (``loss_thr`` 0.01, ``spl_thr``
0.05 and up to 4300 iterations of expansion training there).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from lifelong.data.dataset import Dataset
from lifelong.learn.params import check_param
from lifelong.learn.strategy import Strategy
from lifelong.strategies._arch import (
    gated_forward,
    grow_hidden,
    mlp_linears,
    resized,
    route,
    set_linear,
)
from lifelong.strategies._masks import FrozenEntries, mean_loss, retrain

if TYPE_CHECKING:
    from lifelong.data.scenarios import Experience
    from lifelong.learn.learner import Learner

ALIVE = 2**30  # "died" timestamp of a unit still in use


class DEN(Strategy):
    """Timestamped hidden units of an MLP that grow on a loss test and split on drift.

    Parameters
    ----------
    loss_threshold : mean training loss above which the hidden layers expand.
    grow_units : units added to every hidden layer on expansion.
    expand_epochs : passes training only the new units after an expansion.
    split_threshold : L2 drift of a unit's incoming weights that triggers a split.
    """

    name = "den"
    owns = frozenset({"parameters"})
    grows_layers = True
    supports = frozenset({"class", "task", "domain"})

    def __init__(self, loss_threshold: float = 0.1, grow_units: int = 8, expand_epochs: int = 1,
                 split_threshold: float = 0.1) -> None:  # fmt: skip
        check_param(self, "loss_threshold", loss_threshold, low=0)
        check_param(self, "grow_units", grow_units, int, low=1)
        check_param(self, "expand_epochs", expand_epochs, int, low=0)
        check_param(self, "split_threshold", split_threshold, low=0)
        self.loss_threshold, self.grow_units = loss_threshold, grow_units
        self.expand_epochs, self.split_threshold = expand_epochs, split_threshold
        self.sizes_: list[int] = []
        self.born_: list[Tensor] = []  # per hidden layer: int [units], experience that added the unit
        self.died_: list[Tensor] = []  # per hidden layer: int [units], first experience not using it
        self.task_exp_: dict[int, int] = {}  # task id -> experience index whose network it uses
        self.grew_: list[bool] = []  # per experience: whether the layers expanded
        self._frozen = FrozenEntries()
        # per hidden layer, its weights and biases when the experience started (the split compares
        # with them): state, so a checkpoint taken mid-experience still splits at its end
        self.start_weights_: list[Tensor] = []
        self.start_biases_: list[Tensor] = []

    def attach(self, learner: Learner) -> None:
        mlp_linears(learner.model, "DEN")  # a clear error for other architectures, before training
        if grow_hidden(learner.model, "DEN", self.sizes_, zero_new_inputs=True):
            learner.reset_optimizer()

    def before_experience(self, learner: Learner, experience: Experience) -> None:
        hidden = mlp_linears(learner.model, "DEN")[:-1]
        if not self.born_:
            self.born_ = [torch.full((m.out_features,), -1) for m in hidden]
            self.died_ = [torch.full((m.out_features,), ALIVE) for m in hidden]
        self.start_weights_ = [m.weight.detach().clone() for m in hidden]
        self.start_biases_ = [m.bias.detach().clone() for m in hidden]
        self._frozen.set({})

    def _gates(self, learner: Learner, e: int) -> list[Tensor | None]:
        alive = [(b <= e) & (d > e) for b, d in zip(self.born_, self.died_)]
        return [None if a.all() else a.float().to(learner.device) for a in alive]

    def forward(self, learner: Learner, x: Tensor, t: Tensor | None) -> Tensor | None:
        if not self.born_:
            return None
        training = learner.experience is not None and learner.model.training

        def run(xs: Tensor, task: int | None) -> Tensor:
            e = learner.experience_index if training or task not in self.task_exp_ else self.task_exp_[task]
            return gated_forward(learner.model, xs, self._gates(learner, e))

        return route(x, t, run)  # the learner masks a forward hook's logits to the task

    def after_backward(self, learner: Learner) -> None:
        self._frozen.after_backward(learner)

    def after_step(self, learner: Learner) -> None:
        self._frozen.after_step(learner)

    def after_experience(self, learner: Learner, experience: Experience) -> None:
        e, data = learner.experience_index, experience.train
        if self.start_weights_ and e > 0:  # splitting protects earlier experiences: none before the first
            self._split(learner, e)
        # the first experience only trains, as in the authors' code (expansion exists for t > 1)
        grow = e > 0 and len(data) > 0 and mean_loss(learner, data) > self.loss_threshold
        if grow:
            self._expand(learner, e, data)
        self.grew_.append(grow)
        self.task_exp_[experience.task_id] = e

    @torch.no_grad()
    def _split(self, learner: Learner, e: int) -> None:
        for l, (w0, b0) in enumerate(zip(self.start_weights_, self.start_biases_)):
            lins = mlp_linears(learner.model, "DEN")
            lin, nxt = lins[l], lins[l + 1]
            n0, in0 = w0.shape
            drift = (lin.weight[:n0, :in0] - w0).pow(2).sum(1).sqrt()  # incoming weights, as the authors
            sel = (drift.cpu() > self.split_threshold) & (self.born_[l][:n0] < e) & (self.died_[l][:n0] > e)
            if not sel.any():
                continue
            cpu_idx = sel.nonzero().squeeze(1)
            idx = cpu_idx.to(lin.weight.device)
            n, k = lin.out_features, len(idx)
            grown, grown_next = resized(lin, n + k, lin.in_features), resized(nxt, nxt.out_features, n + k)
            grown.weight[n:], grown.bias[n:] = (
                lin.weight[idx],
                lin.bias[idx],
            )  # the copy keeps the new weights
            grown_next.weight[:, n:] = nxt.weight[:, idx]
            grown.weight[idx, :in0], grown.bias[idx] = w0[idx], b0[idx]  # the original goes back
            set_linear(learner.model, l, grown)
            set_linear(learner.model, l + 1, grown_next)
            self.died_[l][cpu_idx] = e
            self.born_[l] = torch.cat([self.born_[l], torch.full((k,), e)])
            self.died_[l] = torch.cat([self.died_[l], torch.full((k,), ALIVE)])
        self.sizes_ = [m.out_features for m in mlp_linears(learner.model, "DEN")[:-1]]
        learner.reset_optimizer()

    def _expand(self, learner: Learner, e: int, data: Dataset) -> None:
        old = [m.out_features for m in mlp_linears(learner.model, "DEN")[:-1]]
        self.sizes_ = [n + self.grow_units for n in old]
        grow_hidden(learner.model, "DEN", self.sizes_, zero_new_inputs=True)
        for l in range(len(old)):
            self.born_[l] = torch.cat([self.born_[l], torch.full((self.grow_units,), e)])
            self.died_[l] = torch.cat([self.died_[l], torch.full((self.grow_units,), ALIVE)])
        names = {id(p): name for name, p in learner.model.named_parameters()}
        masks = {}
        for l, lin in enumerate(mlp_linears(learner.model, "DEN")):  # only the new units' weights train
            w = torch.ones(lin.weight.shape, dtype=torch.bool)
            b = torch.ones(lin.bias.shape, dtype=torch.bool)
            if l < len(old):
                w[old[l] :], b[old[l] :] = False, False
            if l > 0:
                w[:, old[l - 1] :] = False
            masks[names[id(lin.weight)]], masks[names[id(lin.bias)]] = w, b
        self._frozen.set(masks)
        learner.reset_optimizer()
        retrain(learner, data, self.expand_epochs)
        self._frozen.set({})
