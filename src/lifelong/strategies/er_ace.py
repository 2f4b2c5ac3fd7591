"""ER-ACE: experience replay with an asymmetric cross-entropy.

Caccia, Aljundi, Asadi, Tuytelaars, Pineau & Belilovsky (2022), "New Insights on Reducing
Abrupt Representation Change in Online Continual Learning". When new classes arrive, plain
replay's cross-entropy on the incoming batch pushes the old classes' logits down and tears
their representation apart. ER-ACE computes the incoming loss only over the classes present in
the incoming batch, and the replayed batch's loss over all classes seen.

As the authors' code (pclucas14/AML) and mammoth's ``er_ace`` do: the incoming loss's softmax
also keeps every class from the largest one seen so far upwards (the not-yet-seen classes, so
their outputs stay low; only the old classes are left out), the replayed loss spans every
output, and the first experience is plain fine-tuning (no mask, no replay; mammoth's default
``task_free=0``), except on a task-free stream, where no first experience is announced: there it
masks and replays from the first step (mammoth's ``task_free=1``), as it does on every stream of a
``Learner(..., task_free=True)`` (``partial_fit`` with no boundary). ``cosine_head=True`` scores as
the authors' classifier does (mammoth's ``use_custom_classifier``, on by default there): ``10 * cos(features, weight row)``, no bias, through
a forward hook on the model's ``classifier`` (the weights stay the model's own; off by default
because the model then only scores correctly with the strategy attached).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from lifelong.data.dataset import Batch
from lifelong.learn.heads import classifier
from lifelong.learn.params import check_param
from lifelong.strategies.replay import Replay

if TYPE_CHECKING:
    from lifelong.data.scenarios import Experience
    from lifelong.learn.learner import Learner


class ERACE(Replay):
    """Replay with loss ``CE_present+unseen(incoming) + CE(replayed)``, from the second experience on.

    Parameters
    ----------
    buffer_size : samples kept in memory (reservoir sampling, as in the paper).
    batch_size : replayed samples per step; None uses the learner's batch size.
    cosine_head : score with the authors' scaled cosine classifier (see the module docstring).
    """

    name = "er-ace"
    waits_for_boundary = True  # its first experience is fine-tuning, unless the learner is task_free

    def __init__(
        self, buffer_size: int = 500, batch_size: int | None = None, cosine_head: bool = False
    ) -> None:
        super().__init__(buffer_size, batch_size, "reservoir")
        check_param(self, "cosine_head", cosine_head, bool)
        self.cosine_head = cosine_head
        self.top_ = torch.tensor(0)  # the largest class among the incoming labels so far
        self._hook: tuple[torch.nn.Module, torch.utils.hooks.RemovableHandle] | None = None

    def attach(self, learner: Learner) -> None:
        if not self.cosine_head:
            return
        head = classifier(learner.model)[2]
        if self._hook is not None and self._hook[0] is head:
            return
        if self._hook is not None:  # a new model (or a grown head): move the hook there
            self._hook[1].remove()
        self._hook = (head, head.register_forward_hook(_cosine_scores))

    def before_experience(self, learner: Learner, experience: Experience) -> None:
        self.attach(learner)  # a head grown for new classes is a new module

    def batch(self, learner: Learner, batch: Batch) -> Batch:
        if _first_experience(learner):  # nothing old to protect yet
            return batch
        return super().batch(learner, batch)

    def loss(self, learner: Learner, batch: Batch, logits: Tensor) -> Tensor:
        assert learner.incoming is not None  # the learner sets it before each step
        n = len(learner.incoming.y)  # the incoming samples come first in the batch
        new, old = logits[:n], logits[n:]  # [n, C], [m, C]
        self.top_ = torch.maximum(self.top_.to(logits.device), batch.y[:n].max())  # on the device: no sync
        if _first_experience(learner):
            return F.cross_entropy(new, batch.y[:n])
        # the authors' seen_so_far.max(): this and every later class count, and the classes present
        keep = torch.arange(logits.shape[1], device=logits.device) >= self.top_
        keep[batch.y[:n]] = True
        loss = F.cross_entropy(new.masked_fill(~keep, float("-inf")), batch.y[:n])
        if len(old):
            loss = loss + F.cross_entropy(old, batch.y[n:])
        return loss


def _first_experience(learner: Learner) -> bool:
    return learner.experience_index <= 0 and not learner.task_free


def _cosine_scores(module: torch.nn.Linear, inputs: tuple[Tensor, ...], output: Tensor) -> Tensor:
    """``10 * cos(x, w_c)`` per class, as the authors' ``CustomLinear`` (eps 1e-5 on both norms)."""
    x, w = inputs[0], module.weight
    x = x / (x.norm(dim=1, keepdim=True) + 1e-5)
    w = w / (w.norm(dim=1, keepdim=True) + 1e-5)
    return 10.0 * x @ w.T
