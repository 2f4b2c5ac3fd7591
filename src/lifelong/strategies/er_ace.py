"""ER-ACE: experience replay with an asymmetric cross-entropy.

Caccia, Aljundi, Asadi, Tuytelaars, Pineau & Belilovsky (2022), "New Insights on Reducing
Abrupt Representation Change in Online Continual Learning". When new classes arrive, plain
replay's cross-entropy on the incoming batch pushes the old classes' logits down and tears
their representation apart. ER-ACE computes the incoming loss only over the classes present in
the incoming batch, and the replayed batch's loss over all classes seen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from lifelong.data.dataset import Batch
from lifelong.strategies.replay import Replay

if TYPE_CHECKING:
    from lifelong.learn.learner import Learner


class ERACE(Replay):
    """Replay with loss ``CE_present(incoming) + CE_seen(replayed)``.

    Parameters
    ----------
    buffer_size : samples kept in memory (reservoir sampling, as in the paper).
    batch_size : replayed samples per step; None uses the learner's batch size.
    """

    name = "er-ace"

    def __init__(self, buffer_size: int = 500, batch_size: int | None = None) -> None:
        super().__init__(buffer_size, batch_size, "reservoir")

    def loss(self, learner: Learner, batch: Batch, logits: Tensor) -> Tensor:
        assert learner.incoming is not None  # the learner sets it before each step
        n = len(learner.incoming.y)  # the incoming samples come first in the batch
        new, old = logits[:n], logits[n:]  # [n, C], [m, C]
        present = torch.zeros(logits.shape[1], dtype=torch.bool, device=logits.device)
        present[batch.y[:n]] = True
        loss = F.cross_entropy(new.masked_fill(~present, float("-inf")), batch.y[:n])
        if len(old):
            seen = torch.zeros_like(present)
            seen[[c for c in learner.classes_seen if c < len(seen)]] = True
            seen[batch.y[n:]] = True  # a stored class always counts as seen
            loss = loss + F.cross_entropy(old.masked_fill(~seen, float("-inf")), batch.y[n:])
        return loss
