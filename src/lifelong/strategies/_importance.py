"""Per-sample gradients for importance estimates (EWC's Fisher and its relatives)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call, grad, vmap

from lifelong.data.dataset import Dataset

if TYPE_CHECKING:
    from lifelong.learn.learner import Learner


def trainable(learner: Learner) -> dict[str, Tensor]:
    return {n: p for n, p in learner.model.named_parameters() if p.requires_grad}


def empirical_fisher(
    learner: Learner, data: Dataset, max_samples: int | None = None, chunk: int = 256
) -> dict[str, Tensor]:
    """Diagonal empirical Fisher: mean over samples of the squared gradient of the log-likelihood.

    Per-sample gradients come from ``torch.func.vmap``, one batched pass per chunk rather
    than one backward per sample.
    """
    model = learner.model
    params = {n: p.detach() for n, p in trainable(learner).items()}
    buffers = {n: b.detach() for n, b in model.named_buffers()}
    n = len(data) if max_samples is None else min(len(data), max_samples)
    index = torch.randperm(len(data), generator=learner.generator)[:n] if n < len(data) else torch.arange(n)

    def nll(p: dict[str, Tensor], x: Tensor, y: Tensor, m: Tensor) -> Tensor:
        logits = functional_call(model, (p, buffers), (x.unsqueeze(0),))
        logits = logits.masked_fill(~m.unsqueeze(0), float("-inf"))
        return F.cross_entropy(logits, y.unsqueeze(0))

    per_sample = vmap(grad(nll), in_dims=(None, 0, 0, 0))
    fisher = {k: torch.zeros_like(v) for k, v in params.items()}
    was_training = model.training
    model.eval()
    for i in range(0, n, chunk):
        b = data.batch(index[i : i + chunk])
        x, y = b.x.to(learner.device), b.y.to(learner.device)
        mask = learner.task_mask(None if b.t is None else b.t.to(learner.device), _n_outputs(learner, x))
        if mask is None:
            mask = torch.ones(len(y), _n_outputs(learner, x), dtype=torch.bool, device=learner.device)
        for k, g in per_sample(params, x, y, mask).items():
            fisher[k] += g.pow(2).sum(0)
    model.train(was_training)
    return {k: v / max(n, 1) for k, v in fisher.items()}


def _n_outputs(learner: Learner, x: Tensor) -> int:
    with torch.no_grad():
        return learner.model(x[:1]).shape[1]


def quadratic_penalty(learner: Learner, anchor: dict[str, Tensor], importance: dict[str, Tensor]) -> Tensor:
    """``sum_i importance_i * (theta_i - anchor_i)^2`` over the trainable parameters."""
    total = torch.zeros((), device=learner.device)
    for name, p in trainable(learner).items():
        if name in anchor:
            total = total + (importance[name] * (p - anchor[name]).pow(2)).sum()
    return total


def per_sample_gradients(
    learner: Learner,
    x: Tensor,
    t: Tensor | None,
    y: Tensor,
    objective: Callable[[Tensor, Tensor, Tensor], Tensor],
) -> dict[str, Tensor]:
    """Gradient of ``objective(logits [1, C], y [1], mask [1, C])`` for each sample: name -> [n, *shape].

    ``mask`` marks the outputs of each sample's task (all True without task ids), so an
    objective can ignore the heads of other tasks.
    """
    model = learner.model
    params = {n: p.detach() for n, p in trainable(learner).items()}
    buffers = {n: b.detach() for n, b in model.named_buffers()}
    x, y = x.to(learner.device), y.to(learner.device)
    n_out = _n_outputs(learner, x)
    mask = learner.task_mask(None if t is None else t.to(learner.device), n_out)
    if mask is None:
        mask = torch.ones(len(y), n_out, dtype=torch.bool, device=learner.device)

    def one(p: dict[str, Tensor], xi: Tensor, yi: Tensor, mi: Tensor) -> Tensor:
        logits = functional_call(model, (p, buffers), (xi.unsqueeze(0),))
        return objective(logits, yi.unsqueeze(0), mi.unsqueeze(0))

    was_training = model.training
    model.eval()
    try:
        return vmap(grad(one), in_dims=(None, 0, 0, 0))(params, x, y, mask)
    finally:
        model.train(was_training)


def sample_index(learner: Learner, n_data: int, max_samples: int | None) -> Tensor:
    """Up to ``max_samples`` indices, drawn with the learner's generator (all, in order, if fewer)."""
    n = n_data if max_samples is None else min(n_data, max_samples)
    return torch.randperm(n_data, generator=learner.generator)[:n] if n < n_data else torch.arange(n)


def mean_abs_gradient(
    learner: Learner,
    data: Dataset,
    objective: Callable[[Tensor, Tensor, Tensor], Tensor],
    max_samples: int | None = None,
    chunk: int = 256,
) -> dict[str, Tensor]:
    """Mean over samples of ``|d objective / d theta|`` (MAS's importance), in vmapped chunks."""
    index = sample_index(learner, len(data), max_samples)
    total = {n: torch.zeros_like(p) for n, p in trainable(learner).items()}
    for i in range(0, len(index), chunk):
        b = data.batch(index[i : i + chunk])
        for k, g in per_sample_gradients(learner, b.x, b.t, b.y, objective).items():
            total[k] += g.abs().sum(0)
    return {k: v / max(len(index), 1) for k, v in total.items()}
