"""Weight masks shared by parameter-isolation methods (PackNet, CPG, HAT, DEN, adapters).

``FrozenEntries`` holds chosen entries of the model's parameters exactly fixed while the rest
train; ``prune_free`` picks which free weights a task keeps; ``retrain`` runs extra passes of
the learner's own step (fine-tuning after pruning or growth).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from lifelong.data.dataset import Dataset

if TYPE_CHECKING:
    from lifelong.learn.learner import Learner


class FrozenEntries:
    """Zero the gradients of frozen entries and write their values back after each step.

    Zeroed gradients alone are not enough: weight decay and momentum still move an entry whose
    gradient is zero, so the frozen values are snapshot before the first step and restored.
    ``masks`` maps parameter name -> bool tensor of the parameter's shape (True = frozen).
    """

    def __init__(self) -> None:
        self.masks: dict[str, Tensor] = {}
        self._snapshot: dict[str, Tensor] | None = None

    def set(self, masks: dict[str, Tensor]) -> None:
        self.masks = {n: m for n, m in masks.items() if bool(m.any())}
        self._snapshot = None

    def after_backward(self, learner: Learner) -> None:
        if not self.masks:
            return
        params = dict(learner.model.named_parameters())
        if self._snapshot is None:  # taken before the first step after ``set``: values still exact
            self._snapshot = {n: params[n].detach().clone() for n in self.masks}
        for n, m in self.masks.items():
            grad = params[n].grad
            if grad is not None:
                grad.masked_fill_(m.to(grad.device), 0.0)

    def after_step(self, learner: Learner) -> None:
        if not self._snapshot:
            return
        params = dict(learner.model.named_parameters())
        with torch.no_grad():
            for n, m in self.masks.items():
                p = params[n]
                p.copy_(torch.where(m.to(p.device), self._snapshot[n], p))


def padded(old: Tensor | None, shape: torch.Size, dtype: torch.dtype, fill: float = 0) -> Tensor:
    """``fill`` of ``shape`` with ``old`` copied into its leading corner (state of a layer that grew)."""
    new = torch.full(shape, fill, dtype=dtype)
    if old is not None:
        new[tuple(slice(0, n) for n in old.shape)] = old
    return new


def prune_free(weight: Tensor, free: Tensor, fraction: float) -> Tensor:
    """Bool mask of the free entries a task keeps: all but the ``fraction`` smallest in magnitude."""
    n_prune = int(round(fraction * int(free.sum())))
    if n_prune == 0:
        return free.clone()
    mags = weight.detach().abs()
    threshold = mags[free].kthvalue(n_prune).values
    return free & (mags > threshold)


def retrain(learner: Learner, data: Dataset, epochs: int) -> None:
    """Extra passes over ``data`` through the learner's own step (every strategy's hooks run)."""
    for _ in range(epochs):
        order = torch.randperm(len(data), generator=learner.generator)
        for i in range(0, len(data), learner.batch_size):
            learner.train_step(data.batch(order[i : i + learner.batch_size]))


@torch.no_grad()
def mean_loss(learner: Learner, data: Dataset) -> float:
    """Training-mode forward cross-entropy on ``data``, averaged over samples."""
    total = 0.0
    for i in range(0, len(data), learner.eval_batch_size):
        b = data.batch(slice(i, i + learner.eval_batch_size))
        t = None if b.t is None else b.t.to(learner.device)
        logits = learner.forward(b.x.to(learner.device), t)
        total += float(F.cross_entropy(logits, b.y.to(learner.device), reduction="sum"))
    return total / max(len(data), 1)


@torch.no_grad()
def accuracy(learner: Learner, data: Dataset) -> float:
    """Training-mode forward accuracy on ``data`` (what the method sees while it learns)."""
    correct = 0
    for i in range(0, len(data), learner.eval_batch_size):
        b = data.batch(slice(i, i + learner.eval_batch_size))
        x, t = b.x.to(learner.device), None if b.t is None else b.t.to(learner.device)
        correct += int((learner.forward(x, t).argmax(1).cpu() == b.y).sum())
    return correct / max(len(data), 1)
