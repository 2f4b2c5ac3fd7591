"""Knowledge distillation from a frozen copy of the model (LwF, iCaRL): the teacher and the KD term.

The teacher is a deep copy of the model taken at a boundary (grown heads and columns
included) and is run through the learner's forward hooks (``MultiHead``, ``HAT``...) by
swapping it in as ``learner.model`` for one no-grad forward. Old outputs are compared per
group of classes: in task-incremental scenarios one group per old task, each on that task's
own, *unmasked* outputs (the learner masks other tasks' logits to -inf, whose softmax is NaN);
otherwise one group holding every old class.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lifelong.learn.strategy import overrides

if TYPE_CHECKING:
    from lifelong.learn.learner import Learner

#: (task id or None, classes): the outputs compared together under one softmax; the classes as a
#: slice when they are a contiguous run (a view, where a list index copies and scatters back)
Group = tuple[int | None, list[int] | slice]


def snapshot(model: nn.Module) -> nn.Module:
    """A frozen deep copy of ``model`` in eval mode."""
    return copy.deepcopy(model).eval().requires_grad_(False)


def restore(learner: Learner, state: dict[str, Tensor]) -> nn.Module:
    """The teacher rebuilt from a checkpointed state (the model may have grown since: extra heads stay unused)."""
    teacher = copy.deepcopy(learner.model)
    teacher.load_state_dict(state, strict=False)
    return teacher.eval().requires_grad_(False)


def columns(classes: list[int]) -> list[int] | slice:
    """``classes`` as an index of the output columns: a slice when they are ``lo, lo + 1, ..., hi - 1``."""
    if classes and classes == list(range(classes[0], classes[0] + len(classes))):
        return slice(classes[0], classes[0] + len(classes))
    return classes


def groups(
    learner: Learner, old_tasks: dict[int, list[int]], old_classes: list[int], t: Tensor | None
) -> list[Group]:
    """One group per old task when samples carry task ids, else one group of every old class.

    The groups only change at a boundary: strategies build them once per experience, not per step.
    """
    if t is not None and old_tasks:
        return [(k, columns(c)) for k, c in sorted(old_tasks.items()) if c]
    return [(None, columns(old_classes))] if old_classes else []


def group_logits(learner: Learner, x: Tensor, gs: list[Group], logits: Tensor | None = None) -> list[Tensor]:
    """Logits of ``learner.model`` on each group's classes, as if every sample belonged to its task.

    Without task groups the given training ``logits`` (unmasked) are reused. With task groups a
    single-head model needs one extra unmasked forward; a model routed by forward hooks (heads,
    masks) one forward per old task.
    """
    if not gs or gs[0][0] is None:  # groups() gives ids to all groups or to none
        out = logits if logits is not None else learner.forward(x, None)
        return [out[:, c] for _, c in gs]
    if not any(overrides(s, "forward") for s in learner.strategies):
        raw = learner.model(x)  # [B, C], no task mask
        return [raw[:, c] for _, c in gs]
    return [  # here every group has a task id: groups() gives ids to all groups or to none
        learner.forward(x, torch.full((len(x),), k, dtype=torch.long, device=x.device))[:, c]
        for k, c in gs
        if k is not None
    ]


def teacher_logits(learner: Learner, teacher: nn.Module, x: Tensor, gs: list[Group]) -> list[Tensor]:
    """Logits of ``teacher`` run as the learner's model (its strategies' forward hooks included)."""
    own = learner.model
    learner.model = teacher
    try:
        with torch.no_grad():
            return group_logits(learner, x, gs)
    finally:
        learner.model = own


def kd(new: list[Tensor], old: list[Tensor], temperature: float, weight: float = 1.0) -> Tensor:
    """``weight * T^2 * KL(softmax(old/T) || softmax(new/T))`` per group, averaged over groups (van de Ven et al.)."""
    t = temperature
    terms = [
        F.kl_div(F.log_softmax(n / t, 1), F.log_softmax(o / t, 1), reduction="batchmean", log_target=True)
        for n, o in zip(new, old)
    ]
    # one group (class-incremental) needs no stack and mean; the weights fold into one scalar
    return (weight * t * t) * (terms[0] if len(terms) == 1 else torch.stack(terms).mean())
