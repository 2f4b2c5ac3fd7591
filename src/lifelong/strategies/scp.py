"""Sliced Cramer Preservation: keep the weights that move the distribution of the network's outputs.

Kolouri, Ketz, Soltoggio & Pilly (2020), "Sliced Cramer Synaptic Consolidation for Preserving
Deeply Learned Representations" (ICLR).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from lifelong.data.dataset import Batch, Dataset
from lifelong.learn.strategy import Strategy
from lifelong.strategies._importance import quadratic_penalty, sample_index, trainable

if TYPE_CHECKING:
    from lifelong.data.scenarios import Experience
    from lifelong.learn.learner import Learner


def mean_output_jacobian(
    learner: Learner, data: Dataset, index: Tensor, chunk: int = 256
) -> dict[str, Tensor]:
    """``d mean_x f(x) / d theta`` over ``data[index]``: name -> [C, *shape] (other tasks' outputs zeroed)."""
    model = learner.model
    params = trainable(learner)
    weights = list(params.values())
    jac: dict[str, Tensor] = {}
    was_training = model.training
    model.eval()
    try:
        for i in range(0, len(index), chunk):
            b = data.batch(index[i : i + chunk])
            out = model(b.x.to(learner.device))  # [n, C]
            mask = learner.task_mask(None if b.t is None else b.t.to(learner.device), out.shape[1])
            if mask is not None:
                out = out.masked_fill(~mask, 0.0)
            mean = out.sum(0) / len(index)  # this chunk's share of the mean output, [C]
            for c in range(len(mean)):
                grads = torch.autograd.grad(mean[c], weights, retain_graph=True, allow_unused=True)
                for (n, p), g in zip(params.items(), grads):
                    rows = jac.setdefault(n, p.new_zeros((len(mean), *p.shape)))
                    if g is not None:
                        rows[c] += g
    finally:
        model.train(was_training)
    return jac


class SCP(Strategy):
    """Penalty ``lam/2 * sum_i Gamma_i (theta_i - theta*_i)^2`` with sliced importances.

    ``Gamma = mean_l (d (xi_l . mean_x f(x)) / d theta)^2`` over ``slices`` random unit vectors
    ``xi_l`` of the output space: how much a weight moves the mean output along random
    directions, a proxy for the sliced Cramer distance between old and new output distributions.
    The mean output's Jacobian ``J`` [C, P] is computed once; ``Gamma = diag(J^T A J)`` with
    ``A = mean_l xi_l xi_l^T``. Importances are summed over experiences.

    Parameters
    ----------
    lam : penalty strength (SGD is stable while ``lr * lam * max Gamma < 2``).
    slices : number of random unit vectors ``L``.
    samples : inputs of the experience averaged in the mean output (None: all).
    """

    name = "scp"
    supports = frozenset({"class", "task", "domain"})

    def __init__(self, lam: float = 1.0, slices: int = 100, samples: int | None = None) -> None:
        self.lam, self.slices, self.samples = lam, slices, samples
        self.gamma_: dict[str, Tensor] = {}
        self.anchor_: dict[str, Tensor] = {}

    def penalty(self, learner: Learner, batch: Batch, logits: Tensor) -> Tensor | None:
        if not self.gamma_:
            return None
        return 0.5 * self.lam * quadratic_penalty(learner, self.anchor_, self.gamma_)

    def after_experience(self, learner: Learner, experience: Experience) -> None:
        data = experience.train
        if len(data) == 0:
            return
        jac = mean_output_jacobian(learner, data, sample_index(learner, len(data), self.samples))
        n_out = next(iter(jac.values())).shape[0]
        xi = torch.randn(self.slices, n_out, generator=learner.generator).to(learner.device)
        xi = xi / xi.norm(dim=1, keepdim=True)  # [L, C] unit slices
        a = xi.T @ xi / self.slices  # [C, C]
        for n, j in jac.items():
            flat = j.reshape(n_out, -1)  # [C, P]
            gamma = ((a @ flat) * flat).sum(0).reshape(j.shape[1:])
            self.gamma_[n] = self.gamma_[n] + gamma if n in self.gamma_ else gamma
        self.anchor_ = {n: p.detach().clone() for n, p in trainable(learner).items() if n in self.gamma_}

    def extra_parameters(self) -> int:
        return sum(t.numel() for d in (self.gamma_, self.anchor_) for t in d.values())
