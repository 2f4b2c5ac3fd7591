"""Sliced Cramer Preservation: keep the weights that move the distribution of the network's outputs.

Kolouri, Ketz, Soltoggio & Pilly (2020), "Sliced Cramer Synaptic Consolidation for Preserving
Deeply Learned Representations" (ICLR).

As in the authors' reference code (Kolouri's ``SCP`` class): the mean output is taken per
mini-batch, each mini-batch draws its own ``slices`` unit vectors, the squared slice gradients
are summed and divided by the number of samples, importances decay online,
``Gamma <- decay * Gamma + (1 - decay) * Gamma_new`` with ``decay = 0.5``, and the penalty is
``lam * sum Gamma (theta - theta*)^2``. Differences: the network is in eval mode during the pass
(the reference leaves it in train mode; the same for models without dropout or batch norm), the
``C`` output gradients of a mini-batch come from one batched backward, and in task-incremental
scenarios other tasks' outputs are zeroed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from lifelong.data.dataset import Batch, Dataset
from lifelong.learn.distributed import all_reduce_mean
from lifelong.learn.params import check_param
from lifelong.learn.strategy import Strategy
from lifelong.strategies._importance import quadratic_penalty, sample_index, trainable

if TYPE_CHECKING:
    from lifelong.data.scenarios import Experience
    from lifelong.learn.learner import Learner


def batch_mean_jacobians(
    learner: Learner, data: Dataset, index: Tensor, batch_size: int
) -> Iterator[dict[str, Tensor]]:
    """Per mini-batch of ``data[index]``: ``d mean_batch f(x) / d theta``, name -> [C, *shape]."""
    model = learner.model
    params = trainable(learner)
    was_training = model.training
    model.eval()
    try:
        for i in range(0, len(index), batch_size):
            b = data.batch(index[i : i + batch_size])
            out = model(b.x.to(learner.device))  # [n, C]
            mask = learner.task_mask(None if b.t is None else b.t.to(learner.device), out.shape[1])
            if mask is not None:
                out = out.masked_fill(~mask, 0.0)
            mean = out.mean(0)  # [C]
            if not mean.requires_grad:  # every weight it depends on is frozen (PNN's old column)
                yield {n: p.new_zeros((len(mean), *p.shape)) for n, p in params.items()}
                continue
            eye = torch.eye(len(mean), device=mean.device)
            grads = torch.autograd.grad(
                mean, list(params.values()), eye, is_grads_batched=True, allow_unused=True
            )
            yield {
                n: (p.new_zeros((len(mean), *p.shape)) if g is None else g)
                for (n, p), g in zip(params.items(), grads)
            }
    finally:
        model.train(was_training)


class SCP(Strategy):
    """Penalty ``lam * sum_i Gamma_i (theta_i - theta*_i)^2`` with sliced importances.

    For each mini-batch ``b`` with mean output ``m_b`` and unit slices ``xi_b,l`` of the output
    space: ``Gamma_new = (1/N) sum_b sum_l (d (xi_b,l . m_b) / d theta)^2``, how much a weight moves
    the mean output along random directions (a proxy for the sliced Cramer distance between old
    and new output distributions). With the Jacobian ``J_b`` [C, P] of ``m_b`` this is
    ``diag(J_b^T A_b J_b)``, ``A_b = sum_l xi_b,l xi_b,l^T``.

    Parameters
    ----------
    lam : penalty strength.
    slices : unit vectors per mini-batch ``L``.
    samples : inputs of the experience used (None: all).
    decay : weight of the old importances at a boundary (0.5 in the reference).
    batch_size : mini-batch of the mean outputs; None uses the learner's.
    """

    name = "scp"
    float32_only = True
    supports = frozenset({"class", "task", "domain"})
    anchors = True

    def __init__(self, lam: float = 1.0, slices: int = 100, samples: int | None = None, decay: float = 0.5,
                 batch_size: int | None = None) -> None:  # fmt: skip
        check_param(self, "lam", lam, low=0)
        check_param(self, "slices", slices, int, low=1)
        check_param(self, "samples", samples, int, low=1, none="every sample")
        check_param(self, "decay", decay, low=0, high=1, high_open=True)
        check_param(self, "batch_size", batch_size, int, low=1, none="the learner's batch size")
        self.lam, self.slices, self.samples, self.decay, self.batch_size = (
            lam,
            slices,
            samples,
            decay,
            batch_size,
        )
        self.gamma_: dict[str, Tensor] = {}
        self.anchor_: dict[str, Tensor] = {}

    def penalty(self, learner: Learner, batch: Batch, logits: Tensor) -> Tensor | None:
        if not self.gamma_:
            return None
        return self.lam * quadratic_penalty(learner, self.anchor_, self.gamma_)

    def importance(self, learner: Learner, data: Dataset) -> dict[str, Tensor]:
        """``Gamma_new`` of ``data`` (slices drawn from the learner's generator)."""
        index = sample_index(learner, len(data), self.samples)
        gamma: dict[str, Tensor] = {}
        for jac in batch_mean_jacobians(learner, data, index, self.batch_size or learner.batch_size):
            n_out = next(iter(jac.values())).shape[0]
            xi = torch.randn(self.slices, n_out, generator=learner.generator).to(learner.device)
            xi = xi / xi.norm(dim=1, keepdim=True)  # [L, C] unit slices
            a = xi.T @ xi  # [C, C]
            for n, j in jac.items():
                flat = j.reshape(n_out, -1)  # [C, P]
                g = ((a @ flat) * flat).sum(0).reshape(j.shape[1:]) / len(index)
                gamma[n] = gamma[n] + g if n in gamma else g
        return gamma

    def after_experience(self, learner: Learner, experience: Experience) -> None:
        if len(experience.train) == 0:
            return
        new = all_reduce_mean(learner, self.importance(learner, experience.train))  # over ranks' shards
        d = self.decay
        self.gamma_ = {
            n: d * self.gamma_[n] + (1 - d) * g if n in self.gamma_ else (1 - d) * g for n, g in new.items()
        }
        self.anchor_ = {n: p.detach().clone() for n, p in trainable(learner).items() if n in self.gamma_}

    def extra_parameters(self) -> int:
        return sum(t.numel() for d in (self.gamma_, self.anchor_) for t in d.values())
