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
    from lifelong.data.scenarios import Experience
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
        # (parameter, its mask on its device, frozen values), built with the snapshot: no per-step
        # walk of named_parameters and no per-step copy of the masks to the device
        self._entries: list[tuple[Tensor, Tensor, Tensor]] = []

    def set(self, masks: dict[str, Tensor]) -> None:
        self.masks = {n: m for n, m in masks.items() if bool(m.any())}
        self._snapshot, self._entries = None, []

    def after_backward(self, learner: Learner) -> None:
        if not self.masks:
            return
        if self._snapshot is None:  # taken before the first step after ``set``: values still exact
            params = dict(learner.model.named_parameters())
            self._snapshot = {n: params[n].detach().clone() for n in self.masks}
            self._entries = [
                (params[n], m.to(params[n].device), self._snapshot[n]) for n, m in self.masks.items()
            ]
        for p, m, _ in self._entries:
            if p.grad is not None:
                p.grad.masked_fill_(m, 0.0)

    def after_step(self, learner: Learner) -> None:
        if not self._snapshot:
            return
        with torch.no_grad():
            for p, m, frozen in self._entries:
                p.copy_(torch.where(m, frozen, p))


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


def task_rows(learner: Learner, experience: Experience, head_owner: Tensor) -> tuple[Tensor, Tensor]:
    """The head rows of ``experience``'s classes: ``(own, shared)``. Rows of classes no other task has
    (no earlier one, nor a later experience of its scenario) belong whole to this task, as the papers
    of PackNet and CPG give each task its own classifier, never pruned; rows of classes other tasks
    have too (one head shared by tasks of the same classes, as permuted MNIST) are pruned as shared
    weights. Other classes' rows are left free for the tasks they belong to."""
    classes = set(experience.classes) | set(learner.task_classes.get(experience.task_id, ()))
    rows = torch.zeros(head_owner.shape[0], dtype=torch.bool)
    rows[[c for c in classes if c < len(rows)]] = True
    later = experience.scenario.experiences[experience.index + 1 :] if experience.scenario else []
    elsewhere = (head_owner != 0).any(1)
    elsewhere[[c for e in later for c in e.classes if c < len(rows)]] = True
    return rows & ~elsewhere, rows & elsewhere


@torch.no_grad()
def compact(
    p: Tensor, owner: Tensor, fraction: float, k: int, rows: tuple[Tensor, Tensor] | None = None
) -> None:
    """Give task ``k`` the largest free entries of ``p`` (all of a bias, or of a frozen parameter) and
    release the ``fraction`` smallest (zeroed); ``rows`` (:func:`task_rows`, for the head) limits it to
    the task's rows and gives it its own rows whole."""
    free, own = owner == 0, None
    if rows is not None:
        own, shared = (r.view(-1, *([1] * (p.dim() - 1))).expand_as(p) for r in rows)
        free = free & shared
    # a weight the user froze (a pretrained backbone) is kept whole: pruned, it never retrains
    keep = prune_free(p.cpu(), free, fraction) if p.dim() > 1 and p.requires_grad else free
    p.masked_fill_((free & ~keep).to(p.device), 0.0)  # released weights restart from zero
    if own is not None:
        keep = keep | (own & (owner == 0))
    owner[keep] = k
